"""Custom field definition DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from deskpal.core.schemas import ApiModel, Line
from deskpal.customfields.models import EntityType, FieldType

Option = Annotated[Line, Field(min_length=1, max_length=200)]


class CustomFieldDefinitionWriteDTO(ApiModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    label: str | None = Field(default=None, max_length=200)
    field_type: FieldType
    entity_type: EntityType = EntityType.TICKET
    required: bool = False
    # validate_default: a select field that leaves options out is refused too.
    options: list[Option] = Field(default_factory=list, max_length=500, validate_default=True)

    @field_validator("options")
    @classmethod
    def _options_fit_type(cls, options: list[str], info: ValidationInfo) -> list[str]:
        # A field validator (not a model validator) so that the error names `options`, not the body.
        field_type = info.data.get("field_type")
        if field_type is None:  # fieldType itself failed; its own error says so
            return options
        has_choices = field_type in {FieldType.SELECT, FieldType.MULTISELECT}
        if has_choices and not options:
            raise ValueError("a select or multiselect field needs at least one option")
        if not has_choices and options:
            raise ValueError("only select and multiselect fields take options")
        if len(set(options)) != len(options):
            raise ValueError("must be unique")
        return options


class CustomFieldDefinitionDTO(ApiModel):
    custom_field_definition_id: int = Field(alias="customFieldDefinitionID")
    name: str
    label: str | None
    field_type: FieldType
    entity_type: EntityType
    required: bool
    options: list[str]
    date_created: datetime = Field(validation_alias="created_at")
