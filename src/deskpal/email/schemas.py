"""Email template DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from deskpal.core.schemas import ApiModel, CleanStr, Line

# Characters here; the 64 KB cap of the template's UTF-8 source is templates.check_source's.
TemplateSource = Annotated[CleanStr, Field(max_length=64 * 1024)]


class EmailTemplateWriteDTO(ApiModel):
    name: Line = Field(min_length=1, max_length=200)
    header: TemplateSource | None = None
    footer: TemplateSource | None = None
    signature: TemplateSource | None = None
    is_default: bool = Field(default=False, description="The template of mail that names none.")


class EmailTemplateDTO(ApiModel):
    email_template_id: int = Field(alias="emailTemplateID")
    name: str
    header: str | None
    footer: str | None
    signature: str | None
    is_default: bool
    date_created: datetime = Field(validation_alias="created_at")
    date_updated: datetime | None = Field(validation_alias="updated_at")
