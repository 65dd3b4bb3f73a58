"""Durable jobs: rows written in the caller's transaction, claimed and run by workers (core/worker.py).

A job type registers with @job; its handler takes a JobContext and the payload, and runs with no
transaction open: it loads what it needs in one short transaction (`async with job.db() as ctx`),
makes its network calls with none open (`async with job.call_out()`), and records the outcome in
another. Delivery is at least once: a worker that dies mid-job loses its lease and the job runs again,
so handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Index, Integer, String, Text, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.context import Ctx
from deskpal.core.db import Base, Database, IdType, UTCDateTime, transaction, utcnow
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.tenancy import TenantNotBound, TenantOwned

KEY_MAX = 200  # idempotency and ordering keys


class JobStatus(CaseInsensitiveEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


# The jobs that hold back later ones of their ordering key. Spelled as literals, not parameters, so
# that both planners can match the partial index below (a bound parameter never proves its predicate).
ACTIVE_SQL = "status IN ('queued', 'running')"
KEYED_SQL = "idempotency_key IS NOT NULL"


class JobRow(TenantOwned, Base):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_due", "status", "run_at"),
        # One job per (customer, kind, key), whatever its status: a retried delivery is a no-op.
        # Partial: jobs without a key (most) cost no index entry.
        Index(
            "ix_job_idempotency",
            "customer_id",
            "kind",
            "idempotency_key",
            unique=True,
            postgresql_where=text(KEYED_SQL),
            sqlite_where=text(KEYED_SQL),
        ),
        # The claim's "is an earlier job of this key still active?" probe; only active keyed jobs.
        Index(
            "ix_job_ordering",
            "customer_id",
            "ordering_key",
            "job_id",
            postgresql_where=text(f"ordering_key IS NOT NULL AND {ACTIVE_SQL}"),
            sqlite_where=text(f"ordering_key IS NOT NULL AND {ACTIVE_SQL}"),
        ),
    )

    job_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The running attempt's lease: stamped when it starts, renewed by the worker while it runs.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(KEY_MAX))
    ordering_key: Mapped[str | None] = mapped_column(String(KEY_MAX))


class PermanentJobError(Exception):
    """Raised by a handler when trying again cannot help (a refused address, a deleted record):
    the job is dead at once, with this message as its last error."""


class RetryableJobError(Exception):
    """Raised by a handler for a failure worth retrying; `retry_after` (seconds or a timedelta),
    when given, replaces the backoff (a rate limit's Retry-After). Any other exception is retried
    with the backoff too."""

    def __init__(self, message: str, *, retry_after: float | timedelta | None = None) -> None:
        super().__init__(message)
        seconds = retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after
        if seconds is not None and seconds < 0:
            raise ValueError("retry_after must not be negative")
        self.retry_after = seconds


class _Transactions:
    """Short transactions bound to one customer, and network steps that may not overlap them."""

    __slots__ = ("_calling", "_database", "_open", "customer_id", "kind")

    def __init__(self, database: Database, *, kind: str, customer_id: int) -> None:
        self._database = database
        self.kind = kind
        self.customer_id = customer_id
        self._open = 0
        self._calling = 0

    @asynccontextmanager
    async def db(self, *, write: bool = True) -> AsyncIterator[Ctx]:
        """One short unit of work as the worker actor of the job's customer (write=False: a read in
        autocommit, which takes no lock at all)."""
        if self._open:
            # On SQLite the second would wait for the first's write lock forever; on PostgreSQL it
            # would quietly hold two connections.
            raise RuntimeError(f"job {self.kind}: a transaction inside another one")
        if self._calling:
            raise RuntimeError(f"job {self.kind}: a transaction inside call_out()")
        self._open += 1
        try:
            async with transaction(self._database, write=write, customer_id=self.customer_id) as session:
                yield Ctx.worker(session, self.customer_id)
        finally:
            self._open -= 1

    @asynccontextmanager
    async def call_out(self) -> AsyncIterator[None]:
        """The network step: no transaction of this job may be open during it."""
        if self._open:
            raise RuntimeError(f"job {self.kind}: a network call inside a transaction")
        self._calling += 1
        try:
            yield
        finally:
            self._calling -= 1


class JobContext(_Transactions):
    """What a handler is given: which job it runs, for which customer, and short transactions.

    No transaction is open when the handler starts. `db()` opens one, bound to the job's customer,
    and commits when its block ends; `call_out()` marks a network step (S3, SMTP, an LLM) and refuses
    to start while one of this job's transactions is open, so that no lock is held across the call.
    """

    __slots__ = ("attempt", "job_id", "max_attempts")

    def __init__(
        self, database: Database, *, job_id: int, kind: str, customer_id: int, attempt: int, max_attempts: int
    ) -> None:
        super().__init__(database, kind=kind, customer_id=customer_id)
        self.job_id = job_id
        self.attempt = attempt  # 1 for the first run
        self.max_attempts = max_attempts


@dataclass(slots=True)
class BatchItem:
    """One job of a batch: its payload, and the failure the handler gives it (None: it succeeded)."""

    job: JobContext
    payload: Any
    error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        """This job failed (PermanentJobError, RetryableJobError or any exception, as a plain
        handler would raise it); the batch's other jobs are not affected."""
        self.error = error


class JobBatch(_Transactions):
    """What a batch handler is given: several due jobs of one kind and one customer, run together so
    that they share their transactions and connections (a send job's SMTP session). Each job keeps
    its own outcome: `item.fail(exc)` for one, an exception out of the handler for all not settled.
    """

    __slots__ = ("items",)

    def __init__(self, database: Database, *, kind: str, customer_id: int, items: list[BatchItem]) -> None:
        super().__init__(database, kind=kind, customer_id=customer_id)
        self.items = items


Handler = Callable[[JobContext, Any], Awaitable[None]]
BatchHandler = Callable[[JobBatch], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobType:
    kind: str
    payload: type[BaseModel]
    handler: Handler | None
    max_attempts: int
    backoff_seconds: float
    timeout_seconds: float
    # A batch kind: up to max_batch due jobs of one customer go to one call of batch_handler.
    batch_handler: BatchHandler | None = None
    max_batch: int = 1


REGISTRY: dict[str, JobType] = {}


def job(
    kind: str,
    *,
    payload: type[BaseModel],
    max_attempts: int = 8,
    backoff_seconds: float = 5.0,
    timeout_seconds: float = 300.0,
) -> Callable[[Handler], Handler]:
    """Register a handler for `kind` (named domain.verb); payloads carry ids, not ORM objects.

    A run longer than `timeout_seconds` is cut off and counts as a failure to retry.
    """
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")

    def register(fn: Handler) -> Handler:
        _check_first_parameter(kind, fn)
        REGISTRY[kind] = JobType(kind, payload, fn, max_attempts, backoff_seconds, timeout_seconds)
        return fn

    return register


def batch_job(
    kind: str,
    *,
    payload: type[BaseModel],
    max_batch: int,
    max_attempts: int = 8,
    backoff_seconds: float = 5.0,
    timeout_seconds: float = 300.0,
) -> Callable[[BatchHandler], BatchHandler]:
    """Register a batch handler for `kind`: the worker hands it up to `max_batch` due jobs of one
    customer at once (fewer when fewer are due; never waiting for more). Each job is still its own
    row with its own attempts, lease and outcome; `timeout_seconds` bounds the whole call.
    """
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")

    def register(fn: BatchHandler) -> BatchHandler:
        REGISTRY[kind] = JobType(
            kind, payload, None, max_attempts, backoff_seconds, timeout_seconds, fn, max_batch
        )
        return fn

    return register


def _check_first_parameter(kind: str, fn: Handler) -> None:
    """Handlers written for the old signature (a Ctx bound to an open transaction) fail at import,
    not at their first run."""
    params = list(inspect.signature(fn).parameters.values())
    annotation = params[0].annotation if params else None
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if annotation is not inspect.Parameter.empty and name != "JobContext":
        raise TypeError(
            f"job {kind}: a handler takes (job: JobContext, payload), not {name or repr(annotation)}; "
            "it opens short transactions with `async with job.db() as ctx` (core/jobs.py)"
        )


Upkeep = Callable[[Database], Awaitable[Any]]
# Periodic work no request triggers, run by every worker on its own clock (each must be safe to run
# in several workers at once): name -> (seconds between runs, function).
UPKEEP: dict[str, tuple[float, Upkeep]] = {}


def upkeep(name: str, *, every_seconds: float) -> Callable[[Upkeep], Upkeep]:
    def register(fn: Upkeep) -> Upkeep:
        UPKEEP[name] = (every_seconds, fn)
        return fn

    return register


Daemon = Callable[[Database, asyncio.Event], Awaitable[None]]
# Long-running loops every worker runs beside its jobs, each in a task of its own (polling the IMAP
# mailboxes: work that waits on the network for seconds must not hold up claiming, as an upkeep
# would). A daemon is given the worker's stop event and returns soon after it is set; like an
# upkeep it runs in every worker at once, so whatever it works on it must lease.
DAEMONS: dict[str, Daemon] = {}


def daemon(name: str) -> Callable[[Daemon], Daemon]:
    def register(fn: Daemon) -> Daemon:
        DAEMONS[name] = fn
        return fn

    return register


def _key(name: str, value: str | None) -> str | None:
    if value is not None and not 1 <= len(value) <= KEY_MAX:
        raise ValueError(f"{name} must be 1 to {KEY_MAX} characters")
    return value


async def enqueue(
    db: AsyncSession,
    kind: str,
    payload: BaseModel | dict[str, Any],
    *,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
) -> JobRow:
    """Write a job in the session's transaction.

    With `idempotency_key`, a job of this customer and kind with that key already written (in any
    status) is returned instead and nothing is written. With `ordering_key`, jobs of this customer
    sharing the key run one at a time, in the order they were enqueued.
    """
    job_type = REGISTRY.get(kind)
    if job_type is None:
        raise LookupError(f"no job type {kind!r} is registered")
    model = payload if isinstance(payload, BaseModel) else job_type.payload.model_validate(payload)
    values: dict[str, Any] = {
        "kind": kind,
        "payload": model.model_dump(mode="json"),
        "status": JobStatus.QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts or job_type.max_attempts,
        "run_at": run_at or utcnow(),
        "idempotency_key": _key("idempotency_key", idempotency_key),
        "ordering_key": _key("ordering_key", ordering_key),
    }
    if idempotency_key is None:
        row = JobRow(**values)
        db.add(row)
        await db.flush()
        return row
    return await _enqueue_once(db, values)


async def _enqueue_once(db: AsyncSession, values: dict[str, Any]) -> JobRow:
    customer_id = db.info.get("customer_id")
    if customer_id is None:
        raise TenantNotBound("enqueue with no tenant bound")
    # ON CONFLICT DO NOTHING rather than catching IntegrityError: the transaction stays usable, and
    # on PostgreSQL a concurrent enqueue of the same key waits for the first to commit or roll back,
    # then either finds its row or writes its own.
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(JobRow)
        .values(customer_id=customer_id, created_at=utcnow(), **values)
        .on_conflict_do_nothing(
            index_elements=["customer_id", "kind", "idempotency_key"], index_where=text(KEYED_SQL)
        )
        .returning(JobRow)
    )
    row = (await db.scalars(stmt)).first()
    if row is not None:
        return row
    existing = select(JobRow).where(
        JobRow.kind == values["kind"], JobRow.idempotency_key == values["idempotency_key"]
    )
    return (await db.scalars(existing)).one()
