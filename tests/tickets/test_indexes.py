"""Every filter and sort of GET /api/Tickets runs on an index: EXPLAIN on both databases.

The list's real SQL is captured from a request, then explained with the same parameters. The tables
are tiny, so PostgreSQL is told to avoid sequential scans and sorts wherever it can: a plan that
still has them has no index to use instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import JSON, String, cast, event, insert, literal, select

from deskpal.core.db import UTCDateTime, transaction, utcnow
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket
from tests.support import Tenant, db_of
from tests.tickets.helpers import add_messages, create_channel, create_ticket

Captured = list[tuple[str, Any]]


@contextmanager
def capture(app: object) -> Iterator[Captured]:
    engine = db_of(app).engine.sync_engine
    seen: Captured = []

    def listener(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(
            r"\bFROM ticket(_message_fts|_message|_count)?\b", statement
        ):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


async def explain(app: object, statement: str, parameters: Any, *, avoid_sorts: bool = True) -> str:
    db = db_of(app)
    async with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")
            if avoid_sorts:
                await conn.exec_driver_sql("SET enable_sort = off")
            else:
                # Only bitmap scans: the choice left is which index feeds them.
                await conn.exec_driver_sql("SET enable_indexscan = off")
            rows = (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).all()
            await conn.rollback()
            return "\n".join(r[0] for r in rows)
        rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
        # Indented by depth, like PostgreSQL's plans, so that a subtree can be told apart.
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return "\n".join(lines)


async def plans(
    app: object, client: httpx.AsyncClient, tenant: Tenant, query: dict[str, Any], *, avoid_sorts: bool = True
) -> list[str]:
    with capture(app) as seen:
        response = await client.get("/api/Tickets", params=query, headers=tenant.headers)
    assert response.status_code == 200, response.text
    # A list page is one statement (the page with its total as a subquery; a second one counts
    # only when the page is empty); a search reads its bounded set of hits (that is the count) and
    # then the page's tickets by primary key.
    markers = ("count(", "sum(", "LIMIT", "ticket.ticket_id IN")
    main = [s for s in seen if any(m in s[0] for m in markers)]
    assert len(main) == (2 if "search" in query else 1), [s[0] for s in seen]
    assert all("LIKE" not in s[0].upper() for s in seen)
    return [await explain(app, *s, avoid_sorts=avoid_sorts) for s in main]


def assert_indexed(plan: str, dialect: str) -> None:
    if dialect == "postgresql":
        assert not re.search(r"Seq Scan on ticket\b", plan), plan
    else:
        assert not re.search(r"\bSCAN ticket\b(?! USING)", plan), plan
        assert not re.search(r"\bSCAN ticket_end_user\b", plan), plan


def subtree(plan: str, pattern: str) -> str:
    """The first node matching pattern and the nodes below it (the whole plan if none matches)."""
    lines = plan.splitlines()
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            indent = len(line) - len(line.lstrip(" ->"))
            below = [x for x in lines[i + 1 :] if x.strip()]
            deeper = [len(x) - len(x.lstrip(" ->")) > indent for x in below]
            end = deeper.index(False) if False in deeper else len(below)
            return "\n".join([line, *below[:end]])
    return plan


def assert_ordered_by_index(plan: str, dialect: str) -> None:
    # The page is cut from an index walk; a page's own rows (at most pageSize tickets, times their
    # few links, joined after the LIMIT) may be sorted again.
    if dialect == "postgresql":
        paging = subtree(plan, r"\bLimit\b")
        assert not re.search(r"^\s*(->\s*)?(Incremental )?Sort\b", paging, re.M), plan
    else:
        paging = subtree(plan, r"^\s*(CO-ROUTINE|MATERIALIZE) (anon_1|page)\b")
        assert "TEMP B-TREE FOR ORDER BY" not in paging, plan


@pytest.fixture
async def seeded(app: object, client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    channel = await create_channel(client, tenant, "Email")
    ticket = await create_ticket(
        client,
        tenant.headers,
        channelID=channel["channelID"],
        uid="ann@example.com",
        customerRepID=tenant.admin_rep_id,
    )
    await create_ticket(client, tenant.headers, isSpam=True)  # so that every filter has a page to fetch
    await add_messages(app, tenant, ticket["ticketID"], "printer on fire")
    return {"channel": channel["channelID"], "end_user": ticket["endUserID"], "rep": tenant.admin_rep_id}


FILTERS: list[tuple[str, Any]] = [
    ("status", ["Open", "Pending"]),
    ("channelIDs", "channel"),
    ("customerRepID", "rep"),
    ("customerRepID", 0),
    ("channelType", "Email"),
    ("uid", "ann@example.com"),
    ("endUserID", "end_user"),
    ("isSpam", "true"),
    ("isClosed", "false"),
    ("includeFollowUp", "true"),
]
SORTS = ["ticketID", "dateCreated", "lastMessageDate", "status", "subject", "followUpDate", "closeDate"]


async def test_each_filter_uses_an_index(
    app: object, client: httpx.AsyncClient, tenant: Tenant, seeded: dict[str, Any]
) -> None:
    for name, value in FILTERS:
        value = seeded.get(value, value) if isinstance(value, str) else value
        for plan in await plans(app, client, tenant, {name: value}):
            assert_indexed(plan, db_of(app).dialect)


async def test_each_sort_walks_an_index(
    app: object, client: httpx.AsyncClient, tenant: Tenant, seeded: dict[str, Any]
) -> None:
    dialect = db_of(app).dialect
    for sort_by in SORTS:
        for order in ("desc", "asc"):
            (page_plan,) = await plans(app, client, tenant, {"sortBy": sort_by, "sortOrder": order})
            assert_indexed(page_plan, dialect)
            assert_ordered_by_index(page_plan, dialect)


async def test_search_uses_the_full_text_index(
    app: object, client: httpx.AsyncClient, tenant: Tenant, seeded: dict[str, Any]
) -> None:
    dialect = db_of(app).dialect
    # Enough of the tenant's other tickets and messages that reading them all costs more than the
    # full-text lookup, so that a planner with statistics prefers it.
    tickets, per_ticket = (2000, 10) if dialect == "postgresql" else (200, 10)
    numbers = select(literal(1).label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.n + 1).where(numbers.c.n < tickets))
    now = literal(utcnow(), UTCDateTime)
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        flags = ["escalated", "is_spam", "is_important", "is_closed", "is_read"]
        rest = ["custom_fields_data", "customer_id"]
        await db.execute(
            insert(Ticket).from_select(
                ["token", "created_at", "status", "subject", "channel_type", "is_processed", *flags, *rest],
                select(
                    literal("filler-") + cast(numbers.c.n, String),
                    now,
                    literal("Open"),
                    literal("filler"),
                    literal("Email"),
                    literal(True),
                    *(literal(False) for _ in flags),
                    literal({}, JSON),
                    literal(tenant.customer_id),
                ).select_from(numbers),
            )
        )
        filler = select(Ticket.ticket_id).where(Ticket.token.like("filler-%")).subquery()
        await db.execute(
            insert(TicketMessage).from_select(
                ["ticket_id", "customer_id", "created_at", "text_body", "custom_fields_data"],
                select(
                    filler.c.ticket_id,
                    literal(tenant.customer_id),
                    now,
                    literal("unrelated note number ") + cast(numbers.c.n, String),
                    literal({}, JSON),
                )
                .select_from(filler)
                .join(numbers, numbers.c.n <= per_ticket),
            )
        )
    if dialect == "postgresql":
        # With statistics, the planner knows the words are rare: the GIN index is the way in, and
        # (the search table's customer_id, migration 0014) that the tenant is every row of the
        # search table, so its (customer_id, message_id) index is no way in: it serves the bounds.
        async with db_of(app).engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE ticket, ticket_message, ticket_message_search")
            await conn.commit()
    hits_plan, page_plan = await plans(app, client, tenant, {"search": "printer fire"}, avoid_sorts=False)
    assert_indexed(hits_plan, dialect)
    assert_indexed(page_plan, dialect)
    if dialect == "postgresql":
        assert "ix_ticket_message_search_vector" in hits_plan, hits_plan
    else:
        assert re.search(r"SCAN ticket_message_fts VIRTUAL TABLE INDEX \d+:M", hits_plan), hits_plan
        assert not re.search(r"\bSCAN ticket_message\b(?!_fts)", hits_plan), hits_plan
        # FTS5 hands the matches over newest first: the candidates are not sorted, only cut.
        newest = subtree(hits_plan, r"^\s*(CO-ROUTINE|MATERIALIZE) newest\b")
        assert "TEMP B-TREE FOR ORDER BY" not in newest, hits_plan
    assert re.search(r"pk_ticket\b|INTEGER PRIMARY KEY", page_plan), page_plan
