"""One Alembic history that upgrades an empty database, and matches the models, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from deskpal.migrate import alembic_config, check, upgrade
from deskpal.models import Base
from tests.conftest import PG_ADMIN_URL, _pg_create_database, _pg_drop_database


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _exercise(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
    tables = await _tables(url)
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    await asyncio.to_thread(check, url)  # raises on drift between models and migrations
    await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
    assert await _tables(url) <= {"alembic_version"}
    await asyncio.to_thread(upgrade, url)


async def test_empty_database_upgrades_and_matches_models(fresh_database: str) -> None:
    await _exercise(fresh_database)


async def test_concurrent_upgrades_of_a_new_database_all_succeed(db_url: str, tmp_path: Path) -> None:
    """Hosts starting together on a new PostgreSQL database: separate processes, one migrates."""
    if db_url.startswith("sqlite"):
        import pytest

        pytest.skip("SQLite databases are migrated by the one process that serves them")
    import os
    import sys
    from asyncio.subprocess import PIPE

    name = f"deskpal_mig_{uuid.uuid4().hex[:10]}"
    await _pg_create_database(name)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    env = {**os.environ, "DESKPAL_DATABASE_URL": url, "DESKPAL_DATA_DIR": str(tmp_path)}
    try:
        # Alembic keeps its context in module globals, so concurrency needs processes, not threads.
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "deskpal", "migrate", env=env, stdout=PIPE, stderr=PIPE
            )
            for _ in range(3)
        ]
        results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=120)
        assert [p.returncode for p in procs] == [0, 0, 0], results
        await asyncio.to_thread(check, url)
    finally:
        await _pg_drop_database(name)


async def test_search_table_gets_each_messages_customer_from_the_backfill_and_the_trigger(
    fresh_database: str,
) -> None:
    """Migration 0014 (issue 11.4): every row of PostgreSQL's narrow search table carries its
    message's customer_id, copied by the migration for the messages it finds and by the trigger for
    new and edited ones; the downgrade drops the column again."""
    if fresh_database.startswith("sqlite"):
        import pytest

        pytest.skip("PostgreSQL's narrow search table; SQLite's FTS5 table is reached through its message")
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from deskpal.core.context import Ctx
    from deskpal.core.db import Database, transaction
    from deskpal.customers.service import create_customer
    from deskpal.tickets.schemas import TicketWriteDTO
    from deskpal.tickets.writes import create_ticket
    from tests.tickets.helpers import add_message

    await asyncio.to_thread(upgrade, fresh_database)
    db = Database(fresh_database)

    async def message(customer_id: int, words: str) -> int:
        async with transaction(db, customer_id=customer_id) as session:
            ctx = Ctx.system(session, customer_id)
            dto = TicketWriteDTO(status="Open", subject="s", channel_type="Email")
            ticket = await create_ticket(ctx, dto)
            return (await add_message(ctx, ticket.ticket_id, message=words)).message_id

    async def rows() -> list[tuple[int, int, int]]:
        """(message id, its customer, the search row's customer) for every search row."""
        async with db.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT s.message_id, m.customer_id, s.customer_id FROM ticket_message_search s "
                    "JOIN ticket_message m USING (message_id) ORDER BY s.message_id"
                )
            )
            return [(int(a), int(b), int(c)) for a, b, c in result]

    async def columns() -> set[str]:
        async with db.engine.connect() as conn:
            names = await conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"),
                {"t": "ticket_message_search"},
            )
            return {str(n) for (n,) in names}

    try:
        customers = []
        for name in ("Acme", "Globex"):
            async with transaction(db) as session:
                new = await create_customer(
                    session, name, admin_email=f"a-{uuid.uuid4().hex[:6]}@x.test", admin_password=None
                )
                customers.append(new.customer.customer_id)
        made = [await message(c, f"thermostat from {i}") for i, c in enumerate(customers)]
        before = (
            ScriptDirectory.from_config(alembic_config(fresh_database)).get_revision("0014").down_revision
        )
        await asyncio.to_thread(command.downgrade, alembic_config(fresh_database), str(before))
        assert "customer_id" not in await columns()
        await asyncio.to_thread(upgrade, fresh_database)
        assert "customer_id" in await columns()
        found = await rows()
        assert [r[0] for r in found] == made and all(m == s for _, m, s in found)
        made.append(await message(customers[1], "a new one"))
        async with db.engine.begin() as conn:  # an edit goes through the trigger's UPDATE branch
            await conn.execute(
                text("UPDATE ticket_message SET text_body = 'edited' WHERE message_id = :m"), {"m": made[0]}
            )
        found = await rows()
        assert [r[0] for r in found] == made and all(m == s for _, m, s in found)
        assert {s for _, _, s in found} == set(customers)
    finally:
        await db.dispose()


def test_the_history_is_one_line() -> None:
    """Branches built in parallel each chain their migration after the last merged one: one head,
    and every revision but the first has exactly one parent."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db"))
    assert len(script.get_heads()) == 1, script.get_heads()
    revisions = list(script.walk_revisions())
    assert all(isinstance(r.down_revision, str) for r in revisions if r.down_revision is not None)
    assert [r.revision for r in revisions if r.down_revision is None] == ["0001"]
