"""The worker: claims due jobs and runs up to `concurrency` of them at once.

Each job is claimed when a slot is free to run it, so its lease starts when it starts; a heartbeat
renews that lease while the handler runs, and only the holder of the lease (this worker, this
attempt) may record the outcome. A handler runs with no transaction open (core/jobs.py, JobContext)
under its type's time limit. Failures retry with backoff unless the handler says otherwise
(PermanentJobError: dead at once; RetryableJobError(retry_after=...): at that delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from deskpal.core.db import Database, IdType, UTCDateTime, transaction, utcnow
from deskpal.core.jobs import (
    DAEMONS,
    REGISTRY,
    UPKEEP,
    BatchItem,
    Daemon,
    JobBatch,
    JobContext,
    JobRow,
    JobStatus,
    JobType,
    PermanentJobError,
    RetryableJobError,
)

log = logging.getLogger("deskpal.jobs")
_T = TypeVar("_T")

MAX_BACKOFF_SECONDS = 3600.0
DAEMON_RESTART_SECONDS = 5.0


def backoff(job_type: JobType | None, attempts: int) -> timedelta:
    base = job_type.backoff_seconds if job_type else 5.0
    delay = min(base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: error None is success."""

    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()[:4000]


def _outcome_of(exc: Exception, row: JobRow, job_type: JobType, expired: bool) -> Outcome:
    """How a handler's exception ends the attempt (`expired`: its time limit cut it off)."""
    if isinstance(exc, PermanentJobError):
        return Outcome(_describe(exc), permanent=True)
    if isinstance(exc, RetryableJobError):
        return Outcome(_describe(exc), retry_after=exc.retry_after)
    if isinstance(exc, TimeoutError) and expired:
        return Outcome(
            f"TimeoutError: cut off after its time limit of {job_type.timeout_seconds:g} s "
            f"(timeout_seconds of {row.kind})"
        )
    log.debug("job %s (%s) raised", row.job_id, row.kind, exc_info=exc)
    return Outcome(_describe(exc))  # the handler's own timeout (a socket, a lock) included


def _not_held_back() -> ColumnElement[bool]:
    """No earlier job of the same customer and ordering key is queued or running."""
    earlier = aliased(JobRow)
    active = earlier.status.in_([literal_column("'queued'"), literal_column("'running'")])
    return or_(
        JobRow.ordering_key.is_(None),
        ~exists().where(
            earlier.customer_id == JobRow.customer_id,
            earlier.ordering_key == JobRow.ordering_key,
            earlier.job_id < JobRow.job_id,
            active,
        ),
    )


_NOW = bindparam("now", type_=UTCDateTime())
_LIMIT = bindparam("limit", type_=Integer())
# A lapsed lease (its worker died) and a queued job whose time has come.
_LAPSED = (JobRow.status == JobStatus.RUNNING) & (JobRow.locked_until < _NOW)
_QUEUED_DUE = (JobRow.status == JobStatus.QUEUED) & (JobRow.run_at <= _NOW)


@dataclass(frozen=True, slots=True)
class _Statements:
    """Built once: building the ordering probe's alias and adapting it cost more than running it."""

    claims: tuple[Select[int], ...]
    more: Select[int]  # queued due jobs of one kind and customer: a batch topped up
    take: Any  # UPDATE … RETURNING: the compare-and-set claim of the chosen ids
    renew: Any  # UPDATE: extend the lease of an attempt still held
    finish: dict[frozenset[str], Any] = field(default_factory=dict)  # UPDATE per set of columns


def claim_statements() -> tuple[Select[int], ...]:
    """The ids of up to :limit claimable jobs at :now, skipping rows other workers lock: lapsed
    leases first (few; they must not starve behind a long queue), then queued jobs, oldest due first.

    Two statements rather than one with OR: each reads ix_job_due in order and stops after :limit
    rows, where the OR had both planners gather and sort every due job on every claim.
    """
    return _statements().claims


# An attempt this worker still owns: nobody took the job over after its lease lapsed.
_HOLDS = and_(
    JobRow.job_id == bindparam("held_job_id", type_=IdType),
    JobRow.status == JobStatus.RUNNING,
    JobRow.locked_by == bindparam("held_by", type_=String()),
    JobRow.attempts == bindparam("held_attempt", type_=Integer()),
)
_CROSS_TENANT = {"all_tenants": True, "synchronize_session": False}


@functools.cache
def _statements() -> _Statements:
    claims = tuple(
        select(JobRow.job_id)
        .where(due, _not_held_back())
        .order_by(JobRow.run_at)
        .limit(_LIMIT)
        .with_for_update(skip_locked=True, of=JobRow)
        .execution_options(all_tenants=True)
        for due in (_LAPSED, _QUEUED_DUE)
    )
    more = (
        select(JobRow.job_id)
        .where(
            _QUEUED_DUE,
            JobRow.kind == bindparam("kind", type_=String()),
            JobRow.customer_id == bindparam("customer_id", type_=IdType),
            JobRow.job_id.not_in(bindparam("taken", expanding=True)),
            _not_held_back(),
        )
        .order_by(JobRow.run_at)
        .limit(_LIMIT)
        .with_for_update(skip_locked=True, of=JobRow)
        .execution_options(all_tenants=True)
    )
    take = (
        update(JobRow)
        .where(
            JobRow.job_id.in_(bindparam("ids", expanding=True)), or_(_LAPSED, _QUEUED_DUE), _not_held_back()
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=JobRow.attempts + 1,
            locked_until=bindparam("until", type_=UTCDateTime()),
            locked_by=bindparam("worker_name", type_=String()),
        )
        .returning(JobRow)
        .execution_options(**_CROSS_TENANT)
    )
    renew = (
        update(JobRow)
        .where(_HOLDS)
        .values(locked_until=bindparam("until", type_=UTCDateTime()))
        .execution_options(**_CROSS_TENANT)
    )
    return _Statements(claims, more, take, renew)


def _finish_statement(columns: frozenset[str]) -> Any:
    cache = _statements().finish
    if columns not in cache:
        table = JobRow.__table__
        cache[columns] = (
            update(JobRow)
            .where(_HOLDS)
            .values({c: bindparam(f"new_{c}", type_=table.c[c].type) for c in sorted(columns)})
            .execution_options(**_CROSS_TENANT)
        )
    return cache[columns]


def _runs(rows: list[JobRow]) -> list[list[JobRow]]:
    """The claimed jobs as the calls that run them: a job alone, or up to a batch kind's max_batch
    jobs of one customer together. Each call takes one slot."""
    runs: list[list[JobRow]] = []
    open_batches: dict[tuple[str, int], list[JobRow]] = {}
    for row in rows:
        job_type = REGISTRY.get(row.kind)
        if job_type is None or job_type.batch_handler is None:
            runs.append([row])
            continue
        key = (row.kind, row.customer_id)
        batch = open_batches.get(key)
        if batch is None or len(batch) >= job_type.max_batch:
            batch = open_batches[key] = []
            runs.append(batch)
        batch.append(row)
    return runs


class Worker:
    """Claims and runs due jobs. Many may run at once, in one process or many."""

    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float = 300,
        poll_seconds: float = 0.5,
        concurrency: int = 4,
        heartbeat_seconds: float | None = None,
        clock: Callable[[], datetime] = utcnow,
        daemons: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        # Three renewals per lease: one slow or failed renewal does not lose it.
        self.heartbeat_seconds = lease_seconds / 3 if heartbeat_seconds is None else heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.clock = clock
        self.daemons = daemons  # run_forever also runs the registered daemons (core/jobs.py DAEMONS)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._running: set[asyncio.Task[None]] = set()
        self._lapsed_checked_at: float | None = None  # loop time of the last look for lapsed leases

    # --- claiming --------------------------------------------------------------------------------

    async def claim(self, limit: int | None = None, *, lapsed: bool = True) -> list[JobRow]:
        """Claim up to `limit` due jobs (default: the free slots) and stamp each one's own lease;
        `lapsed`: also jobs whose worker's lease lapsed.

        Only as many as will start at once are claimed, so no claimed job waits for another.
        """
        limit = self.concurrency - len(self._running) if limit is None else limit
        if limit <= 0:
            return []
        now = self.clock()
        lapsed_leases, queued = claim_statements()
        async with transaction(self.db) as session:
            ids: list[int] = []
            for stmt in (lapsed_leases, queued) if lapsed else (queued,):
                ids += (await session.scalars(stmt, {"now": now, "limit": limit - len(ids)})).all()
                if len(ids) >= limit:
                    break
            if not ids:
                return []
            # Compare-and-set: a job another worker claimed in the meantime no longer matches.
            params = {"ids": ids, "now": now, "until": now + self.lease, "worker_name": self.name}
            claimed = list((await session.scalars(_statements().take, params)).all())
            claimed += await self._top_up(session, claimed, now)
            # Oldest first: RETURNING gives no order, and a batch runs its jobs in this one.
            return sorted(claimed, key=lambda row: (row.run_at, row.job_id))

    async def _top_up(self, session: Any, claimed: list[JobRow], now: datetime) -> list[JobRow]:
        """For each batch kind and customer among the claimed jobs, more of its due jobs, up to the
        kind's batch size: they run in the same call, taking no further slot."""
        wanted: dict[tuple[str, int], int] = {}
        for row in claimed:
            job_type = REGISTRY.get(row.kind)
            if job_type is not None and job_type.max_batch > 1:
                key = (row.kind, row.customer_id)
                wanted[key] = wanted.get(key, job_type.max_batch) - 1
        more: list[JobRow] = []
        taken = [row.job_id for row in claimed]
        statements = _statements()
        for (kind, customer_id), room in wanted.items():
            if room <= 0:
                continue
            probe = {"now": now, "limit": room, "kind": kind, "customer_id": customer_id, "taken": taken}
            ids = list((await session.scalars(statements.more, probe)).all())
            if ids:
                params = {"ids": ids, "now": now, "until": now + self.lease, "worker_name": self.name}
                more += (await session.scalars(statements.take, params)).all()
        return more

    def _held(self, row: JobRow) -> dict[str, Any]:
        return {"held_job_id": row.job_id, "held_by": self.name, "held_attempt": row.attempts}

    async def _renew(self, rows: list[JobRow]) -> bool:
        """Extend the leases of `rows` (one attempt, or a batch run together); False once any is lost."""
        async with transaction(self.db) as session:
            until = self.clock() + self.lease
            held = 0
            for row in rows:
                result = await session.execute(_statements().renew, {**self._held(row), "until": until})
                held += int(getattr(result, "rowcount", 0) or 0)
            return held == len(rows)

    async def _keep_lease(self, rows: list[JobRow]) -> None:
        """Renew the leases until cancelled; return once one is found lost."""
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                if not await self._renew(rows):
                    return
            except Exception:  # the database is away: keep trying while the lease may still hold
                log.warning(
                    "worker %s: renewing the lease of job %s failed", self.name, rows[0].job_id, exc_info=True
                )

    # --- running ---------------------------------------------------------------------------------

    def _context(self, row: JobRow) -> JobContext:
        return JobContext(
            self.db,
            job_id=row.job_id,
            kind=row.kind,
            customer_id=row.customer_id,
            attempt=row.attempts,
            max_attempts=row.max_attempts,
        )

    async def _attempt(self, row: JobRow, job_type: JobType | None) -> Outcome:
        if job_type is None or job_type.handler is None:
            # Retried, not dead: during a rolling deploy an older worker may not know a new kind.
            return Outcome(f"LookupError: no handler for job kind {row.kind!r}")
        job = self._context(row)
        limit = asyncio.timeout(job_type.timeout_seconds)
        try:
            payload = job_type.payload.model_validate(row.payload)
            async with limit:
                await job_type.handler(job, payload)
        except Exception as exc:
            return _outcome_of(exc, row, job_type, limit.expired())
        return Outcome()

    async def _attempt_batch(self, rows: list[JobRow], job_type: JobType) -> list[Outcome]:
        """One call of the kind's batch handler for `rows` (one kind, one customer): each job's
        outcome, its own failure where the handler gave one, else the call's."""
        assert job_type.batch_handler is not None
        outcomes: dict[int, Outcome] = {}
        items: list[tuple[JobRow, BatchItem]] = []
        for row in rows:
            try:
                payload = job_type.payload.model_validate(row.payload)
            except Exception as exc:
                outcomes[row.job_id] = _outcome_of(exc, row, job_type, False)
                continue
            items.append((row, BatchItem(self._context(row), payload)))
        if items:
            batch = JobBatch(
                self.db, kind=job_type.kind, customer_id=rows[0].customer_id, items=[i for _, i in items]
            )
            limit = asyncio.timeout(job_type.timeout_seconds)
            failed: Exception | None = None
            try:
                async with limit:
                    await job_type.batch_handler(batch)
            except Exception as exc:
                failed = exc
            for row, item in items:
                error = item.error if item.error is not None else failed
                if isinstance(error, Exception):
                    outcomes[row.job_id] = _outcome_of(error, row, job_type, limit.expired())
                elif error is not None:  # a BaseException given to fail(): not the handler's to give
                    outcomes[row.job_id] = Outcome(_describe(error))
                else:
                    outcomes[row.job_id] = Outcome()
        return [outcomes[row.job_id] for row in rows]

    async def run_job(self, row: JobRow) -> bool:
        """Run one claimed job to its outcome; False if its lease was lost meanwhile (nothing recorded)."""
        job_type = REGISTRY.get(row.kind)
        if job_type is not None and job_type.batch_handler is not None:
            return await self.run_batch([row]) == 1
        outcome = await self._leased([row], self._attempt(row, job_type))
        if outcome is None:
            return False
        return await self.finish([row], job_type, [outcome]) == 1

    async def run_batch(self, rows: list[JobRow]) -> int:
        """Run claimed jobs of one batch kind and customer in one call; how many outcomes were recorded."""
        job_type = REGISTRY[rows[0].kind]
        outcomes = await self._leased(rows, self._attempt_batch(rows, job_type))
        if outcomes is None:
            return 0
        return await self.finish(rows, job_type, outcomes)

    async def _leased(self, rows: list[JobRow], attempt: Coroutine[Any, Any, _T]) -> _T | None:
        """Run `attempt` while renewing the leases of `rows`; None when one was lost meanwhile
        (another worker runs the job now; the attempt is stopped and records nothing)."""
        work = asyncio.create_task(attempt)
        lease = asyncio.create_task(self._keep_lease(rows))
        try:
            await asyncio.wait({work, lease}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lease.cancel()
            if not work.done():
                # The lease was lost (another worker runs the job now) or this worker is stopping.
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        with contextlib.suppress(asyncio.CancelledError):
            await lease
        if work.cancelled():
            for row in rows:
                log.warning(
                    "worker %s: lost the lease of job %s (%s) attempt %s; stopped it, recording nothing",
                    self.name,
                    row.job_id,
                    row.kind,
                    row.attempts,
                )
            return None
        return work.result()

    def _finish_values(self, row: JobRow, job_type: JobType | None, outcome: Outcome) -> dict[str, Any]:
        now = self.clock()
        values: dict[str, Any] = {"locked_until": None, "locked_by": None}
        if outcome.error is None:
            values.update(status=JobStatus.DONE, finished_at=now, last_error=None)
        elif outcome.permanent or row.attempts >= row.max_attempts:
            values.update(status=JobStatus.DEAD, finished_at=now, last_error=outcome.error)
        else:
            delay = (
                backoff(job_type, row.attempts)
                if outcome.retry_after is None
                else timedelta(seconds=outcome.retry_after)
            )
            values.update(status=JobStatus.QUEUED, run_at=now + delay, last_error=outcome.error)
        return values

    async def finish(self, rows: list[JobRow], job_type: JobType | None, outcomes: list[Outcome]) -> int:
        """Record each attempt's outcome, in one transaction, only where this attempt still holds
        its lease; return how many were recorded."""
        recorded = 0
        async with transaction(self.db) as session:
            for row, outcome in zip(rows, outcomes, strict=True):
                if outcome.error is not None:
                    log.warning(
                        "job %s (%s) attempt %s failed: %s", row.job_id, row.kind, row.attempts, outcome.error
                    )
                values = self._finish_values(row, job_type, outcome)
                params = {**self._held(row), **{f"new_{c}": v for c, v in values.items()}}
                result = await session.execute(_finish_statement(frozenset(values)), params)
                if int(getattr(result, "rowcount", 0) or 0) == 1:
                    recorded += 1
                else:
                    log.warning(
                        "worker %s: job %s attempt %s lost its lease to another worker; outcome dropped",
                        self.name,
                        row.job_id,
                        row.attempts,
                    )
        return recorded

    async def _guarded(self, rows: list[JobRow]) -> None:
        try:
            if len(rows) == 1:
                await self.run_job(rows[0])
            else:
                await self.run_batch(rows)
        except Exception:  # recording failed (the database is away): the lease lapses, it runs again
            log.exception("worker %s: job %s could not be recorded", self.name, rows[0].job_id)

    def _look_for_lapsed(self) -> bool:
        """At most once per heartbeat interval: a lease lapses only after a whole lease, and the
        extra read on every claim cost the busy queue a round trip per job."""
        now = asyncio.get_running_loop().time()
        if self._lapsed_checked_at is not None and now - self._lapsed_checked_at < self.heartbeat_seconds:
            return False
        self._lapsed_checked_at = now
        return True

    async def _fill(self) -> int:
        """Claim jobs for the free slots and start them; return how many started."""
        if len(self._running) >= self.concurrency:
            return 0
        rows = await self.claim(lapsed=self._look_for_lapsed())
        for group in _runs(rows):
            task = asyncio.create_task(self._guarded(group), name=f"job-{group[0].job_id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(rows)

    async def _wait(self, stop: asyncio.Event | None, seconds: float | None) -> None:
        """Until a running job ends, `stop` is set, or `seconds` pass."""
        waiters: set[asyncio.Future[Any]] = {*self._running}
        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopping is not None:
            waiters.add(stopping)
        try:
            if waiters:
                await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            elif seconds is not None:
                await asyncio.sleep(seconds)
        finally:
            if stopping is not None:
                stopping.cancel()

    async def drain(self) -> None:
        """Wait for the jobs this worker runs (each is bounded by its time limit)."""
        while self._running:
            await asyncio.wait(set(self._running))

    def _abandon(self) -> None:
        """This worker's own task was cancelled: stop its jobs too (their leases lapse and another
        worker runs them again)."""
        for task in self._running:
            task.cancel()

    async def run_pending(self, stop: asyncio.Event | None = None) -> int:
        """Run every job due now, up to `concurrency` at once, until none is due and none runs
        (or `stop` is set; the running ones still finish). Returns how many ran."""
        ran = 0
        self._lapsed_checked_at = None  # "due now" includes the lapsed leases
        try:
            while True:
                stopping = stop is not None and stop.is_set()
                if not stopping:
                    ran += await self._fill()
                if not self._running:
                    return ran
                await self._wait(None if stopping else stop, None)
        except asyncio.CancelledError:
            self._abandon()
            raise
        finally:
            await self.drain()

    async def housekeeping(self) -> None:
        """Periodic upkeep that no request triggers: old rate-limit windows."""
        from deskpal.core import ratelimit

        removed = await ratelimit.sweep(self.db)
        if removed:
            log.info("worker %s: swept %d old rate-limit windows", self.name, removed)

    async def _upkeep(self, loop: asyncio.AbstractEventLoop, due: dict[str, float]) -> None:
        for name, (every, fn) in UPKEEP.items():
            if loop.time() >= due.get(name, 0.0):
                due[name] = loop.time() + every
                try:
                    await fn(self.db)
                except Exception:
                    log.exception("worker %s: %s failed", self.name, name)

    async def _daemon(self, name: str, fn: Daemon, stop: asyncio.Event) -> None:
        """Run one daemon until `stop`; one that crashes (or returns early) starts again a little later."""
        while not stop.is_set():
            try:
                await fn(self.db, stop)
            except Exception:
                log.exception("worker %s: daemon %s failed; restarting it", self.name, name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), DAEMON_RESTART_SECONDS)

    def _start_daemons(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        if not self.daemons:
            return []
        return [
            asyncio.create_task(self._daemon(name, fn, stop), name=f"daemon-{name}")
            for name, fn in DAEMONS.items()
        ]

    async def run_forever(self, stop: asyncio.Event, *, housekeeping_seconds: float = 600) -> None:
        log.info("worker %s started (%d at once)", self.name, self.concurrency)
        next_housekeeping = 0.0
        loop = asyncio.get_running_loop()
        next_upkeep = dict.fromkeys(UPKEEP, 0.0)
        daemons = self._start_daemons(stop)
        try:
            while not stop.is_set():
                if loop.time() >= next_housekeeping:
                    next_housekeeping = loop.time() + housekeeping_seconds
                    try:
                        await self.housekeeping()
                    except Exception:
                        log.exception("worker %s: housekeeping failed", self.name)
                await self._upkeep(loop, next_upkeep)
                try:
                    started = await self._fill()
                except Exception:
                    log.exception("worker %s: claiming failed; retrying", self.name)
                    started = 0
                if len(self._running) >= self.concurrency:
                    await self._wait(stop, None)  # every slot busy: wait for one to free up
                elif not started:
                    await self._wait(stop, self.poll_seconds)  # nothing due: poll again later
        except asyncio.CancelledError:
            self._abandon()
            for task in daemons:
                task.cancel()
            raise
        finally:
            await self.drain()
            # They saw `stop` (or were cancelled above) and finish what they hold.
            await asyncio.gather(*daemons, return_exceptions=True)
        log.info("worker %s stopped", self.name)
