"""DTO base class, safe scalar types and the paging helper every list endpoint shares."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

MAX_ID = 2**53 - 1  # what JavaScript clients hold exactly, and inside PostgreSQL's bigint


def clean_text(value: str) -> str:
    # PostgreSQL refuses NUL in text and lone surrogates in UTF-8: refuse them here, as a 400.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


CleanStr = Annotated[str, AfterValidator(clean_text)]


def _not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


# A name, status or subject: trimmed, and never only spaces (which would pass min_length=1).
Line = Annotated[CleanStr, AfterValidator(_not_blank)]


def as_utc(value: datetime) -> datetime:
    """The instant in UTC; zone-less times mean UTC, as clients of the reference service send them."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-05:00 is a valid ISO 8601 instant after the last one Python holds.
        raise ValueError(
            f"must be an instant between {datetime.min:%Y-%m-%d} and {datetime.max:%Y-%m-%d} UTC"
        ) from None


# Every date-time a client writes is one of these: a new field cannot forget the UTC conversion.
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


class ApiModel(BaseModel):
    """camelCase JSON names; irregular ones (ticketID, ai_GeneratedResponse) set alias= explicitly."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
        serialize_by_alias=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_unsafe_text(cls, value: Any) -> Any:
        return _clean_json(value)


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def built(cls: type[M], values: dict[str, Any]) -> M:
    """A read DTO from values the database has typed already, every field given by its name.

    model_construct does this too, but looks up each field's alias and default in Python: about
    25 µs for a ticket, 50 times for a page of 25 tickets and their end users (docs/performance.md).
    Serialisation is Pydantic's own, so the JSON is the same. A missing or unknown field is a
    programming error, refused here rather than serialised wrongly.
    """
    if values.keys() != cls.__pydantic_fields__.keys():
        wrong = set(values) ^ set(cls.__pydantic_fields__)
        raise TypeError(f"{cls.__name__} built with missing or unknown fields: {sorted(wrong)}")
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Page(ApiModel, Generic[T]):
    items: list[T]
    total_count: int
    total_pages: int


@dataclass(frozen=True, slots=True)
class PageParams:
    page_number: int = 1
    page_size: int = 10

    @property
    def offset(self) -> int:
        return (self.page_number - 1) * self.page_size


async def page_params(
    page_number: Annotated[int, Query(alias="pageNumber", ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 10,
) -> PageParams:
    return PageParams(page_number, page_size)


@dataclass(frozen=True, slots=True)
class PageResult(Generic[T]):
    items: Sequence[T]
    total: int
    params: PageParams

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.params.page_size) if self.total else 0


async def paginate(db: AsyncSession, stmt: Select[Any], params: PageParams) -> PageResult[Any]:
    """Run a page of `stmt` (which must be ordered) and count all its rows."""
    total = await db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (await db.scalars(stmt.limit(params.page_size).offset(params.offset))).all()
    return PageResult(rows, int(total or 0), params)


def to_page(result: PageResult[Any], convert: Callable[[Any], T]) -> Page[T]:
    page: Page[T] = built(
        Page,
        {
            "items": [convert(row) for row in result.items],
            "total_count": result.total,
            "total_pages": result.total_pages,
        },
    )
    return page
