"""Durable jobs: rows written in the caller's transaction, claimed and run by workers.

A worker claims due jobs with a compare-and-set UPDATE (candidates picked with FOR UPDATE SKIP
LOCKED on PostgreSQL), runs each outside the claim, and records the outcome in a new transaction.
Failures retry with exponential backoff; after max_attempts the job is dead. A worker that dies
mid-job loses its lease, and the job runs again: handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Index, Integer, String, Text, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.context import Ctx
from deskpal.core.db import Base, Database, IdType, UTCDateTime, transaction, utcnow
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.tenancy import TenantOwned

log = logging.getLogger("deskpal.jobs")


class JobStatus(CaseInsensitiveEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class JobRow(TenantOwned, Base):
    __tablename__ = "job"
    __table_args__ = (Index("ix_job_due", "status", "run_at"),)

    job_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


Handler = Callable[[Ctx, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobType:
    kind: str
    payload: type[BaseModel]
    handler: Handler
    max_attempts: int
    backoff_seconds: float


REGISTRY: dict[str, JobType] = {}


def job(
    kind: str, *, payload: type[BaseModel], max_attempts: int = 8, backoff_seconds: float = 5.0
) -> Callable[[Handler], Handler]:
    """Register a handler for `kind` (named domain.verb); payloads carry ids, not ORM objects."""

    def register(fn: Handler) -> Handler:
        REGISTRY[kind] = JobType(kind, payload, fn, max_attempts, backoff_seconds)
        return fn

    return register


Upkeep = Callable[[Database], Awaitable[Any]]
# Periodic work no request triggers, run by every worker on its own clock (each must be safe to run
# in several workers at once): name -> (seconds between runs, function).
UPKEEP: dict[str, tuple[float, Upkeep]] = {}


def upkeep(name: str, *, every_seconds: float) -> Callable[[Upkeep], Upkeep]:
    def register(fn: Upkeep) -> Upkeep:
        UPKEEP[name] = (every_seconds, fn)
        return fn

    return register


async def enqueue(
    db: AsyncSession,
    kind: str,
    payload: BaseModel | dict[str, Any],
    *,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
) -> JobRow:
    job_type = REGISTRY.get(kind)
    if job_type is None:
        raise LookupError(f"no job type {kind!r} is registered")
    model = payload if isinstance(payload, BaseModel) else job_type.payload.model_validate(payload)
    row = JobRow(
        kind=kind,
        payload=model.model_dump(mode="json"),
        status=JobStatus.QUEUED,
        attempts=0,
        max_attempts=max_attempts or job_type.max_attempts,
        run_at=run_at or utcnow(),
    )
    db.add(row)
    await db.flush()
    return row


def backoff(job_type: JobType | None, attempts: int) -> timedelta:
    base = job_type.backoff_seconds if job_type else 5.0
    delay = min(base * 2 ** (attempts - 1), 3600.0)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


class Worker:
    """Claims and runs due jobs. Many may run at once, in one process or many."""

    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: int = 300,
        poll_seconds: float = 0.5,
        batch: int = 10,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.clock = clock
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    async def claim(self) -> list[JobRow]:
        now = self.clock()
        due = or_(
            (JobRow.status == JobStatus.QUEUED) & (JobRow.run_at <= now),
            (JobRow.status == JobStatus.RUNNING) & (JobRow.locked_until < now),
        )
        async with transaction(self.db) as session:
            candidates = (
                select(JobRow.job_id)
                .where(due)
                .order_by(JobRow.run_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
                .execution_options(all_tenants=True)
            )
            ids = list((await session.scalars(candidates)).all())
            if not ids:
                return []
            # Compare-and-set: a job another worker claimed in the meantime no longer matches `due`.
            claimed = await session.scalars(
                update(JobRow)
                .where(JobRow.job_id.in_(ids), due)
                .values(
                    status=JobStatus.RUNNING,
                    attempts=JobRow.attempts + 1,
                    locked_until=now + self.lease,
                    locked_by=self.name,
                )
                .returning(JobRow)
                .execution_options(all_tenants=True, synchronize_session=False)
            )
            return list(claimed.all())

    async def run_one(self, row: JobRow) -> None:
        job_type = REGISTRY.get(row.kind)
        error: str | None = None
        try:
            if job_type is None:
                raise LookupError(f"no handler for job kind {row.kind!r}")
            payload = job_type.payload.model_validate(row.payload)
            async with transaction(self.db, customer_id=row.customer_id) as session:
                await job_type.handler(Ctx.worker(session, row.customer_id), payload)
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()[:4000]
            log.warning("job %s (%s) attempt %s failed: %s", row.job_id, row.kind, row.attempts, error)
        await self._finish(row, job_type, error)

    async def _finish(self, row: JobRow, job_type: JobType | None, error: str | None) -> None:
        now = self.clock()
        values: dict[str, Any] = {"locked_until": None, "locked_by": None}
        if error is None:
            values.update(status=JobStatus.DONE, finished_at=now, last_error=None)
        elif row.attempts >= row.max_attempts:
            values.update(status=JobStatus.DEAD, finished_at=now, last_error=error)
        else:
            values.update(
                status=JobStatus.QUEUED, run_at=now + backoff(job_type, row.attempts), last_error=error
            )
        async with transaction(self.db) as session:
            # Only the lease holder records the outcome; after a lost lease another worker owns it.
            await session.execute(
                update(JobRow)
                .where(JobRow.job_id == row.job_id, JobRow.locked_by == self.name)
                .values(**values)
                .execution_options(all_tenants=True, synchronize_session=False)
            )

    async def run_pending(self, stop: asyncio.Event | None = None) -> int:
        """Run every job due now, batch by batch, until none is due or `stop` is set."""
        ran = 0
        while not (stop and stop.is_set()) and (batch := await self.claim()):
            for row in batch:
                await self.run_one(row)
            ran += len(batch)
        return ran

    async def housekeeping(self) -> None:
        """Periodic upkeep that no request triggers: old rate-limit windows."""
        from deskpal.core import ratelimit

        removed = await ratelimit.sweep(self.db)
        if removed:
            log.info("worker %s: swept %d old rate-limit windows", self.name, removed)

    async def run_forever(self, stop: asyncio.Event, *, housekeeping_seconds: float = 600) -> None:
        log.info("worker %s started", self.name)
        next_housekeeping = 0.0
        loop = asyncio.get_running_loop()
        next_upkeep = dict.fromkeys(UPKEEP, 0.0)
        while not stop.is_set():
            if loop.time() >= next_housekeeping:
                next_housekeeping = loop.time() + housekeeping_seconds
                try:
                    await self.housekeeping()
                except Exception:
                    log.exception("worker %s: housekeeping failed", self.name)
            for name, (every, fn) in UPKEEP.items():
                if loop.time() >= next_upkeep.get(name, 0.0):
                    next_upkeep[name] = loop.time() + every
                    try:
                        await fn(self.db)
                    except Exception:
                        log.exception("worker %s: %s failed", self.name, name)
            try:
                ran = await self.run_pending(stop)
            except Exception:
                log.exception("worker %s: claiming failed; retrying", self.name)
                ran = 0
            if not ran:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
        log.info("worker %s stopped", self.name)
