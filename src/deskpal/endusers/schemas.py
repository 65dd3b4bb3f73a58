"""End-user DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from deskpal.core.addresses import normalize_email
from deskpal.core.schemas import ApiModel, Line


def _email_or_none(value: str | None) -> str | None:
    return normalize_email(value) if value else None


class EndUserWriteDTO(ApiModel):
    uid: Line = Field(min_length=1, max_length=254)
    name: str | None = Field(default=None, max_length=200)
    email: Annotated[str | None, Field(default=None, max_length=320), AfterValidator(_email_or_none)]
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9 ().\-]{1,31}$")


class EndUserDTO(ApiModel):
    end_user_id: int = Field(alias="endUserID")
    uid: str
    name: str | None
    email: str | None
    phone: str | None
    date_created: datetime = Field(validation_alias="created_at")
