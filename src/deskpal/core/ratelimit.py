"""Fixed-window counters kept in the database, so every API process sees the same counts."""

from __future__ import annotations

import math
import time

from sqlalchemy import Integer, String, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, Database, transaction
from deskpal.core.errors import TooManyRequests


class RateLimitBucket(Base):
    __tablename__ = "rate_limit_bucket"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)


async def hit(db: Database, key: str, *, limit: int, window_seconds: int, now: float | None = None) -> int:
    """Count one hit in its own transaction (it must survive a failed request); return the count."""
    now = time.time() if now is None else now
    window = int(now // window_seconds) * window_seconds
    insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(RateLimitBucket)
        .values(key=key[:200], window_start=window, hits=1)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"hits": RateLimitBucket.hits + 1}
        )
        .returning(RateLimitBucket.hits)
    )
    async with transaction(db) as session:
        count = int((await session.execute(stmt)).scalar_one())
    return count


async def add_in(
    session: AsyncSession, key: str, hits: int, *, window_seconds: int, now: float | None = None
) -> int:
    """Count `hits` hits in the caller's transaction (they commit or roll back with what they
    count, e.g. a send's decision); the window's count after them. On PostgreSQL the upsert locks
    the window's row until that transaction ends, so concurrent callers in other processes count
    one after the other; callers taking several keys should take them in sorted order."""
    now = time.time() if now is None else now
    window = int(now // window_seconds) * window_seconds
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(RateLimitBucket)
        .values(key=key[:200], window_start=window, hits=hits)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"hits": RateLimitBucket.hits + hits}
        )
        .returning(RateLimitBucket.hits)
    )
    return int((await session.execute(stmt)).scalar_one())


async def count_in(session: AsyncSession, key: str, *, window_seconds: int, now: float | None = None) -> int:
    """The window's count, read in the caller's transaction."""
    now = time.time() if now is None else now
    window = int(now // window_seconds) * window_seconds
    row = await session.get(RateLimitBucket, (key[:200], window), populate_existing=True)
    return row.hits if row else 0


async def count(db: Database, key: str, *, window_seconds: int, now: float | None = None) -> int:
    now = time.time() if now is None else now
    window = int(now // window_seconds) * window_seconds
    async with transaction(db, write=False) as session:
        row = await session.get(RateLimitBucket, (key[:200], window))
        return row.hits if row else 0


def retry_after(window_seconds: int, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return max(1, math.ceil(window_seconds - (now % window_seconds)))


async def enforce(db: Database, key: str, *, limit: int, window_seconds: int) -> None:
    """Count a hit and refuse it with 429 and Retry-After once the window's limit is passed."""
    if await hit(db, key, limit=limit, window_seconds=window_seconds) > limit:
        raise TooManyRequests(retry_after(window_seconds), f"rate limit of {limit} per {window_seconds}s")


async def sweep(db: Database, *, keep_seconds: int = 86400, now: float | None = None) -> int:
    """Forget windows older than `keep_seconds` (every limit's window is far shorter)."""
    now = time.time() if now is None else now
    async with transaction(db) as session:
        result = await session.execute(
            delete(RateLimitBucket).where(RateLimitBucket.window_start < int(now) - keep_seconds)
        )
    return int(getattr(result, "rowcount", 0) or 0)
