"""Helpers for the inbound pipeline tests: raw mails as real clients write them, the raw-mail
endpoint, the stored rows."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from deskpal.core.db import transaction
from deskpal.core.jobs import JobRow
from deskpal.email.inbound.models import InboundMail
from deskpal.tickets.models import Ticket
from tests.support import Tenant, db_of

CUSTOMER = "zoe@customer.test"
SUPPORT = "support@acme.test"


def new_id(domain: str = "customer.test") -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def raw_mail(
    *,
    subject: str = "My order is late",
    body: str = "Where is order 1234?",
    sender: str = f"Zoë Customer <{CUSTOMER}>",
    to: str = SUPPORT,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    no_message_id: bool = False,
) -> bytes:
    """A plain-text mail; `headers` add to (or replace) the usual ones."""
    fields = {
        "From": sender,
        "To": to,
        "Subject": subject,
        "Date": "Sun, 06 Dec 2026 10:00:00 +0100",
        "Message-ID": message_id or new_id(),
        "MIME-Version": "1.0",
        "Content-Type": 'text/plain; charset="utf-8"',
        "Content-Transfer-Encoding": "8bit",
        **(headers or {}),
    }
    if no_message_id:
        fields.pop("Message-ID")
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (head + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("utf-8")


async def post_mail(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    channel_id: int,
    raw: bytes | Any,
    *,
    content_type: str = "message/rfc822",
) -> httpx.Response:
    return await client.post(
        f"/api/Channels/{channel_id}/inbound",
        content=raw,
        headers={**headers, "Content-Type": content_type},
    )


async def received(client: httpx.AsyncClient, tenant: Tenant, channel_id: int, raw: bytes) -> dict[str, Any]:
    r = await post_mail(client, tenant.headers, channel_id, raw)
    assert r.status_code == 202, r.text
    return r.json()  # type: ignore[no-any-return]


async def inbound_mail(client: httpx.AsyncClient, tenant: Tenant, inbound_mail_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/InboundMails/{inbound_mail_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def message(client: httpx.AsyncClient, tenant: Tenant, message_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/TicketMessages/{message_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def ticket(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def rows(app: object, tenant: Tenant) -> list[InboundMail]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        return list((await db.scalars(select(InboundMail).order_by(InboundMail.inbound_mail_id))).all())


async def ticket_count(app: object, tenant: Tenant) -> int:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        return int(await db.scalar(select(func.count(Ticket.ticket_id))) or 0)


async def jobs(app: object, tenant: Tenant, kind: str) -> list[JobRow]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        return list((await db.scalars(select(JobRow).where(JobRow.kind == kind))).all())
