"""Authentication (API keys, login tokens, phone tokens) and API key management."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.auth.models import ApiKey
from deskpal.channels.models import Channel
from deskpal.config import Settings
from deskpal.core import ratelimit
from deskpal.core.addresses import normalize_email
from deskpal.core.context import Actor, ActorKind, AuthMethod, Ctx, Role
from deskpal.core.crud import get_or_404
from deskpal.core.db import Database, transaction, utcnow
from deskpal.core.errors import Forbidden, TooManyRequests, Unauthorized
from deskpal.core.permissions import Authenticator
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.core.security import (
    API_KEY_PREFIX,
    PHONE_TOKEN_PREFIX,
    digest,
    issue_jwt,
    new_secret,
    read_jwt,
    verify_password,
)
from deskpal.customers.models import CustomerRep
from deskpal.customers.service import get_rep

TOUCH_EVERY = timedelta(minutes=1)
log = logging.getLogger(__name__)


async def _active_rep(db: AsyncSession, rep_id: int, customer_id: int | None = None) -> CustomerRep:
    stmt = select(CustomerRep).where(CustomerRep.customer_rep_id == rep_id, CustomerRep.is_active.is_(True))
    if customer_id is not None:
        stmt = stmt.where(CustomerRep.customer_id == customer_id)
    rep = (await db.scalars(stmt.execution_options(all_tenants=True))).first()
    if rep is None:
        raise Unauthorized("unknown or inactive account")
    return rep


def _rep_actor(rep: CustomerRep, method: AuthMethod, api_key_id: int | None = None) -> Actor:
    return Actor(
        customer_id=rep.customer_id,
        kind=ActorKind.REP,
        method=method,
        rep_id=rep.customer_rep_id,
        role=Role(rep.role),
        name=rep.name,
        api_key_id=api_key_id,
    )


def make_authenticator(settings: Settings, database: Database) -> Authenticator:
    secret_key = settings.resolved_secret_key

    async def authenticate(db: AsyncSession, token: str) -> Actor:
        """The actor a bearer token names (the HTTP layer takes it from the request)."""
        if token.startswith(API_KEY_PREFIX):
            return await _by_api_key(db, database, token)
        if token.startswith(PHONE_TOKEN_PREFIX):
            return await _by_phone_token(db, token)
        claims = read_jwt(secret_key, token)
        if claims is None:
            raise Unauthorized("invalid or expired token")
        rep = await _active_rep(db, claims.rep_id, claims.customer_id)
        # The rep's current key: another rep given the same id has another one, and the rep's own
        # key changed if a deactivation, a new password or email, or a downgrade revoked its tokens.
        if not hmac.compare_digest(rep.token_key.encode(), claims.token_key.encode()):
            raise Unauthorized("login token revoked; log in again")
        return _rep_actor(rep, AuthMethod.JWT)

    return authenticate


# Run on every request: the key with the rep it acts as (same customer, active) in one query, only
# the columns an actor is made of, built once.
_API_KEY_ACTOR = (
    select(
        ApiKey.api_key_id,
        ApiKey.last_used_at,
        CustomerRep.customer_rep_id,
        CustomerRep.customer_id,
        CustomerRep.role,
        CustomerRep.name,
    )
    .join(
        CustomerRep,
        and_(
            CustomerRep.customer_rep_id == ApiKey.customer_rep_id,
            CustomerRep.customer_id == ApiKey.customer_id,
        ),
    )
    .where(
        ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None), CustomerRep.is_active.is_(True)
    )
    .execution_options(all_tenants=True)
)


async def _by_api_key(db: AsyncSession, database: Database, token: str) -> Actor:
    # On the connection, not through the session: no tenant is bound yet (the key names it), and the
    # ORM execution path costs more than the query.
    connection = await db.connection()
    row = (await connection.execute(_API_KEY_ACTOR, {"key_hash": digest(token)})).first()
    if row is None:
        raise Unauthorized("unknown or revoked API key, or inactive account")
    key_id, last_used_at, rep_id, customer_id, role, name = row
    now = utcnow()
    if last_used_at is None or now - last_used_at > TOUCH_EVERY:
        await _touch(db, database, key_id, now)
    return Actor(
        customer_id=customer_id,
        kind=ActorKind.REP,
        method=AuthMethod.API_KEY,
        rep_id=rep_id,
        role=Role(role),
        name=name,
        api_key_id=key_id,
    )


async def _touch(db: AsyncSession, database: Database, key_id: int, now: datetime) -> None:
    stmt = (
        update(ApiKey)
        .where(ApiKey.api_key_id == key_id)
        .values(last_used_at=now)
        .execution_options(all_tenants=True, synchronize_session=False)
    )
    if database.dialect == "sqlite":
        conn = await db.connection()
        holds_write_lock = bool(
            conn.sync_connection and conn.sync_connection.get_execution_options().get("sqlite_immediate")
        )
        if holds_write_lock:  # a second writer would wait on the lock this request holds
            await db.execute(stmt)
            return
        if database.write_lock().locked():
            return  # best-effort: a read never queues behind writers for it; a later request stamps
    # Its own short transaction: a row lock held until the request ends would make two requests
    # that touch each other's keys (deleting each other's reps) deadlock; a read transaction on
    # SQLite cannot wait for the write lock either. The stamp is best-effort.
    try:
        async with transaction(database) as own:
            await own.execute(stmt)
    except DBAPIError as exc:
        log.warning("could not record API key use: %s", exc)


async def _by_phone_token(db: AsyncSession, token: str) -> Actor:
    stmt = select(Channel).where(Channel.phone_auth_token_hash == digest(token))
    channel = (await db.scalars(stmt.execution_options(all_tenants=True))).first()
    if channel is None:
        raise Unauthorized("unknown phone auth token")
    return Actor(
        customer_id=channel.customer_id,
        kind=ActorKind.PHONE,
        method=AuthMethod.PHONE,
        name=f"phone:{channel.name}",
        channel_id=channel.channel_id,
    )


async def login(
    database: Database, settings: Settings, *, email: str, password: str, address: str
) -> tuple[str, datetime, CustomerRep]:
    """A login token for valid credentials; rate-limited per address and per account."""
    await ratelimit.enforce(
        database, f"login:addr:{address}", limit=settings.login_limit_per_address, window_seconds=60
    )
    try:
        email = normalize_email(email)
    except ValueError:
        email = email.strip().lower()
    account_key = f"login:acct:{email}"
    if await ratelimit.count(database, account_key, window_seconds=900) >= settings.login_limit_per_account:
        raise TooManyRequests(ratelimit.retry_after(900), "too many failed logins for this account")
    async with transaction(database, write=False) as db:
        stmt = select(CustomerRep).where(CustomerRep.email == email, CustomerRep.is_active.is_(True))
        rep = (await db.scalars(stmt.execution_options(all_tenants=True))).first()
    if not verify_password(password, rep.password_hash if rep else None) or rep is None:
        await ratelimit.hit(database, account_key, limit=settings.login_limit_per_account, window_seconds=900)
        raise Unauthorized("wrong email or password", code="INVALID_CREDENTIALS")
    token, expires = issue_jwt(
        settings.resolved_secret_key,
        rep_id=rep.customer_rep_id,
        customer_id=rep.customer_id,
        token_key=rep.token_key,
        ttl_seconds=settings.jwt_ttl_seconds,
    )
    return token, expires, rep


# --- API keys --------------------------------------------------------------------------------------


def _may_manage_any(ctx: Ctx) -> bool:
    return ctx.actor.is_admin


async def create_api_key(ctx: Ctx, *, name: str, rep_id: int | None = None) -> tuple[ApiKey, str]:
    owner = rep_id or ctx.actor.rep_id
    if owner is None:
        raise Forbidden("name the representative the key acts as", code="REP_REQUIRED")
    if owner != ctx.actor.rep_id and not _may_manage_any(ctx):
        raise Forbidden("only admins create keys for other representatives")
    await get_rep(ctx, owner)
    secret = new_secret(API_KEY_PREFIX)
    key = ApiKey(
        customer_rep_id=owner, name=name, prefix=secret[: len(API_KEY_PREFIX) + 6], key_hash=digest(secret)
    )
    ctx.db.add(key)
    await ctx.db.flush()
    return key, secret


async def list_api_keys(ctx: Ctx, params: PageParams) -> PageResult[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.api_key_id)
    if not _may_manage_any(ctx):
        stmt = stmt.where(ApiKey.customer_rep_id == ctx.actor.rep_id)
    return await paginate(ctx.db, stmt, params)


async def get_api_key(ctx: Ctx, key_id: int) -> ApiKey:
    where = None if _may_manage_any(ctx) else ApiKey.customer_rep_id == ctx.actor.rep_id
    return await get_or_404(ctx.db, ApiKey, key_id, where=where, what="API key")


async def rename_api_key(ctx: Ctx, key_id: int, name: str) -> ApiKey:
    key = await get_api_key(ctx, key_id)
    key.name = name
    await ctx.db.flush()
    return key


async def revoke_api_key(ctx: Ctx, key_id: int) -> None:
    key = await get_api_key(ctx, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await ctx.db.flush()


async def find_channel_by_public_token(db: AsyncSession, token: str) -> Channel | None:
    """The channel a public token names, in whichever customer: how anonymous callers (the chat
    widget) reach a tenant. The caller binds that channel's customer before touching anything else."""
    stmt = select(Channel).where(Channel.token == token)
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()
