"""Job types of deskpal itself."""

from __future__ import annotations

from pydantic import BaseModel

from deskpal.core.jobs import JobContext, job


class NoopPayload(BaseModel):
    note: str = ""


@job("system.noop", payload=NoopPayload, max_attempts=3)
async def noop(job: JobContext, payload: NoopPayload) -> None:
    """Does nothing, successfully: proves a deployment's workers claim and finish jobs."""
