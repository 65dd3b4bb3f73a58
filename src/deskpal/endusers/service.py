"""End users."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.core.tenancy import insert_now, update_now
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


async def upsert_end_user(ctx: Ctx, data: EndUserWriteDTO) -> EndUser:
    """The end user with this uid, created when new; known fields fill in what was missing."""
    user = await find_by_uid(ctx, data.uid)
    if user is None:
        return await _insert(ctx, data)
    # Known fields fill in what was missing; nothing known is overwritten.
    changes = {
        key: value
        for key, value in (("name", data.name), ("email", data.email), ("phone", data.phone))
        if value and not getattr(user, key)
    }
    if changes:
        await update_now(ctx.db, user, changes)
    return user


async def upsert_lenient(
    ctx: Ctx, *, uid: str, name: str | None, email: str | None, phone: str | None
) -> EndUser | None:
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
