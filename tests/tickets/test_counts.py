"""ticket_count: the list's totals kept by triggers, exact through every kind of ticket write."""

from __future__ import annotations

import random
from typing import Any

import httpx
from sqlalchemy import text

from deskpal.core.context import Role
from deskpal.core.db import transaction
from deskpal.tickets import counts
from tests.support import Tenant, db_of
from tests.tickets.helpers import add_messages, create_channel, create_ticket

BUCKET = "customer_id, is_processed, status, coalesce(channel_id, 0), coalesce(customer_rep_id, 0), "
BUCKET += "channel_type, is_spam, is_closed"


async def _sums(app: object) -> tuple[dict[tuple[Any, ...], int], dict[tuple[Any, ...], int]]:
    """(the buckets' sums, the same buckets counted from the tickets), zero buckets left out."""
    async with transaction(db_of(app), write=False) as db:
        kept = await db.execute(
            text(
                "SELECT customer_id, is_processed, status, channel_id, customer_rep_id, channel_type, "
                "is_spam, is_closed, sum(n) FROM ticket_count GROUP BY customer_id, is_processed, status, "
                "channel_id, customer_rep_id, channel_type, is_spam, is_closed"
            )
        )
        real = await db.execute(text(f"SELECT {BUCKET}, count(*) FROM ticket GROUP BY {BUCKET}"))
        return (
            {tuple(r[:-1]): int(r[-1]) for r in kept if r[-1]},
            {tuple(r[:-1]): int(r[-1]) for r in real},
        )


async def _rows(app: object) -> int:
    async with transaction(db_of(app), write=False) as db:
        return int(await db.scalar(text("SELECT count(*) FROM ticket_count")) or 0)


async def test_counts_follow_every_kind_of_write_and_survive_compaction(
    app: object, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    rnd = random.Random(5)
    agent = await tenant.key_for(Role.AGENT)
    kinds = ("Email", "Chat")
    channels = [(await create_channel(client, tenant, kind))["channelID"] for kind in kinds]
    ids = []
    for i in range(24):
        channel = rnd.choice([*zip(channels, kinds, strict=True), (None, "Email")])
        ticket = await create_ticket(
            client,
            tenant.headers,
            status=rnd.choice(["Open", "Pending", "Closed"]),
            channelID=channel[0],
            channelType=channel[1],
            customerRepID=rnd.choice([tenant.admin_rep_id, None]),
            isSpam=i % 5 == 0,
            isProcessed=i % 7 != 0,
        )
        ids.append(ticket["ticketID"])
    await create_ticket(client, other_tenant.headers)
    # PUT, PATCH, bulk actions, assignment, a reopening message, deletes.
    put = {"status": "Waiting", "subject": "s", "channelType": "Chat", "channelID": channels[1]}
    replaced = await client.put(f"/api/Tickets/{ids[0]}", json=put, headers=tenant.headers)
    assert replaced.status_code in (200, 204), replaced.text
    patch = [{"op": "replace", "path": "/isClosed", "value": True}]
    headers = {**tenant.headers, "Content-Type": "application/json-patch+json"}
    patched = await client.patch(f"/api/Tickets/{ids[1]}", json=patch, headers=headers)
    assert patched.status_code in (200, 204), patched.text
    for action in ("close", "spam", "open", "invertstate", "notspam"):
        body = {"ticketIDs": ids[2:12], "action": action}
        assert (await client.put("/api/Tickets/bulk", json=body, headers=tenant.headers)).status_code == 204
    assign = {"ticketIDs": ids[12:16], "action": "assign", "customerRepID": 0}
    assert (await client.put("/api/Tickets/bulk", json=assign, headers=tenant.headers)).status_code == 204
    as_agent = {"Authorization": f"Bearer {agent}"}
    mine = await client.put(f"/api/Tickets/{ids[12]}/assign", json={}, headers=as_agent)
    assert mine.status_code in (200, 204), mine.text
    await add_messages(app, tenant, ids[3], "still broken")
    reopening = {"ticketID": ids[4], "incoming": True, "textBody": "hello again"}
    assert (
        await client.post("/api/TicketMessages/create-new", json=reopening, headers=tenant.headers)
    ).status_code == 201
    assert (await client.delete(f"/api/Tickets/{ids[18]}", headers=tenant.headers)).status_code == 204
    gone = {"ticketIDs": ids[19:21], "action": "delete"}
    assert (await client.put("/api/Tickets/bulk", json=gone, headers=tenant.headers)).status_code == 204

    kept, real = await _sums(app)
    assert kept == real
    before = await _rows(app)
    folded = await counts.compact(db_of(app))
    assert folded > 0
    assert await _rows(app) < before
    assert await _sums(app) == (real, real)
    assert await counts.compact(db_of(app)) == 0  # nothing left to fold


async def test_totals_match_the_tickets_for_each_filter_and_role(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    channel = (await create_channel(client, tenant, "Email"))["channelID"]
    await tenant.key_for(Role.AGENT)
    await tenant.key_for(Role.RESTRICTED)
    agent_id = tenant.rep_ids[Role.AGENT]
    for status, rep, spam in [
        ("Open", None, False),
        ("Open", agent_id, False),
        ("Pending", tenant.admin_rep_id, True),
        ("Closed", agent_id, False),
        ("Open", tenant.admin_rep_id, False),
    ]:
        await create_ticket(
            client, tenant.headers, status=status, customerRepID=rep, isSpam=spam, channelID=channel
        )
    await counts.compact(db_of(app))
    await create_ticket(client, tenant.headers, status="Open")  # an uncompacted row as well
    for role in (Role.ADMIN, Role.AGENT, Role.RESTRICTED):
        auth = await tenant.headers_for(role)
        for query in (
            {},
            {"status": ["Open", "Closed"]},
            {"channelIDs": channel},
            {"customerRepID": 0},
            {"customerRepID": agent_id},
            {"channelType": "Email"},
            {"isSpam": "true"},
            {"isClosed": "false"},
        ):
            listed = (
                await client.get("/api/Tickets", params={**query, "pageSize": 100}, headers=auth)
            ).json()
            assert listed["totalCount"] == len(listed["items"]), (role, query)


async def test_deleting_a_customer_takes_its_counts_and_leaves_others(
    app: object, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    for _ in range(3):
        await create_ticket(client, tenant.headers)
    await create_ticket(client, other_tenant.headers)
    async with transaction(db_of(app)) as db:
        await db.execute(text("DELETE FROM customer WHERE customer_id = :c"), {"c": tenant.customer_id})
    kept, real = await _sums(app)
    assert kept == real
    assert {key[0] for key in kept} == {other_tenant.customer_id}


async def test_concurrent_writers_and_folding_lose_nothing(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Writers append while workers fold (two at once): every +1 and -1 is kept exactly once."""
    import asyncio

    ids = [(await create_ticket(client, tenant.headers))["ticketID"] for _ in range(12)]

    async def writer(k: int) -> None:
        for round_ in range(4):
            action = "close" if (k + round_) % 2 else "open"
            body = {"ticketIDs": ids[k::3], "action": action}
            response = await client.put("/api/Tickets/bulk", json=body, headers=tenant.headers)
            assert response.status_code == 204, response.text
            await create_ticket(client, tenant.headers, status="Pending")

    async def folder() -> None:
        for _ in range(8):
            await counts.compact(db_of(app))
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(k) for k in range(3)), folder(), folder())
    kept, real = await _sums(app)
    assert kept == real
    await counts.compact(db_of(app))
    assert await _sums(app) == (real, real)
