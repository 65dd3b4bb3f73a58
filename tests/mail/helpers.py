"""Helpers for the mail tests: outgoing messages, their stored tracking state, the jobs written."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from deskpal.conversations.schemas import OutgoingMessage
from deskpal.conversations.service import send
from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.core.jobs import JobRow
from deskpal.email.models import EmailSuppression
from deskpal.messages.insert import NewMessage
from tests.messages.helpers import create_message, stored_message
from tests.support import Tenant, db_of

__all__ = ["create_message", "stored_message"]

NOTICE = "email.escalation_notice"


async def outgoing(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """An outgoing message (a rep's reply) in a new Email ticket."""
    return await create_message(
        client, tenant.headers, **{"incoming": False, "toAddress": "Jane <jane@x.example>", **fields}
    )


async def jobs_of(app: object, tenant: Tenant, kind: str = NOTICE) -> list[JobRow]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        stmt = select(JobRow).where(JobRow.kind == kind).order_by(JobRow.job_id)
        return list((await db.scalars(stmt)).all())


async def notice_address(app: object, tenant: Tenant, message_id: int) -> str | None:
    """The address of the newest escalation notice enqueued for this message, if any."""
    found = [j for j in await jobs_of(app, tenant) if j.payload["message_id"] == message_id]
    return str(found[-1].payload["address"]) if found else None


async def suppressions(app: object, tenant: Tenant) -> list[tuple[str, str, int | None]]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        stmt = select(EmailSuppression).order_by(EmailSuppression.address)
        return [(s.job_ad_id, s.address, s.message_id) for s in (await db.scalars(stmt)).all()]


async def queue_sends(app: object, tenant: Tenant, channel_id: int, n: int) -> list[int]:
    """n outgoing mails, each opening its ticket, with their send jobs, in one transaction: their
    message ids."""
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        ctx = Ctx.system(db, tenant.customer_id)
        ids = []
        for i in range(n):
            new = NewMessage(
                incoming=False,
                subject=f"Your order {i}",
                message=f"Order {i} ships today.",
                to_address=f"customer{i}@example.test",
                channel_id=channel_id,
                channel_type="Email",
            )
            ids.append((await send(ctx, OutgoingMessage(message=new, deliver=True))).message_id)
        return ids
