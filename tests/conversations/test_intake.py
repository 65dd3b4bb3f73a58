"""conversations.intake and send: threading, opening, the end user, the ticket kept current, the
pending send. Called as a channel adapter calls them (in a transaction of the worker's kind), and
checked through the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from deskpal.channels.models import Channel
from deskpal.conversations.schemas import InboundMessage, OutgoingMessage
from deskpal.conversations.service import NoRecipient, intake, send
from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import TicketMessage
from tests.messages.helpers import messages_of
from tests.support import Tenant, db_of
from tests.tickets.helpers import create_channel, create_ticket

T = TypeVar("T")


async def in_tenant(app: FastAPI, tenant: Tenant, work: Callable[[Ctx], Awaitable[T]]) -> T:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        return await work(Ctx.system(db, tenant.customer_id))


async def deliver(
    app: FastAPI, tenant: Tenant, channel_id: int | None = None, **inbound: Any
) -> TicketMessage:
    """One delivery through intake, as a mail adapter would make it."""

    async def work(ctx: Ctx) -> TicketMessage:
        channel = await ctx.db.get(Channel, channel_id) if channel_id is not None else None
        fields = {"from_address": "ann@example.com", "from_name": "Ann", **inbound.pop("fields", {})}
        return await intake(ctx, InboundMessage(message=NewMessage(**fields), channel=channel, **inbound))

    return await in_tenant(app, tenant, work)


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class TestIntake:
    async def test_a_first_message_opens_a_ticket_in_its_channel_for_its_end_user(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, "Chat")
        msg = await deliver(
            app, tenant, channel["channelID"], fields={"subject": "Printer", "text_body": "It is on fire"}
        )
        ticket = await _ticket(client, tenant, msg.ticket_id)
        assert (ticket["subject"], ticket["status"], ticket["channelType"]) == ("Printer", "Open", "Chat")
        assert ticket["channelID"] == channel["channelID"] and ticket["uid"] == "ann@example.com"
        assert [(u["uid"], u["name"]) for u in ticket["endUsers"]] == [("ann@example.com", "Ann")]
        assert (ticket["lastEndUserMessageID"], ticket["preview"]) == (msg.message_id, "It is on fire")
        [listed] = await messages_of(client, tenant, msg.ticket_id)
        assert (listed["channel"], listed["channelID"], listed["incoming"]) == (
            "Chat",
            channel["channelID"],
            True,
        )

    async def test_a_reply_threads_by_the_message_it_answers(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id = (await create_channel(client, tenant, "Chat"))["channelID"]
        first = await deliver(
            app, tenant, channel_id, fields={"message": "hello", "message_identifier": "<a1@example.com>"}
        )
        reply = await deliver(
            app, tenant, channel_id, fields={"message": "again"}, in_reply_to="<a1@example.com>"
        )
        stranger = await deliver(app, tenant, channel_id, fields={"message": "new"}, in_reply_to="<none@x>")
        assert reply.ticket_id == first.ticket_id and stranger.ticket_id != first.ticket_id
        assert [m["message"] for m in await messages_of(client, tenant, first.ticket_id)] == [
            "hello",
            "again",
        ]

    async def test_another_customers_message_identifier_does_not_thread(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = await deliver(
            app, other_tenant, fields={"message": "x", "message_identifier": "<b@x>", "channel_type": "Email"}
        )
        ours = await deliver(
            app, tenant, fields={"message": "y", "channel_type": "Email"}, in_reply_to="<b@x>"
        )
        assert ours.ticket_id != theirs.ticket_id
        r = await client.get(f"/api/Tickets/{theirs.ticket_id}", headers=tenant.headers)
        assert r.status_code == 404

    async def test_a_reply_reopens_a_closed_ticket_and_marks_it_unread(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Closed", isRead=True)
        await deliver(app, tenant, ticket_id=ticket["ticketID"], fields={"message": "still broken"})
        after = await _ticket(client, tenant, ticket["ticketID"])
        assert (after["status"], after["isClosed"], after["closeDate"], after["isRead"]) == (
            "Open",
            False,
            None,
            False,
        )

    async def test_an_import_leaves_the_ticket_state_alone(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Closed", isRead=True)
        await deliver(app, tenant, ticket_id=ticket["ticketID"], fields={"message": "old mail"}, reopen=False)
        after = await _ticket(client, tenant, ticket["ticketID"])
        assert (after["status"], after["isRead"], after["preview"]) == ("Closed", True, "old mail")

    async def test_a_named_ticket_the_actor_cannot_see_is_not_found(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from deskpal.core.errors import NotFound

        theirs = await create_ticket(client, other_tenant.headers)
        with pytest.raises(NotFound):
            await deliver(app, tenant, ticket_id=theirs["ticketID"], fields={"message": "x"})


class TestSend:
    async def _send(self, app: FastAPI, tenant: Tenant, ticket_id: int, **fields: Any) -> TicketMessage:
        deliver_it = fields.pop("deliver", True)

        async def work(ctx: Ctx) -> TicketMessage:
            new = NewMessage(incoming=False, message="On it", **fields)
            return await send(ctx, OutgoingMessage(message=new, ticket_id=ticket_id, deliver=deliver_it))

        return await in_tenant(app, tenant, work)

    @pytest.mark.usefixtures("mail_channel")
    async def test_a_delivered_reply_records_its_pending_send(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        msg = await self._send(app, tenant, ticket["ticketID"], to_address="ann@example.com")
        detail = (await client.get(f"/api/TicketMessages/{msg.message_id}", headers=tenant.headers)).json()
        assert detail["sendPending"] is True and detail["sendRequestedAt"] == detail["dateCreated"]
        assert detail["sentAt"] is None

    @pytest.mark.parametrize(
        "fields", [{"deliver": False}, {"is_draft": True}, {"is_internal_note": True}], ids=str
    )
    async def test_drafts_notes_and_undelivered_replies_record_no_send(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        msg = await self._send(app, tenant, ticket["ticketID"], to_address="ann@example.com", **fields)
        detail = (await client.get(f"/api/TicketMessages/{msg.message_id}", headers=tenant.headers)).json()
        assert (detail["sendPending"], detail["sendRequestedAt"]) == (False, None)

    async def test_a_reply_to_nobody_is_refused_and_nothing_is_stored(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        with pytest.raises(NoRecipient):
            await self._send(app, tenant, ticket["ticketID"])
        assert await messages_of(client, tenant, ticket["ticketID"]) == []
