"""Migration 0009 on a database that already holds rows, with holes in its ids: everything kept
(rows, indexes, triggers, full-text search, foreign keys), each rep given its own token key, and
no id handed out again afterwards."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from deskpal.core.db import make_engine
from deskpal.migrate import alembic_config, upgrade

_serial = itertools.count(1)


def _generated_id(table: Table) -> Column[Any] | None:
    columns = list(table.primary_key.columns)
    if len(columns) == 1 and isinstance(columns[0].type, Integer) and not columns[0].foreign_keys:
        return columns[0]
    return None


def _value(column: Column[Any]) -> Any:
    n = next(_serial)
    kind = column.type
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, String | Text):
        return f"v{n}-{column.name}"[-(getattr(kind, "length", None) or 40) :]
    raise AssertionError(f"no test value for {column.table.name}.{column.name} ({kind!r})")


async def _insert(conn: AsyncConnection, table: Table) -> int:
    """A row with every required column filled and fresh parents, on the database's own schema."""
    key = _generated_id(table)
    assert key is not None, table.name
    values: dict[str, Any] = {}
    for column in table.columns:
        if column is key or column.nullable:
            continue
        if column.foreign_keys:
            values[column.name] = await _insert(conn, next(iter(column.foreign_keys)).column.table)
        else:
            values[column.name] = _value(column)
    return int((await conn.execute(table.insert().values(values).returning(key))).scalar_one())


async def _schema(conn: AsyncConnection) -> MetaData:
    metadata = MetaData()
    await conn.run_sync(lambda sync: metadata.reflect(sync))
    return metadata


# Tables outside deskpal's models: Alembic's, and the search tables the database itself keeps.
_NOT_MODELLED = ("alembic_version", "ticket_message_fts", "ticket_message_search")


def _tables(metadata: MetaData) -> list[Table]:
    return [t for t in metadata.sorted_tables if not t.name.startswith(_NOT_MODELLED)]


def _with_ids(metadata: MetaData) -> list[Table]:
    return [t for t in _tables(metadata) if _generated_id(t) is not None]


async def _rows(conn: AsyncConnection, metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for table in _tables(metadata):
        order = list(table.primary_key.columns) or list(table.columns)
        result = await conn.execute(select(table).order_by(*order))
        out[table.name] = [dict(r) for r in result.mappings()]
    return out


async def _sqlite_objects(conn: AsyncConnection) -> set[tuple[str, str, str]]:
    """Indexes and triggers, with their text: what a table rebuild could lose."""
    rows = await conn.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
    )
    return {(kind, name, sql) for kind, name, sql in rows}


async def _search(conn: AsyncConnection, word: str) -> list[int]:
    found = await conn.execute(
        text("SELECT rowid FROM ticket_message_fts WHERE ticket_message_fts MATCH :w ORDER BY rowid"),
        {"w": word},
    )
    return list(found.scalars())


async def _seed(engine: AsyncEngine) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Three rows per table with a generated id, the middle one deleted; a held message id."""
    async with engine.begin() as conn:
        metadata = await _schema(conn)
        for table in _with_ids(metadata):
            ids = [await _insert(conn, table) for _ in range(3)]
            key = _generated_id(table)
            assert key is not None
            await conn.execute(table.delete().where(key == ids[1]))
        message = metadata.tables["ticket_message"]
        first = (await conn.execute(select(message.c.message_id).order_by(message.c.message_id))).scalar()
        rep = await conn.scalar(text("SELECT max(customer_rep_id) FROM customer_rep"))
        await conn.execute(
            message.update()
            .where(message.c.message_id == first)
            .values(text_body="kangaroo", customer_rep_id=rep, created_by_rep_id=rep)
        )
        # A message id a ticket still names (no foreign key), though the message is gone.
        held = int(await conn.scalar(text("SELECT max(message_id) FROM ticket_message")) or 0) + 50
        await conn.execute(text("UPDATE ticket SET last_end_user_message_id = :m"), {"m": held})
        return await _rows(conn, metadata), held


async def _exercise(url: str) -> None:
    sqlite = url.startswith("sqlite")
    await asyncio.to_thread(upgrade, url, "0008")
    engine = create_async_engine(url)
    try:
        before, held = await _seed(engine)
        async with engine.connect() as conn:
            objects_before = await _sqlite_objects(conn) if sqlite else set()
        # 0009 itself: later migrations add their own columns and indexes.
        await asyncio.to_thread(upgrade, url, "0009")

        async with engine.begin() as conn:
            metadata = await _schema(conn)
            after = await _rows(conn, metadata)
            keys = [rep.pop("token_key") for rep in after["customer_rep"]]
            reps = {rep["customer_rep_id"]: rep["name"] for rep in after["customer_rep"]}
            for msg in after["ticket_message"]:  # every message names its reps, filled from them
                assert msg.pop("customer_rep_name") == reps.get(msg["customer_rep_id"])
                assert msg.pop("created_by_rep_name") == reps.get(msg["created_by_rep_id"])
            assert any(m["customer_rep_id"] for m in after["ticket_message"])
            assert after == before  # every row of every table, with its id
            assert all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys) and len(set(keys)) == len(keys)
            if sqlite:
                assert await _sqlite_objects(conn) == objects_before  # indexes and triggers, verbatim
                assert await _search(conn, "kangaroo") != []  # the old message is still indexed
            # No id is handed out again, on any table.
            for table in _with_ids(metadata):
                key = _generated_id(table)
                assert key is not None
                newest = await _insert(conn, table)
                await conn.execute(table.delete().where(key == newest))
                assert await _insert(conn, table) > newest, table.name
            message_id = await _insert(conn, metadata.tables["ticket_message"])
            if sqlite:
                assert message_id > held  # above the id a ticket still holds
            counts = int(await conn.scalar(text("SELECT count(*) FROM ticket_count")) or 0)
            await _insert(conn, metadata.tables["ticket"])
            assert await conn.scalar(text("SELECT count(*) FROM ticket_count")) == counts + 1  # trigger

        if sqlite:
            await _sqlite_after_rebuild(url)
            await asyncio.to_thread(command.downgrade, alembic_config(url), "0008")
            async with engine.connect() as conn:
                assert await _sqlite_objects(conn) == objects_before
                assert await conn.scalar(text("SELECT count(*) FROM ticket_message")) > 0
    finally:
        await engine.dispose()


async def _sqlite_after_rebuild(url: str) -> None:
    """Foreign keys and the full-text triggers act on the rebuilt tables as on the old ones."""
    database = make_engine(url)  # deskpal's own connections: foreign keys enforced
    try:
        async with database.begin() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all() == []
            ticket = await conn.scalar(
                text("SELECT ticket_id FROM ticket_message WHERE text_body = 'kangaroo'")
            )
            await conn.execute(
                text("UPDATE ticket_message SET text_body = 'wombat' WHERE text_body = 'kangaroo'")
            )
            assert await _search(conn, "wombat") != [] and await _search(conn, "kangaroo") == []
            await conn.execute(text("DELETE FROM ticket WHERE ticket_id = :t"), {"t": ticket})
            assert (
                await conn.scalar(
                    text("SELECT count(*) FROM ticket_message WHERE ticket_id = :t"), {"t": ticket}
                )
                == 0
            )
            assert await _search(conn, "wombat") == []  # cascaded, and the delete trigger ran
            await conn.exec_driver_sql(
                "INSERT INTO ticket_message_fts(ticket_message_fts) VALUES ('integrity-check')"
            )
    finally:
        await database.dispose()


async def test_existing_database_keeps_its_rows_and_stops_reusing_ids(fresh_database: str) -> None:
    await _exercise(fresh_database)
