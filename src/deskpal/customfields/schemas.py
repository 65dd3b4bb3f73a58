"""Custom field definition DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import Field, model_validator

from deskpal.core.schemas import ApiModel
from deskpal.customfields.models import EntityType, FieldType

Option = Annotated[str, Field(min_length=1, max_length=200)]


class CustomFieldDefinitionWriteDTO(ApiModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    label: str | None = Field(default=None, max_length=200)
    field_type: FieldType
    entity_type: EntityType = EntityType.TICKET
    required: bool = False
    options: list[Option] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _options_fit_type(self) -> Self:
        has_choices = self.field_type in {FieldType.SELECT, FieldType.MULTISELECT}
        if has_choices and not self.options:
            raise ValueError("options: a select or multiselect field needs at least one option")
        if not has_choices and self.options:
            raise ValueError("options: only select and multiselect fields take options")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options: must be unique")
        return self


class CustomFieldDefinitionDTO(ApiModel):
    custom_field_definition_id: int = Field(alias="customFieldDefinitionID")
    name: str
    label: str | None
    field_type: FieldType
    entity_type: EntityType
    required: bool
    options: list[str]
    date_created: datetime = Field(validation_alias="created_at")
