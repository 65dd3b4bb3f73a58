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
