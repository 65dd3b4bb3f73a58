"""Helpers for message tests: messages through the API, stored rows read back directly."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from deskpal.core.context import Role
from deskpal.core.db import transaction
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket
from tests.support import Tenant, db_of
from tests.tickets.helpers import create_channel, create_ticket

__all__ = ["create_channel", "create_ticket"]


async def create_message(
    client: httpx.AsyncClient, auth: dict[str, str], /, *, path: str = "/create-new", **fields: Any
) -> dict[str, Any]:
    # A message into an existing ticket takes its channel; a new ticket needs one (Email here).
    into = any(k in fields for k in ("ticketID", "replyToMessageID", "forwardFromMessageID"))
    body = {**({} if into else {"channel": "Email"}), "message": "Hello, my order is late", **fields}
    response = await client.post(f"/api/TicketMessages{path}", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def stored_message(app: object, tenant: Tenant, message_id: int) -> TicketMessage | None:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        return await db.get(TicketMessage, message_id)


async def stored_ticket(app: object, tenant: Tenant, ticket_id: int) -> Ticket:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        ticket = await db.get(Ticket, ticket_id)
    assert ticket is not None
    return ticket


async def phone(client: httpx.AsyncClient, tenant: Tenant) -> tuple[int, dict[str, str]]:
    channel = await create_channel(client, tenant, "Phone")
    return channel["channelID"], {"Authorization": f"Bearer {channel['phoneAuthToken']}"}


async def session_headers(app: FastAPI, tenant: Tenant, role: Role = Role.ADMIN) -> dict[str, str]:
    """A login (JWT) token for the tenant's rep of this role, as POST /api/Auth/login issues."""
    await tenant.key_for(role)
    rep_id = tenant.admin_rep_id if role is Role.ADMIN else tenant.rep_ids[role]
    return {"Authorization": f"Bearer {tenant.login_token(rep_id)}"}


async def messages_of(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's messages as GET /api/TicketMessages lists them."""
    r = await client.get(f"/api/TicketMessages?ticketId={ticket_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]
