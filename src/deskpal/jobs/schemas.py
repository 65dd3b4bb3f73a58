"""Job DTOs: what admins see of the durable job queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from deskpal.core.jobs import JobStatus
from deskpal.core.schemas import ApiModel


class JobDTO(ApiModel):
    job_id: int = Field(alias="jobID")
    kind: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    run_at: datetime
    last_error: str | None
    date_created: datetime = Field(validation_alias="created_at")
    finished_at: datetime | None
