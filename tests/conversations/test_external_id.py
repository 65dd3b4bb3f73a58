"""A network that delivers a message again never stores it twice: intake keeps one message per
(customer, channel, external id), also when two deliveries race (the unique index and a savepoint)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.channels.models import Channel
from deskpal.conversations.schemas import InboundMessage
from deskpal.conversations.service import intake
from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import TicketMessage
from tests.messages.helpers import messages_of
from tests.support import Tenant, db_of
from tests.tickets.helpers import create_channel


def _delivery(
    channel: Channel | None, external_id: str = "SM-1", text: str = "Is my order shipped?"
) -> InboundMessage:
    new = NewMessage(message=text, from_number="+3247000001", external_id=external_id, channel_type="Chat")
    return InboundMessage(message=new, channel=channel)


async def _deliver(app: FastAPI, tenant: Tenant, channel_id: int, **kw: Any) -> TicketMessage:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        ctx = Ctx.system(db, tenant.customer_id)
        return await intake(ctx, _delivery(await db.get(Channel, channel_id), **kw))


async def _tickets(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await client.get("/api/Tickets?pageSize=100", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


class TestRepeatedDeliveries:
    async def test_the_same_delivery_twice_stores_one_message(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id = (await create_channel(client, tenant, "Chat"))["channelID"]
        first = await _deliver(app, tenant, channel_id)
        again = await _deliver(app, tenant, channel_id, text="Is my order shipped? (resent)")
        assert again.message_id == first.message_id
        [ticket] = await _tickets(client, tenant)
        assert [m["message"] for m in await messages_of(client, tenant, ticket["ticketID"])] == [
            "Is my order shipped?"
        ]

    async def test_another_id_another_channel_or_another_customer_is_another_message(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        ours = (await create_channel(client, tenant, "Chat"))["channelID"]
        second = (await create_channel(client, tenant, "Chat"))["channelID"]
        theirs = (await create_channel(client, other_tenant, "Chat"))["channelID"]
        ids = {
            (await _deliver(app, tenant, ours)).message_id,
            (await _deliver(app, tenant, ours, external_id="SM-2")).message_id,
            (await _deliver(app, tenant, second)).message_id,
            (await _deliver(app, other_tenant, theirs)).message_id,
        }
        assert len(ids) == 4

    async def test_two_deliveries_at_once_store_one_message(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # The first delivery has stored its message and not committed; the second reads, finds
        # nothing committed, and (PostgreSQL) opens a ticket and waits on the unique index; SQLite
        # makes it wait for the write lock instead. Either way it ends with the first's message.
        channel_id = (await create_channel(client, tenant, "Chat"))["channelID"]
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            ctx = Ctx.system(db, tenant.customer_id)
            first = await intake(ctx, _delivery(await db.get(Channel, channel_id)))
            second = asyncio.create_task(_deliver(app, tenant, channel_id))
            await asyncio.sleep(0.5)
            assert not second.done()
        assert (await asyncio.wait_for(second, 30)).message_id == first.message_id
        [ticket] = await _tickets(client, tenant)
        assert len(await messages_of(client, tenant, ticket["ticketID"])) == 1

    async def test_many_deliveries_at_once_store_one_message(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id = (await create_channel(client, tenant, "Chat"))["channelID"]
        stored = await asyncio.gather(*(_deliver(app, tenant, channel_id) for _ in range(6)))
        assert len({m.message_id for m in stored}) == 1
        [ticket] = await _tickets(client, tenant)
        assert len(await messages_of(client, tenant, ticket["ticketID"])) == 1

    async def test_an_external_id_needs_its_channel(self, app: FastAPI, tenant: Tenant) -> None:
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            with pytest.raises(ValueError, match="channel"):
                await intake(Ctx.system(db, tenant.customer_id), _delivery(None))
