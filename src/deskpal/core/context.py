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
    REP = "rep"  # a customer representative, by API key or login token
    PHONE = "phone"  # a Phone channel's phoneAuthToken, bound to that channel
    SYSTEM = "system"  # the worker or the command line


class AuthMethod(enum.StrEnum):
    API_KEY = "apikey"
    JWT = "jwt"
    PHONE = "phone"
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
        return self.kind is ActorKind.SYSTEM or self.role is Role.ADMIN

    @property
    def is_phone(self) -> bool:
        return self.kind is ActorKind.PHONE


@dataclass(slots=True)
class Ctx:
    db: AsyncSession
    actor: Actor

    @property
    def customer_id(self) -> int:
        return self.actor.customer_id

    @classmethod
    def system(cls, db: AsyncSession, customer_id: int) -> Ctx:
        db.info["customer_id"] = customer_id
        return cls(db=db, actor=Actor(customer_id, ActorKind.SYSTEM, AuthMethod.SYSTEM, name="system"))

    async def enqueue(
        self,
        kind: str,
        payload: Any,
        *,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
    ) -> JobRow:
        """Write a job in this transaction: it exists if and only if the change commits."""
        from deskpal.core.jobs import enqueue

        return await enqueue(self.db, kind, payload, run_at=run_at, max_attempts=max_attempts)
