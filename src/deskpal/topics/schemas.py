"""Topic DTOs."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from deskpal.core.schemas import ApiModel, Line


class TopicWriteDTO(ApiModel):
    name: Line = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)


class TopicDTO(ApiModel):
    topic_id: int = Field(alias="topicID")
    name: str
    description: str | None
    date_created: datetime = Field(validation_alias="created_at")
