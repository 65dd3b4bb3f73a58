"""SQLite calls run on the event loop (core/sqlite_inline.py): they must never wait inside SQLite."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from deskpal.core.db import transaction
from tests.support import Tenant, db_of

NEW_TICKET = {"status": "Open", "subject": "While locked", "channelType": "Email"}


def _sqlite_only(app: FastAPI) -> str:
    url = db_of(app).url
    if not url.startswith("sqlite"):
        pytest.skip("SQLite's driver only")
    path = make_url(url).database
    assert path
    return path


async def test_a_writer_waits_for_another_process_lock_while_the_loop_serves_others(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # Another connection (as a separate `deskpal worker` would be) holds SQLite's write lock.
    other = sqlite3.connect(_sqlite_only(app), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        writing = asyncio.create_task(client.post("/api/Tickets", json=NEW_TICKET, headers=tenant.headers))
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the lock (SQLITE_BUSY, retried after a sleep) ...
        read = await asyncio.wait_for(client.get("/api/Tickets", headers=tenant.headers), timeout=5)
        assert read.status_code == 200  # ... without stopping the loop: a read is served meanwhile
    finally:
        other.execute("COMMIT")
        other.close()
    written = await asyncio.wait_for(writing, timeout=10)
    assert written.status_code == 201, written.text


async def test_a_write_transaction_inside_another_in_the_same_task_is_refused(app: FastAPI) -> None:
    _sqlite_only(app)
    db = db_of(app)
    async with transaction(db):
        with pytest.raises(RuntimeError, match="inside another"):
            async with transaction(db):
                pass


async def test_writers_of_one_process_queue_in_arrival_order(app: FastAPI) -> None:
    _sqlite_only(app)
    db = db_of(app)
    order: list[int] = []

    async def writer(n: int) -> None:
        async with transaction(db):
            order.append(n)
            await asyncio.sleep(0.01)  # holds the lock across an await

    await asyncio.gather(*(writer(n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4]
