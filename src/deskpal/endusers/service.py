"""End users."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.db import utcnow
from deskpal.core.errors import Conflict
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.core.tenancy import (
    TENANT_PARAM,
    insert_now,
    read_bound,
    tenant_bound,
    tenant_insert,
    write_bound,
)
from deskpal.endusers.models import EndUser
from deskpal.endusers.schemas import EndUserWriteDTO


async def list_end_users(
    ctx: Ctx, params: PageParams, *, uid: str | None = None, email: str | None = None
) -> PageResult[EndUser]:
    stmt = select(EndUser).order_by(EndUser.end_user_id.desc())
    if uid is not None:
        stmt = stmt.where(EndUser.uid == uid)
    if email is not None:
        stmt = stmt.where(EndUser.email == email.strip().lower())
    return await paginate(ctx.db, stmt, params)


async def get_end_user(ctx: Ctx, end_user_id: int) -> EndUser:
    return await get_or_404(ctx.db, EndUser, end_user_id, what="end user")


async def find_by_uid(ctx: Ctx, uid: str) -> EndUser | None:
    return (await ctx.db.scalars(select(EndUser).where(EndUser.uid == uid))).first()


@functools.cache
def _upsert(dialect: str) -> Any:
    """The end user with this uid, inserted when new, else the fields it lacks filled in (nothing
    known is overwritten), its id returned: one statement, built once per dialect."""
    table: Table = EndUser.__table__  # type: ignore[assignment]
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = dialect_insert(table)
    fill = {
        # An empty value counts as missing, as a form's blank field would.
        name: func.coalesce(func.nullif(table.c[name], ""), stmt.excluded[name])
        for name in ("name", "email", "phone")
    }
    return tenant_insert(
        stmt.on_conflict_do_update(index_elements=["customer_id", "uid"], set_=fill).returning(
            table.c.end_user_id
        )
    )


@functools.cache
def _by_uid() -> Any:
    e = EndUser
    stmt = select(e.end_user_id, e.name, e.email, e.phone).where(
        e.customer_id == bindparam(TENANT_PARAM), e.uid == bindparam("uid")
    )
    return tenant_bound(stmt)


async def upsert_end_user(ctx: Ctx, data: EndUserWriteDTO) -> int:
    """The id of the end user with this uid, created when new; known fields fill in what was
    missing."""
    known = (await read_bound(ctx.db, _by_uid(), {"uid": data.uid})).first()
    given = (("name", data.name), ("email", data.email), ("phone", data.phone))
    if known is not None and not any(value and not getattr(known, key) for key, value in given):
        # Nothing to add: no write, so no row lock (on PostgreSQL every message from the same
        # end user would wait for it until its transaction ends).
        return int(known.end_user_id)
    values = {
        "uid": data.uid,
        "name": data.name,
        "email": data.email,
        "phone": data.phone,
        "created_at": utcnow(),
    }
    dialect = ctx.db.get_bind().dialect.name
    return int((await write_bound(ctx.db, _upsert(dialect), values)).scalar_one())


async def upsert_lenient(
    ctx: Ctx, *, uid: str, name: str | None, email: str | None, phone: str | None
) -> int | None:
    """upsert_end_user for what a message says of its sender: an address, number or name the
    end-user rules refuse is left out rather than failing the message (None: not even the uid)."""
    for candidate in (
        {"uid": uid, "name": name, "email": email, "phone": phone},
        {"uid": uid, "name": name, "email": email},
        {"uid": uid, "name": name, "phone": phone},
        {"uid": uid, "name": name},
        {"uid": uid},
    ):
        try:
            data = EndUserWriteDTO.model_validate(candidate)
        except ValidationError:
            continue
        return await upsert_end_user(ctx, data)
    return None


async def create_end_user(ctx: Ctx, data: EndUserWriteDTO) -> EndUser:
    if await find_by_uid(ctx, data.uid) is not None:
        raise Conflict(f"an end user with uid {data.uid!r} exists", code="END_USER_UID_TAKEN")
    return await _insert(ctx, data)


async def _insert(ctx: Ctx, data: EndUserWriteDTO) -> EndUser:
    user = EndUser(uid=data.uid, name=data.name, email=data.email, phone=data.phone)
    await insert_now(ctx.db, user)
    return user


async def update_end_user(ctx: Ctx, end_user_id: int, data: EndUserWriteDTO) -> EndUser:
    user = await get_end_user(ctx, end_user_id)
    if data.uid != user.uid and await find_by_uid(ctx, data.uid) is not None:
        raise Conflict(f"an end user with uid {data.uid!r} exists", code="END_USER_UID_TAKEN")
    user.uid, user.name, user.email, user.phone = data.uid, data.name, data.email, data.phone
    await ctx.db.flush()
    return user


async def delete_end_user(ctx: Ctx, end_user_id: int) -> None:
    await ctx.db.delete(await get_end_user(ctx, end_user_id))
    await ctx.db.flush()
