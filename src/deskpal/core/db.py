"""Engine, declarative base, column types and the one-transaction-per-unit-of-work helper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from deskpal.core.sqlite_inline import inline_creator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; deskpal stores aware UTC only")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        table = cls.__dict__.get("__table__")
        if table is not None:
            # Ids are never reused: SQLite hands out the largest rowid + 1 after a delete unless the
            # table is AUTOINCREMENT (a deleted ticket's id went to another customer's next ticket).
            # Set here, for every table, so that none can forget it; only a single INTEGER primary
            # key can autoincrement, and Alembic renders the option into each new create_table.
            # PostgreSQL's sequences never go back.
            table.dialect_kwargs["sqlite_autoincrement"] = True


# Execution option: a SQLite read without BEGIN (see transaction()).
AUTOCOMMIT_READ = "deskpal_autocommit_read"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        path = make_url(url).database or ":memory:"
        # Each call runs inline on the loop's thread (core/sqlite_inline.py).
        engine = create_async_engine(url, async_creator=inline_creator(path))
        _configure_sqlite(engine)
        return engine
    # JIT off: PostgreSQL compiles any statement whose estimated cost passes jit_above_cost, and a
    # search over a million messages is estimated far above it (the planner cannot see how few rows
    # a full-text window returns); compiling took 30-40 ms of a query that runs in 10.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"jit": "off"}},
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The connection already leaves BEGIN to deskpal (writers say BEGIN IMMEDIATE), and has
        # busy_timeout 0: waiting inside SQLite would stop the event loop (sqlite_inline.py).
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes cannot wait for another writer: SQLite
        # answers SQLITE_BUSY at once. Writers take the lock up front, after queueing
        # on Database.write_lock.
        options = conn.get_execution_options()
        if options.get(AUTOCOMMIT_READ):
            return  # the connection is in autocommit until a BEGIN (isolation_level None)
        if options.get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """The engine and session factory an app, worker or CLI command works with."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        from deskpal.core.tenancy import TenantSession

        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TenantSession
        )
        self._write_locks: WeakKeyDictionary[asyncio.AbstractEventLoop, WriteLock] = WeakKeyDictionary()

    def write_lock(self) -> WriteLock:
        """SQLite's writers of this process, one at a time, in arrival order (one per event loop)."""
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = WriteLock()
        return lock

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> None:
        """One round trip, for readiness: raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def transaction(
    db: Database, *, write: bool = True, customer_id: int | None = None
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back and re-raises on any error."""
    if not write:
        # A read needs no transaction around it: its statements run in autocommit, which spares a
        # GET the BEGIN and COMMIT round trips (PostgreSQL) or statements (SQLite). A list's count
        # and page may then see different commits, like two requests would.
        read = {"isolation_level": "AUTOCOMMIT"} if db.dialect == "postgresql" else {AUTOCOMMIT_READ: True}
        async with _unit_of_work(db, customer_id, read) as session:
            yield session
    elif db.dialect == "sqlite":
        immediate = {"sqlite_immediate": True}
        async with db.write_lock().held(), _unit_of_work(db, customer_id, immediate) as session:
            yield session
    else:
        async with _unit_of_work(db, customer_id, None) as session:
            yield session


@asynccontextmanager
async def _unit_of_work(
    db: Database, customer_id: int | None, begin_options: dict[str, Any] | None
) -> AsyncIterator[AsyncSession]:
    async with db.sessions() as session:
        if customer_id is not None:
            session.info["customer_id"] = customer_id
        if begin_options is not None:
            await session.connection(execution_options=begin_options)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


class WriteLock:
    """An asyncio.Lock that refuses to be taken again by the task holding it.

    A write transaction opened inside another one in the same task would wait for itself forever.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    def locked(self) -> bool:
        return self._lock.locked()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            raise RuntimeError("a write transaction inside another one in the same task")
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None
