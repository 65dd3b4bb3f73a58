"""Helpers for ticket tests: tickets through the API, messages through the service."""

from __future__ import annotations

from typing import Any

import httpx

from deskpal.conversations.schemas import InboundMessage, OutgoingMessage
from deskpal.conversations.service import intake, send
from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import SenderType, TicketMessage
from tests.support import Tenant, db_of


async def create_ticket(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    # Defaults that agree with what is given: a closed ticket's status is Closed, and a ticket in a
    # channel has the channel's type (docs/tickets.md), so tests name only what they are about.
    status = "Closed" if fields.get("isClosed") or fields.get("closeDate") else "Open"
    channel_type = "Email"
    if fields.get("channelID") and "channelType" not in fields:
        channel = await client.get(f"/api/Channels/{fields['channelID']}", headers=headers)
        if channel.status_code == 200:  # phone auth cannot read channels: it names its type
            channel_type = channel.json()["channelType"]
    body = {"status": status, "subject": "Login not working", "channelType": channel_type, **fields}
    response = await client.post("/api/Tickets", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_channel(
    client: httpx.AsyncClient, tenant: Tenant, channel_type: str = "Email", **fields: Any
) -> dict[str, Any]:
    body = {"name": f"{channel_type} channel", "channelType": channel_type, **fields}
    response = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_topic(client: httpx.AsyncClient, tenant: Tenant, name: str) -> int:
    response = await client.post("/api/Topics", json={"name": name}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["topicID"])


async def add_message(ctx: Ctx, ticket_id: int, **fields: Any) -> TicketMessage:
    """A message seeded into a ticket through the conversation, as an import would (no reopening)."""
    new = NewMessage(**fields)
    if new.incoming:
        return await intake(ctx, InboundMessage(message=new, ticket_id=ticket_id, reopen=False))
    return await send(ctx, OutgoingMessage(message=new, ticket_id=ticket_id))


async def add_messages(app: object, tenant: Tenant, ticket_id: int, *texts: str, **kw: Any) -> list[int]:
    ids = []
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        ctx = Ctx.system(db, tenant.customer_id)
        for text in texts:
            msg = await add_message(
                ctx, ticket_id, message=text, sender_type=kw.pop("sender_type", SenderType.END_USER), **kw
            )
            ids.append(msg.message_id)
    return ids
