"""Login and API key DTOs."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from deskpal.core.schemas import ApiModel, DbId, Line


class LoginDTO(ApiModel):
    email: Line = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=200)


class LoginResultDTO(ApiModel):
    token: str
    expires_at: datetime
    customer_rep_id: int = Field(alias="customerRepID")
    customer_id: int = Field(alias="customerID")


class ApiKeyCreateDTO(ApiModel):
    name: Line = Field(min_length=1, max_length=200)
    customer_rep_id: DbId | None = Field(
        default=None, alias="customerRepID", description="Whose key; admins only, default the caller."
    )


class ApiKeyUpdateDTO(ApiModel):
    name: Line = Field(min_length=1, max_length=200)


class ApiKeyDTO(ApiModel):
    api_key_id: int = Field(alias="apiKeyID")
    customer_rep_id: int = Field(alias="customerRepID")
    name: str
    prefix: str
    date_created: datetime = Field(validation_alias="created_at")
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedDTO(ApiKeyDTO):
    api_key: str = Field(description="The key itself; shown this once and never again.")
