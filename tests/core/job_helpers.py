"""Helpers of the job tests: a settable clock, enqueueing as a tenant's system actor, reading a job."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.db import transaction, utcnow
from deskpal.core.jobs import JobRow
from tests.support import Tenant, db_of


class Clock:
    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=5)  # jobs enqueued just before are due

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def enqueue_job(app: FastAPI, tenant: Tenant, kind: str, payload: dict[str, Any], **keys: Any) -> int:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        row = await Ctx.system(db, tenant.customer_id).enqueue(kind, payload, **keys)
        return row.job_id


async def read_job(app: FastAPI, tenant: Tenant, job_id: int) -> JobRow:
    async with transaction(db_of(app), customer_id=tenant.customer_id, write=False) as db:
        return (await db.scalars(select(JobRow).where(JobRow.job_id == job_id))).one()


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 10) -> None:
    """Poll until check() is true; fail after `seconds`."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the state polled is in the database
            await asyncio.sleep(0.01)


async def open_transactions(app: FastAPI) -> list[str]:
    """What holds a transaction on the app's database right now, seen from outside; [] if nothing:
    the pool's checked-out connections, and SQLite's write lock (another connection takes it at
    once, busy timeout 0) or PostgreSQL's sessions idle in a transaction."""
    import sqlite3

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    db = db_of(app)
    found: list[str] = []
    checked_out = db.engine.pool.checkedout()  # type: ignore[attr-defined]
    if checked_out:
        found.append(f"{checked_out} connection(s) checked out of the pool")
    if db.dialect == "sqlite":
        other = sqlite3.connect(make_url(db.url).database or "", timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock
            other.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            found.append(f"another connection cannot write: {exc}")
        finally:
            other.close()
        return found
    engine = create_async_engine(db.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            idle = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                )
            )
    finally:
        await engine.dispose()
    if idle:
        found.append(f"{idle} PostgreSQL session(s) idle in a transaction")
    return found
