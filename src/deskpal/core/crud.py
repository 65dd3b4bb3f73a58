"""Small query helpers every domain service uses."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from deskpal.core.errors import NotFound

M = TypeVar("M")


async def get_or_404(
    db: AsyncSession,
    model: type[M],
    ident: Any,
    *,
    where: ColumnElement[bool] | None = None,
    what: str | None = None,
) -> M:
    """The row with this primary key, visible to the bound tenant (and `where`), or NotFound."""
    from sqlalchemy import inspect, select

    pk = inspect(model).primary_key[0]
    stmt = select(model).where(pk == ident)
    if where is not None:
        stmt = stmt.where(where)
    row = (await db.scalars(stmt)).first()
    if row is None:
        raise NotFound(f"{what or model.__name__} {ident} not found")
    return row
