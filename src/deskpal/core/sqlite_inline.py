"""aiosqlite's connection API, run on the event loop's own thread.

aiosqlite hands every DB-API call (cursor, execute, fetch, close, BEGIN, COMMIT) to one thread per
connection and waits for a future: four hand-offs per statement, each competing for the GIL with
every other connection's thread. Profiles of deskpal on SQLite spent about half their time there
(docs/performance.md). deskpal's statements read a few rows from SQLite's page cache in
microseconds, so they run inline instead, and SQLAlchemy's aiosqlite dialect drives this class
unchanged (through create_async_engine's async_creator).

Two things make inline calls safe:

- No call may wait for a lock inside SQLite: that would stop the event loop, and with it the
  coroutine holding the lock. Connections have busy_timeout 0, writers in this process queue on
  Database.write_lock before BEGIN IMMEDIATE, and a SQLITE_BUSY from another process (a separate
  `deskpal worker`, the CLI) is retried here after an asyncio.sleep, for up to BUSY_TIMEOUT seconds.
- A statement that failed with SQLITE_BUSY changed nothing, so running it again is safe.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiosqlite

BUSY_TIMEOUT = 30.0
_FIRST_BACKOFF = 0.001
_MAX_BACKOFF = 0.05


def _is_busy(error: sqlite3.OperationalError) -> bool:
    # Plain SQLITE_BUSY only: SQLITE_BUSY_SNAPSHOT (a stale read transaction trying to write) can
    # never succeed by waiting, and SQLITE_LOCKED is a conflict within one connection.
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


class _RunNow:
    """Stands in for aiosqlite's queue to its thread: runs each call as it is queued.

    SQLAlchemy's adapter puts a few calls (setting isolation_level) on that queue directly.
    """

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:  # handed to the waiting coroutine
            if future is not None and not future.done():
                future.set_exception(error)
        else:
            if future is not None and not future.done():
                future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunNow()  # type: ignore[assignment]

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        return await _retry_busy(fn, args, kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Any:
        # No thread to start.
        return self._connect().__await__()


async def _retry_busy(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    deadline = time.monotonic() + BUSY_TIMEOUT
    backoff = _FIRST_BACKOFF
    while True:
        await asyncio.sleep(backoff)
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
        backoff = min(backoff * 2, _MAX_BACKOFF)


def inline_creator(path: str) -> Callable[[], Coroutine[Any, Any, InlineConnection]]:
    """An async_creator for create_async_engine: connections to the SQLite file at `path`."""

    def connector() -> sqlite3.Connection:
        # isolation_level None: deskpal issues BEGIN itself (BEGIN IMMEDIATE for writers).
        return sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)

    async def create() -> InlineConnection:
        return await InlineConnection(connector)._connect()

    return create
