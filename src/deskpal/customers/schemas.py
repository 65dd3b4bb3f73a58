"""CustomerRep DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from deskpal.core.addresses import normalize_email
from deskpal.core.context import Role
from deskpal.core.schemas import ApiModel, Line

Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(normalize_email)]
Password = Annotated[str, Field(min_length=8, max_length=200)]
Name = Annotated[Line, Field(min_length=1, max_length=200)]


class CustomerRepCreateDTO(ApiModel):
    name: Name
    email: Email
    password: Password | None = Field(default=None, description="Omit for a rep who only uses API keys.")
    role: Role = Role.AGENT


class CustomerRepUpdateDTO(ApiModel):
    name: Name
    email: Email
    role: Role
    password: Password | None = Field(default=None, description="Omit to keep the current password.")
    is_active: bool = True


class CustomerRepDTO(ApiModel):
    customer_rep_id: int = Field(alias="customerRepID")
    name: str
    email: str
    role: Role
    is_active: bool
    date_created: datetime = Field(validation_alias="created_at")
