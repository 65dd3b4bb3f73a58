"""Ids are never reused, on any table, on SQLite as on PostgreSQL (issue 10, item 2).

SQLite gives a new row the largest rowid + 1 unless its table is AUTOINCREMENT, so after deleting
the newest row its id went to the next one: a deleted ticket's id to another customer's ticket, a
deleted message-topic link's id to another link, which a client then deleted by the old id.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import JSON, Boolean, Column, Integer, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from deskpal.core.db import UTCDateTime, utcnow
from deskpal.models import Base
from tests.cross_tenant import REGISTRY
from tests.routes import iter_api_routes
from tests.support import Tenant, db_of

# Tables whose primary key the database does not generate: the walk has nothing to check there.
NO_GENERATED_ID = {
    "rate_limit_bucket": "keyed by (key, window_start)",
    "ticket_end_user": "a link keyed by (ticket_id, end_user_id)",
    "ticket_topic": "a link keyed by (ticket_id, topic_id)",
}


def _generated_id(table: Table) -> Column[Any] | None:
    columns = list(table.primary_key.columns)
    if len(columns) == 1 and isinstance(columns[0].type, Integer) and not columns[0].foreign_keys:
        return columns[0]
    return None


def test_every_table_is_autoincrement_on_sqlite_and_known_otherwise() -> None:
    """Set once, on the declarative base: a new table cannot forget it."""
    for table in Base.metadata.sorted_tables:
        assert table.dialect_options["sqlite"]["autoincrement"] is True, table.name
    keyless = {t.name for t in Base.metadata.sorted_tables if _generated_id(t) is None}
    assert keyless == set(NO_GENERATED_ID), "a table without a generated id: say why in NO_GENERATED_ID"


_serial = itertools.count()


def _value(column: Column[Any]) -> Any:
    n = next(_serial)
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return utcnow()
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, String | Text):  # unique, for the tables' unique constraints
        length = getattr(kind, "length", None) or 40
        return f"v{n}-{column.name}"[-length:]
    raise AssertionError(f"no test value for {column.table.name}.{column.name} ({kind!r})")


async def _insert(conn: AsyncConnection, table: Table) -> int:
    """A row of `table` with every required column filled and fresh parents; its generated id."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.primary_key and _generated_id(table) is column:
            continue
        if column.nullable or column.default is not None:
            continue
        if column.foreign_keys:
            parent = next(iter(column.foreign_keys)).column
            values[column.name] = await _insert(conn, parent.table)
        else:
            values[column.name] = _value(column)
    key = _generated_id(table)
    assert key is not None, table.name
    return int((await conn.execute(table.insert().values(values).returning(key))).scalar_one())


async def test_every_table_with_a_generated_id_gives_a_new_one_after_its_newest_row_is_deleted(
    app: FastAPI,
) -> None:
    walked = []
    async with db_of(app).engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            key = _generated_id(table)
            if key is None:
                continue
            await _insert(conn, table)
            newest = await _insert(conn, table)
            await conn.execute(table.delete().where(key == newest))
            following = await _insert(conn, table)
            assert following > newest, f"{table.name} reused id {newest}"
            assert (await conn.scalar(select(key).where(key == newest))) is None, table.name
            walked.append(table.name)
    assert len(walked) == len(Base.metadata.tables) - len(NO_GENERATED_ID)


def _delete_routes(app: FastAPI) -> list[str]:
    return sorted({i.path for i in iter_api_routes(app) if i.method == "DELETE" and "{" in i.path})


async def test_no_delete_route_lets_the_next_row_take_the_deleted_id(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    failures = []
    routes = _delete_routes(app)
    for path in routes:
        make = REGISTRY[path].make
        name = re.findall(r"{(\w+)}", path)[-1]  # the id the route deletes
        await make(app, tenant)
        newest = await make(app, tenant)
        r = await client.delete(path.format(**newest), headers=tenant.headers)
        assert r.status_code == 204, (path, r.text)
        following = await make(app, tenant)
        elsewhere = await make(app, other_tenant)
        if not following[name] > newest[name] or not elsewhere[name] > newest[name]:
            failures.append(f"{path}: {newest[name]} deleted, then {following[name]}, {elsewhere[name]}")
            continue
        # The old id names nothing now: deleting it again cannot remove the row made after it.
        await client.delete(path.format(**newest), headers=tenant.headers)
        get = path.format(**following)
        if any(i.path == path and i.method == "GET" for i in iter_api_routes(app)):
            seen = await client.get(get, headers=tenant.headers)
            if seen.status_code != 200:
                failures.append(f"{path}: the row made after the delete answers {seen.status_code}")
    assert not failures, "\n".join(failures)
    assert {"/api/Tickets/{id}", "/api/TicketMessages/{id}", "/api/TicketMessageTopics/{id}"} <= set(routes)
