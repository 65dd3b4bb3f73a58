"""Who is acting, and the session their unit of work runs in."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.core.enums import CaseInsensitiveEnum

if TYPE_CHECKING:
    from deskpal.core.jobs import JobRow


class Role(CaseInsensitiveEnum):
    ADMIN = "admin"
    AGENT = "agent"
    RESTRICTED = "restricted"
    VIEWER = "viewer"


class ActorKind(enum.StrEnum):
    """Who acts. Each kind gets only what it needs (core/permissions.py, tickets/visibility.py)."""

    REP = "rep"  # a customer representative, by API key or login token
    PHONE = "phone"  # a Phone channel's phoneAuthToken, bound to that channel
    VISITOR = "visitor"  # an anonymous chat visitor, through one Chat channel's public token
    WEBHOOK = "webhook"  # a network calling back on one channel, its signature checked
    # The holder of an unguessable link (a file's access token, a sent mail's pixel or unsubscribe
    # token, a ticket's public token): what it names, nothing else.
    LINK = "link"
    WORKER = "worker"  # a background job, for the customer whose job it is
    SYSTEM = "system"  # the command line and provisioning: everything of one customer


class AuthMethod(enum.StrEnum):
    API_KEY = "apikey"
    JWT = "jwt"
    PHONE = "phone"
    PUBLIC_TOKEN = "public-token"  # a chat channel's token, a file's access token
    SIGNATURE = "signature"  # a webhook's signed request
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    customer_id: int
    kind: ActorKind
    method: AuthMethod
    rep_id: int | None = None
    role: Role | None = None
    name: str = ""
    channel_id: int | None = None  # set for phone auth: the one channel it may act on
    api_key_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """Every right over the customer's data: an admin rep, the command line and the worker."""
        return self.kind in _FULL_ACCESS or self.role is Role.ADMIN

    @property
    def is_anonymous(self) -> bool:
        """Acting through a public credential (a channel's public token, a file link)."""
        return self.kind in _ANONYMOUS

    @property
    def is_phone(self) -> bool:
        return self.kind is ActorKind.PHONE


_FULL_ACCESS = frozenset({ActorKind.SYSTEM, ActorKind.WORKER})
_ANONYMOUS = frozenset({ActorKind.VISITOR, ActorKind.WEBHOOK, ActorKind.LINK})
# What authenticates each kind; a public route's dependency names the kind it may bind.
METHOD_OF_KIND = {
    ActorKind.VISITOR: AuthMethod.PUBLIC_TOKEN,
    ActorKind.WEBHOOK: AuthMethod.SIGNATURE,
    ActorKind.LINK: AuthMethod.PUBLIC_TOKEN,
    ActorKind.WORKER: AuthMethod.SYSTEM,
    ActorKind.SYSTEM: AuthMethod.SYSTEM,
}


@dataclass(slots=True)
class Ctx:
    db: AsyncSession
    actor: Actor

    @property
    def customer_id(self) -> int:
        return self.actor.customer_id

    @classmethod
    def system(cls, db: AsyncSession, customer_id: int) -> Ctx:
        """The command line and provisioning (creating a customer, the demo)."""
        return cls.acting(db, customer_id, ActorKind.SYSTEM)

    @classmethod
    def worker(cls, db: AsyncSession, customer_id: int) -> Ctx:
        """A background job of this customer."""
        return cls.acting(db, customer_id, ActorKind.WORKER)

    @classmethod
    def acting(
        cls, db: AsyncSession, customer_id: int, kind: ActorKind, *, channel_id: int | None = None
    ) -> Ctx:
        """A context for a kind that no credential of a representative stands behind, bound to
        its customer (and, for visitors and webhooks, to the one channel they came through)."""
        if kind in {ActorKind.REP, ActorKind.PHONE}:
            raise ValueError(f"{kind} actors come from their credentials, not from acting()")
        if (kind in {ActorKind.VISITOR, ActorKind.WEBHOOK}) != (channel_id is not None):
            raise ValueError(f"a {kind} actor acts through exactly one channel")
        db.info["customer_id"] = customer_id
        actor = Actor(customer_id, kind, METHOD_OF_KIND[kind], name=kind.value, channel_id=channel_id)
        return cls(db=db, actor=actor)

    async def enqueue(
        self,
        kind: str,
        payload: Any,
        *,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        ordering_key: str | None = None,
    ) -> JobRow:
        """Write a job in this transaction: it exists if and only if the change commits (see
        core/jobs.py, enqueue, for the keys)."""
        from deskpal.core.jobs import enqueue

        return await enqueue(
            self.db,
            kind,
            payload,
            run_at=run_at,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            ordering_key=ordering_key,
        )
