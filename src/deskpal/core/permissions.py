"""Roles, permissions, and the dependencies that authenticate, authorise and open the transaction."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.core.context import Actor, ActorKind, Ctx, Role
from deskpal.core.db import Database, transaction
from deskpal.core.errors import Forbidden, Unauthorized


class Perm(enum.StrEnum):
    TICKETS_READ = "tickets:read"
    TICKETS_WRITE = "tickets:write"
    SETTINGS_READ = "settings:read"  # channels, topics, reps, custom fields, end users
    SETTINGS_WRITE = "settings:write"
    APIKEYS_OWN = "apikeys:own"  # list, create and revoke one's own keys
    APIKEYS_ANY = "apikeys:any"
    JOBS_ADMIN = "jobs:admin"

    @property
    def is_write(self) -> bool:
        return self in _WRITE_PERMS


_WRITE_PERMS = {Perm.TICKETS_WRITE, Perm.SETTINGS_WRITE, Perm.APIKEYS_OWN, Perm.APIKEYS_ANY, Perm.JOBS_ADMIN}

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.AGENT: frozenset({Perm.TICKETS_READ, Perm.TICKETS_WRITE, Perm.SETTINGS_READ, Perm.APIKEYS_OWN}),
    Role.RESTRICTED: frozenset({Perm.TICKETS_READ, Perm.TICKETS_WRITE, Perm.SETTINGS_READ, Perm.APIKEYS_OWN}),
    Role.VIEWER: frozenset({Perm.TICKETS_READ, Perm.SETTINGS_READ, Perm.APIKEYS_OWN}),
}

# Which roles' rights each role includes: permissions and ticket visibility (tickets/visibility.py)
# alike. Agents see every ticket restricted reps see and can do what they do; a viewer sees more
# tickets than an agent but writes none, so neither includes the other.
ROLE_INCLUDES: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset(Role),
    Role.AGENT: frozenset({Role.AGENT, Role.RESTRICTED}),
    Role.RESTRICTED: frozenset({Role.RESTRICTED}),
    Role.VIEWER: frozenset({Role.VIEWER}),
}


def is_downgrade(old: Role, new: Role) -> bool:
    """True when `new` lacks some right `old` had: the rep's login tokens are then revoked."""
    return old not in ROLE_INCLUDES[new]


# Phone auth acts on tickets and messages of its own channel and nothing else.
PHONE_PERMS: frozenset[Perm] = frozenset({Perm.TICKETS_READ, Perm.TICKETS_WRITE})

# The session and the bearer token -> who acts (auth/service.py); services never see the Request.
Authenticator = Callable[[AsyncSession, str], Awaitable[Actor]]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected Authorization: Bearer <token>")
    return token


class Policy(enum.StrEnum):
    """The access policies the reference pages name."""

    REP = "Rep"  # a representative with the permission (admin API)
    TICKET_ACCESS = "TicketAccess"
    TICKET_ACCESS_OR_PHONE_AUTH = "TicketAccessOrPhoneAuth"
    TICKET_CREATE_FROM_PHONE = "TicketCreateFromPhone"


def _allows_phone(policy: Policy) -> bool:
    return policy in {Policy.TICKET_ACCESS_OR_PHONE_AUTH, Policy.TICKET_CREATE_FROM_PHONE}


def require(perm: Perm, policy: Policy = Policy.REP, *, writes_after_body: bool = False) -> Any:
    """Authenticate, check the permission, bind the tenant, and run the handler in one transaction.

    writes_after_body: for uploads. The handler runs on a read-only session (its checks) while it
    streams the body to storage, and writes in its own transaction afterwards (`write_unit`):
    streaming megabytes from a slow client must not hold SQLite's write lock, which every other
    writer of the process waits for.
    """

    async def dependency(request: Request) -> AsyncIterator[Ctx]:
        db: Database = request.app.state.db
        authenticate: Authenticator = request.app.state.authenticate
        async with transaction(db, write=perm.is_write and not writes_after_body) as session:
            actor = await authenticate(session, bearer_token(request))
            if actor.is_phone:
                if not _allows_phone(policy):
                    raise Forbidden(
                        "phone auth is not accepted on this endpoint", code="PHONE_AUTH_NOT_ALLOWED"
                    )
                allowed = PHONE_PERMS
            else:
                allowed = ROLE_PERMS[actor.role] if actor.role else frozenset()
            if perm not in allowed:
                raise Forbidden(f"role {actor.role or 'phone'} lacks permission {perm}")
            session.info["customer_id"] = actor.customer_id
            request.state.actor = actor
            yield Ctx(db=session, actor=actor)

    dependency.deskpal_policy = (policy, perm)  # type: ignore[attr-defined]
    # scope="function": commit before the response goes out, so a failed commit is never a 200.
    return Depends(dependency, scope="function")


@asynccontextmanager
async def write_unit(request: Request, ctx: Ctx) -> AsyncIterator[Ctx]:
    """The write transaction of a handler declared with writes_after_body, for the same actor."""
    async with transaction(request.app.state.db, customer_id=ctx.customer_id) as session:
        yield Ctx(db=session, actor=ctx.actor)


def ticket_access(perm: Perm = Perm.TICKETS_READ, *, writes_after_body: bool = False) -> Any:
    return require(perm, Policy.TICKET_ACCESS, writes_after_body=writes_after_body)


def ticket_access_or_phone_auth(perm: Perm = Perm.TICKETS_READ, *, writes_after_body: bool = False) -> Any:
    return require(perm, Policy.TICKET_ACCESS_OR_PHONE_AUTH, writes_after_body=writes_after_body)


def ticket_create_from_phone() -> Any:
    return require(Perm.TICKETS_WRITE, Policy.TICKET_CREATE_FROM_PHONE)


@dataclass(slots=True)
class PublicUnit:
    """A public route's transaction before it knows its customer: the handler finds the customer
    from what it was given (a channel's token, a file's token) and binds it, as the one actor kind
    its route declares; it cannot act as anyone else."""

    db: AsyncSession
    kind: ActorKind
    request: Request

    def bind(self, customer_id: int, *, channel_id: int | None = None) -> Ctx:
        ctx = Ctx.acting(self.db, customer_id, self.kind, channel_id=channel_id)
        self.request.state.actor = ctx.actor
        return ctx


PUBLIC_KINDS = frozenset({ActorKind.VISITOR, ActorKind.WEBHOOK, ActorKind.LINK})


def public(kind: ActorKind, *, reason: str, write: bool = True) -> Any:
    """No representative's credentials: the handler binds a tenant itself (PublicUnit.bind).
    `reason` says why the route needs none; it is what a review of the public surface reads."""
    if kind not in PUBLIC_KINDS:
        raise ValueError(f"a public route acts as a visitor, a webhook or a link, not {kind}")
    if len(reason) < 20:
        raise ValueError("a public route says why it takes no credentials")

    async def dependency(request: Request) -> AsyncIterator[PublicUnit]:
        async with transaction(request.app.state.db, write=write) as session:
            yield PublicUnit(session, kind, request)

    dependency.deskpal_public = reason  # type: ignore[attr-defined]
    dependency.deskpal_public_kind = kind  # type: ignore[attr-defined]
    return Depends(dependency, scope="function")


def credential_free(reason: str) -> Any:
    """A route that acts for nobody yet (login exchanges credentials for a token), with its reason."""

    async def dependency() -> None:
        return None

    dependency.deskpal_public = reason  # type: ignore[attr-defined]
    return Depends(dependency)
