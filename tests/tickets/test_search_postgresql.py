"""PostgreSQL's narrow search table (ticket_message_search) stays current with ticket_message.

The trigger copies each message's vector in the writing transaction; these tests look at the table
itself as well as at search results, so that a stale row cannot hide behind the ticket filters.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from tests.support import Tenant, db_of
from tests.tickets.helpers import add_messages, create_ticket


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [t["ticketID"] for t in response.json()["items"]]


async def _search(client: httpx.AsyncClient, tenant: Tenant, query: str) -> list[int]:
    return _ids(await client.get("/api/Tickets", params={"search": query}, headers=tenant.headers))


async def _rows(app: object, message_ids: list[int]) -> dict[int, tuple[int, str]]:
    """message_id -> (ticket_id, vector as text) in the narrow table."""
    async with db_of(app).engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT message_id, ticket_id, search_vector::text FROM ticket_message_search "
                "WHERE message_id = ANY(:ids)"
            ),
            {"ids": message_ids},
        )
        return {int(r[0]): (int(r[1]), str(r[2])) for r in rows}


async def _execute(app: object, statement: str, **params: object) -> None:
    async with db_of(app).engine.begin() as conn:
        await conn.execute(text(statement), params)


@pytest.fixture(autouse=True)
def _postgresql_only(app: object) -> None:
    if db_of(app).dialect != "postgresql":
        pytest.skip("PostgreSQL's narrow search table; SQLite's FTS5 triggers are covered by test_api")


async def test_a_new_message_is_found_at_once(app: object, client: httpx.AsyncClient, tenant: Tenant) -> None:
    ticket = await create_ticket(client, tenant.headers)
    [message_id] = await add_messages(app, tenant, ticket["ticketID"], "Thermostat keeps rebooting overnight")
    assert (await _rows(app, [message_id]))[message_id][0] == ticket["ticketID"]
    # Whole 3-8 letter prefixes, a longer word checked whole, a short prefix.
    for query in ("thermo reboot", "rebooting overnight", "thermostat", "ov keeps"):
        assert await _search(client, tenant, query) == [ticket["ticketID"]], query
    assert await _search(client, tenant, "rebootings") == []


async def test_an_edited_message_matches_its_new_words_only(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ticket = await create_ticket(client, tenant.headers)
    [message_id] = await add_messages(app, tenant, ticket["ticketID"], "kangaroo pouch")
    await _execute(
        app,
        "UPDATE ticket_message SET text_body = 'platypus burrow', subject = 'wombat' WHERE message_id = :id",
        id=message_id,
    )
    assert "kangaroo" not in (await _rows(app, [message_id]))[message_id][1]
    assert await _search(client, tenant, "kangaroo") == []
    assert await _search(client, tenant, "platy burr") == [ticket["ticketID"]]
    assert await _search(client, tenant, "wombat") == [ticket["ticketID"]]


async def test_a_message_moved_to_another_ticket_follows(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first = await create_ticket(client, tenant.headers)
    second = await create_ticket(client, tenant.headers)
    [message_id] = await add_messages(app, tenant, first["ticketID"], "echidna spines")
    await _execute(
        app,
        "UPDATE ticket_message SET ticket_id = :t WHERE message_id = :id",
        t=second["ticketID"],
        id=message_id,
    )
    assert (await _rows(app, [message_id]))[message_id][0] == second["ticketID"]
    assert await _search(client, tenant, "echidna") == [second["ticketID"]]


async def test_deleted_messages_and_tickets_leave_nothing_behind(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ticket = await create_ticket(client, tenant.headers)
    kept, dropped = await add_messages(app, tenant, ticket["ticketID"], "quokka smile", "numbat stripes")
    await _execute(app, "DELETE FROM ticket_message WHERE message_id = :id", id=dropped)
    assert set(await _rows(app, [kept, dropped])) == {kept}
    assert await _search(client, tenant, "numbat") == []
    assert await _search(client, tenant, "quokka") == [ticket["ticketID"]]
    response = await client.delete(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)
    assert response.status_code == 204
    assert await _rows(app, [kept, dropped]) == {}
    assert await _search(client, tenant, "quokka") == []


async def test_another_tenants_messages_never_match(
    app: object, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = await create_ticket(client, tenant.headers)
    theirs = await create_ticket(client, other_tenant.headers)
    await add_messages(app, tenant, ours["ticketID"], "merger rumours")
    await add_messages(app, other_tenant, theirs["ticketID"], "confidential merger plans")
    assert await _search(client, tenant, "merger") == [ours["ticketID"]]
    assert await _search(client, other_tenant, "merg") == [theirs["ticketID"]]
    assert await _search(client, tenant, "confid") == []


async def test_older_windows_are_searched_when_the_newest_hold_too_few(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Messages far apart in id (several recency buckets): an old match is still found, and a new
    one in the newest window as well."""
    old = await create_ticket(client, tenant.headers)
    new = await create_ticket(client, tenant.headers)
    await add_messages(app, tenant, old["ticketID"], "bandicoot burrow")
    # Jump the id sequence past the biggest recency bucket (2**24) so the two messages share none.
    await _execute(app, "SELECT setval(pg_get_serial_sequence('ticket_message', 'message_id'), 40000000)")
    await add_messages(app, tenant, new["ticketID"], "bandicoot nest")
    assert sorted(await _search(client, tenant, "bandicoot")) == sorted([old["ticketID"], new["ticketID"]])
    assert await _search(client, tenant, "bandi burrow") == [old["ticketID"]]


async def test_each_row_carries_its_customer_and_the_search_compares_it(
    app: object, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Issue 11.4: the narrow table has customer_id (migration 0014), filled by the trigger, and a
    search compares it with the bound tenant itself, not only through its join to the ticket."""
    ticket = await create_ticket(client, tenant.headers)
    [message_id] = await add_messages(app, tenant, ticket["ticketID"], "wallaby hop")
    async with db_of(app).engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT customer_id FROM ticket_message_search WHERE message_id = :m"), {"m": message_id}
        )
    assert stored == tenant.customer_id
    assert await _search(client, tenant, "wallaby") == [ticket["ticketID"]]
    # A row that says it is another customer's is not this customer's match, whatever its ticket.
    await _execute(
        app,
        "UPDATE ticket_message_search SET customer_id = :c WHERE message_id = :m",
        c=other_tenant.customer_id,
        m=message_id,
    )
    assert await _search(client, tenant, "wallaby") == []
    assert await _search(client, other_tenant, "wallaby") == []  # its ticket is not theirs either
