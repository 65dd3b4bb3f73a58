"""Alembic environment: one history for SQLite and PostgreSQL, run through the async drivers."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import JSON, Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from deskpal.models import Base

MIGRATION_LOCK_KEY = 0x6465736B70616C  # "deskpal"

config = context.config
target_metadata = Base.metadata

# Full-text search objects the tickets migration creates outside the ORM metadata (SQLite's FTS5
# table and its shadow tables; PostgreSQL's generated tsvector column, the narrow table copying it
# (ticket_message_search, filled by a trigger) and the GIN index on that table).
_UNMODELLED = (
    "ticket_message_fts",
    "search_vector",
    "ix_ticket_message_search_vector",
    "ix_ticket_message_search_customer_id",
    "ticket_message_search",
)


def _include_object(
    _object: object, name: str | None, type_: str, reflected: bool, _compare_to: object
) -> bool:
    return not (reflected and name is not None and name.startswith(_UNMODELLED))


def _server_default_differs(
    _context: object,
    _inspected_column: object,
    metadata_column: Any,
    inspected_default: str | None,
    _metadata_default: object,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic compares defaults by asking the database whether they are equal, which PostgreSQL
    cannot answer for json (no = operator): compare a JSON column's default as text instead."""
    if not isinstance(metadata_column.type, JSON):
        return None  # Alembic's own comparison

    def plain(default: str | None) -> str | None:
        return None if default is None else default.split("::")[0].strip("'\"")

    return plain(inspected_default) != plain(rendered_metadata_default)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        compare_server_default=_server_default_differs,
        include_object=_include_object,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several hosts starting at once on a new database: one migrates, the others wait for it
            # and then find the database at head. Held until this transaction ends.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    elif context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_online(url))


run()
