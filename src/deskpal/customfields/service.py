"""Custom field definitions, and validation of customFieldsData against them."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import Select, bindparam, select
from sqlalchemy import inspect as sa_inspect

from deskpal.core.addresses import normalize_email
from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict, ValidationFailed
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.core.tenancy import TENANT_PARAM, read_bound, tenant_bound
from deskpal.customfields.models import CustomFieldDefinition, EntityType, FieldType
from deskpal.customfields.schemas import CustomFieldDefinitionWriteDTO

MAX_UNDEFINED_VALUE = 4000


async def list_definitions(
    ctx: Ctx, params: PageParams, *, entity_type: EntityType | None = None
) -> PageResult[CustomFieldDefinition]:
    stmt = select(CustomFieldDefinition).order_by(CustomFieldDefinition.custom_field_definition_id)
    if entity_type is not None:
        stmt = stmt.where(CustomFieldDefinition.entity_type == entity_type.value)
    return await paginate(ctx.db, stmt, params)


_MEMO = "customfields.definitions"


async def definitions_for(ctx: Ctx, entity_type: EntityType) -> list[CustomFieldDefinition]:
    """The customer's definitions for one entity type, by name.

    Read once per transaction for every entity type (a new message validates a ticket's and a
    message's fields and shows the latter); the definition writers below forget that copy.
    """
    every: list[CustomFieldDefinition] | None = ctx.db.info.get(_MEMO)
    if every is None:
        # Plain rows with the entity's attribute names (read on every message creation: the
        # statement is built once, the tenant bound from the session).
        rows = await read_bound(ctx.db, _all_definitions())
        every = ctx.db.info[_MEMO] = list(rows.all())
    return [d for d in every if d.entity_type == entity_type.value]


@functools.cache
def _all_definitions() -> Select[Any]:
    d = CustomFieldDefinition
    columns = [getattr(d, prop.key).label(prop.key) for prop in sa_inspect(d).column_attrs]
    stmt = select(*columns).where(d.customer_id == bindparam(TENANT_PARAM)).order_by(d.name)
    return tenant_bound(stmt)


def _forget_definitions(ctx: Ctx) -> None:
    ctx.db.info.pop(_MEMO, None)


async def get_definition(ctx: Ctx, definition_id: int) -> CustomFieldDefinition:
    return await get_or_404(ctx.db, CustomFieldDefinition, definition_id, what="custom field definition")


async def _ensure_name_free(ctx: Ctx, name: str, entity_type: str, except_id: int | None) -> None:
    stmt = select(CustomFieldDefinition.custom_field_definition_id).where(
        CustomFieldDefinition.name == name, CustomFieldDefinition.entity_type == entity_type
    )
    if except_id is not None:
        stmt = stmt.where(CustomFieldDefinition.custom_field_definition_id != except_id)
    if (await ctx.db.scalars(stmt)).first() is not None:
        raise Conflict(f"a {entity_type} field named {name!r} exists", code="FIELD_NAME_TAKEN")


def _apply(row: CustomFieldDefinition, data: CustomFieldDefinitionWriteDTO, *, creating: bool) -> None:
    row.name, row.label, row.required = data.name, data.label, data.required
    row.field_type, row.options = data.field_type.value, data.options
    if creating or "entity_type" in data.model_fields_set:
        # A PUT that leaves entityType out keeps it: its default (Ticket) would move a message
        # field's definition, and the values stored under it, to tickets.
        row.entity_type = data.entity_type.value


async def create_definition(ctx: Ctx, data: CustomFieldDefinitionWriteDTO) -> CustomFieldDefinition:
    await _ensure_name_free(ctx, data.name, data.entity_type.value, None)
    row = CustomFieldDefinition()
    _apply(row, data, creating=True)
    ctx.db.add(row)
    await ctx.db.flush()
    _forget_definitions(ctx)
    return row


async def update_definition(
    ctx: Ctx, definition_id: int, data: CustomFieldDefinitionWriteDTO
) -> CustomFieldDefinition:
    row = await get_definition(ctx, definition_id)
    entity_type = data.entity_type.value if "entity_type" in data.model_fields_set else row.entity_type
    await _ensure_name_free(ctx, data.name, entity_type, definition_id)
    _apply(row, data, creating=False)
    await ctx.db.flush()
    _forget_definitions(ctx)
    return row


async def delete_definition(ctx: Ctx, definition_id: int) -> None:
    await ctx.db.delete(await get_definition(ctx, definition_id))
    await ctx.db.flush()
    _forget_definitions(ctx)


def _coerce(defn: CustomFieldDefinition, value: Any) -> Any:
    """The value in its stored form, or ValueError saying what the field takes."""
    kind = FieldType(defn.field_type)
    if kind is FieldType.TEXT:
        if not isinstance(value, str) or len(value) > MAX_UNDEFINED_VALUE:
            raise ValueError(f"must be text of at most {MAX_UNDEFINED_VALUE} characters")
        return value
    if kind is FieldType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a float: JSON allows it, nothing reads it back
            finite = False
        if not finite:
            raise ValueError("must be a finite number")
        return value
    if kind is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if kind in {FieldType.DATE, FieldType.DATETIME}:
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date" + ("time" if kind is FieldType.DATETIME else ""))
        try:
            parsed: date = (
                date.fromisoformat(value) if kind is FieldType.DATE else datetime.fromisoformat(value)
            )
        except ValueError as exc:
            raise ValueError(f"must be an ISO 8601 {kind.value}") from exc
        return parsed.isoformat()
    if kind is FieldType.EMAIL:
        if not isinstance(value, str):
            raise ValueError("must be an email address")
        return normalize_email(value)
    if kind is FieldType.URL:
        parsed_url = urlparse(value) if isinstance(value, str) else None
        if parsed_url is None or parsed_url.scheme not in {"http", "https"} or not parsed_url.netloc:
            raise ValueError("must be an http(s) URL")
        return value
    if kind is FieldType.SELECT:
        if value not in defn.options:
            raise ValueError(f"must be one of {defn.options}")
        return value
    if not isinstance(value, list) or any(v not in defn.options for v in value):
        raise ValueError(f"must be a list of values from {defn.options}")
    return list(dict.fromkeys(value))


def _check_undefined(value: Any) -> Any:
    # Fields nobody defined are kept (clients such as the reference pages' examples send them), as
    # long as they are plain scalars or lists of scalars.
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, str) and len(value) > MAX_UNDEFINED_VALUE:
        raise ValueError(f"must be at most {MAX_UNDEFINED_VALUE} characters")
    if isinstance(value, list) and len(value) <= 100 and all(isinstance(v, scalar) for v in value):
        return value
    if not isinstance(value, scalar):
        raise ValueError("must be text, a number, true/false, null or a list of those")
    return value


async def validate_custom_fields(
    ctx: Ctx,
    entity_type: EntityType,
    data: Mapping[str, Any] | None,
    *,
    field: str = "customFieldsData",
    partial: bool = False,
) -> dict[str, Any]:
    """customFieldsData checked against the definitions; every error names its field.

    partial=True (an update that leaves fields out) does not insist on required fields.
    """
    data = dict(data or {})
    if len(data) > 200:
        raise ValidationFailed.field(field, "at most 200 custom fields")
    defs = {d.name: d for d in await definitions_for(ctx, entity_type)}
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    for key, value in data.items():
        defn = defs.get(key)
        try:
            if defn is None:
                out[key] = _check_undefined(value)
            elif value is None:
                if defn.required:
                    raise ValueError("is required")
                out[key] = None
            else:
                out[key] = _coerce(defn, value)
        except ValueError as exc:
            errors.append({"field": f"{field}.{key}", "message": str(exc)})
    if not partial:
        for name, defn in defs.items():
            if defn.required and name not in data:
                errors.append({"field": f"{field}.{name}", "message": "is required"})
    if errors:
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
    return out
