"""A brand-new, unmigrated database of each kind, so the commands are tried as on a new install."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def _pg_admin(url: str, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def fresh_db_url(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Empty (no tables at all), on the server `db_url` names; `db_url` itself is left untouched.

    Depends on `db_url` for its sqlite/postgresql parameter and its skip-or-fail rule under CI.
    """
    if db_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cli-sqlite') / 'deskpal.db'}"
        return
    name = f"deskpal_cli_{uuid.uuid4().hex[:10]}"
    await _pg_admin(db_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(db_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin(db_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cli_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-data")
