"""The worker on both databases: a lease per job, renewed while it runs and honoured when lost; time
limits; permanent and retryable failures; several jobs at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from deskpal.config import Settings
from deskpal.core.db import utcnow
from deskpal.core.jobs import REGISTRY, JobContext, JobStatus, PermanentJobError, RetryableJobError, job
from deskpal.core.worker import Worker
from tests.core.job_helpers import Clock, enqueue_job, eventually, read_job
from tests.support import Tenant, db_of

RUNS: Counter[str] = Counter()
CANCELLED: set[str] = set()
RELEASE: dict[str, asyncio.Event] = {}
SEEN_ATTEMPTS: dict[str, list[int]] = {}


class Nap(BaseModel):
    tag: str
    seconds: float = 0.0


@job("test.nap", payload=Nap, max_attempts=5)
async def nap(job: JobContext, p: Nap) -> None:
    RUNS[p.tag] += 1
    await asyncio.sleep(p.seconds)


class Held(BaseModel):
    tag: str


@job("test.held_first_attempt", payload=Held, max_attempts=5)
async def held_first_attempt(job: JobContext, p: Held) -> None:
    """The first attempt waits for the test and then fails; later attempts succeed at once."""
    SEEN_ATTEMPTS.setdefault(p.tag, []).append(job.attempt)
    if job.attempt > 1:
        return
    try:
        await RELEASE[p.tag].wait()
    except asyncio.CancelledError:
        CANCELLED.add(p.tag)
        raise
    raise RuntimeError("a stale attempt's outcome")


class Failure(BaseModel):
    tag: str
    kind: str  # permanent | retry_after | timeout_own
    retry_after: float | None = None
    times: int = 99


@job("test.failing", payload=Failure, max_attempts=5, backoff_seconds=10)
async def failing(job: JobContext, p: Failure) -> None:
    RUNS[p.tag] += 1
    if RUNS[p.tag] > p.times:
        return
    if p.kind == "permanent":
        raise PermanentJobError("mailbox does not exist")
    if p.kind == "retry_after":
        raise RetryableJobError("rate limited", retry_after=p.retry_after)
    raise TimeoutError("the SMTP server did not answer")  # the handler's own timeout


@job("test.overruns", payload=Nap, max_attempts=2, timeout_seconds=0.3)
async def overruns(job: JobContext, p: Nap) -> None:
    RUNS[p.tag] += 1
    async with job.db() as ctx:
        # Cut off inside its transaction: what it wrote there must not survive.
        await ctx.enqueue("system.noop", {"note": p.tag})
        await asyncio.sleep(p.seconds)


def _tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def _rescue_while(task: asyncio.Task[object], rescuer: Worker) -> int:
    """Another worker polling as a real one would while `task` runs; returns how many it ran."""
    ran = 0
    while not task.done():
        ran += await rescuer.run_pending()
        await asyncio.sleep(0.05)
    return ran


class TestLeases:
    async def test_a_slow_job_does_not_let_the_next_ones_lease_lapse(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        """Claimed one per free slot, each with its own lease: nothing waits claimed behind the slow one
        (with one stamp for a claimed batch, the quick jobs' leases lapsed and they ran twice)."""
        slow, quick = _tag("slow"), [_tag("quick") for _ in range(3)]
        ids = [await enqueue_job(app, tenant, "test.nap", {"tag": slow, "seconds": 2.0})]
        ids += [await enqueue_job(app, tenant, "test.nap", {"tag": t}) for t in quick]
        first = Worker(db_of(app), lease_seconds=0.6, concurrency=1)
        running = asyncio.create_task(first.run_pending())
        await _rescue_while(running, Worker(db_of(app), lease_seconds=0.6))
        await running
        assert [RUNS[t] for t in (slow, *quick)] == [1, 1, 1, 1]
        rows = [await read_job(app, tenant, i) for i in ids]
        assert [(r.status, r.attempts) for r in rows] == [(JobStatus.DONE, 1)] * 4

    async def test_renewal_keeps_a_long_job_alive_past_its_first_lease(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        tag = _tag("long")
        job_id = await enqueue_job(app, tenant, "test.nap", {"tag": tag, "seconds": 2.0})
        worker = Worker(db_of(app), lease_seconds=0.6, concurrency=1)
        running = asyncio.create_task(worker.run_pending())

        async def started() -> bool:
            return (await read_job(app, tenant, job_id)).status == JobStatus.RUNNING

        await eventually(started)
        first_lease = (await read_job(app, tenant, job_id)).locked_until
        rescued = asyncio.create_task(_rescue_while(running, Worker(db_of(app), lease_seconds=0.6)))
        await asyncio.sleep(1.2)  # twice the lease
        renewed = await read_job(app, tenant, job_id)
        assert renewed.status == JobStatus.RUNNING and renewed.locked_by == worker.name
        assert first_lease is not None and renewed.locked_until is not None
        assert renewed.locked_until - first_lease >= timedelta(seconds=0.8)
        assert renewed.locked_until > utcnow()
        await running
        assert await rescued == 0
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, RUNS[tag]) == (JobStatus.DONE, 1, 1)

    async def test_a_lost_lease_does_not_overwrite_the_new_owners_outcome(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        """A stalled worker (no renewal) loses its lease; the job's new owner finishes it; the stalled
        attempt's late failure is not recorded."""
        tag = _tag("stalled")
        RELEASE[tag] = asyncio.Event()
        job_id = await enqueue_job(app, tenant, "test.held_first_attempt", {"tag": tag})
        stalled = Worker(db_of(app), lease_seconds=0.3, heartbeat_seconds=3600)
        [claimed] = await stalled.claim()
        first = asyncio.create_task(stalled.run_job(claimed))
        await asyncio.sleep(0.4)  # the lease lapses
        assert await Worker(db_of(app)).run_pending() == 1  # the new owner: attempt 2, done
        RELEASE[tag].set()  # the stalled attempt now fails, late
        assert await first is False
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, row.last_error, row.locked_by) == (JobStatus.DONE, 2, None, None)
        assert SEEN_ATTEMPTS[tag] == [1, 2]

    async def test_a_worker_that_finds_its_lease_taken_stops_the_job(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        tag = _tag("taken")
        RELEASE[tag] = asyncio.Event()  # never set: only the lost lease ends the first attempt
        async with asyncio.timeout(10):
            job_id = await enqueue_job(
                app, tenant, "test.held_first_attempt", {"tag": tag}, run_at=utcnow() - timedelta(hours=2)
            )
            # A clock an hour behind: the leases it stamps have lapsed for everyone else.
            behind = Worker(db_of(app), lease_seconds=0.6, clock=lambda: utcnow() - timedelta(hours=1))
            [claimed] = await behind.claim()
            first = asyncio.create_task(behind.run_job(claimed))
            assert await Worker(db_of(app)).run_pending() == 1
            assert await first is False  # its next renewal found the job taken, and cancelled it
        assert tag in CANCELLED
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, row.last_error) == (JobStatus.DONE, 2, None)

    async def test_every_claimed_job_gets_a_lease_of_its_own_from_its_start(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        for _ in range(5):
            await enqueue_job(app, tenant, "test.nap", {"tag": _tag("n")})
        worker = Worker(db_of(app), lease_seconds=30, concurrency=2)
        claimed = await worker.claim()
        assert len(claimed) == 2  # the free slots, not a batch to run one after another
        for row in claimed:
            assert row.locked_until is not None
            assert abs((row.locked_until - utcnow()) - timedelta(seconds=30)) < timedelta(seconds=2)
            assert row.locked_by == worker.name


class TestTimeLimit:
    async def test_a_job_cut_off_by_its_time_limit_is_retried_then_dead(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        tag = _tag("overrun")
        clock = Clock()
        job_id = await enqueue_job(app, tenant, "test.overruns", {"tag": tag, "seconds": 30})
        worker = Worker(db_of(app), clock=clock)
        started = time.monotonic()
        await worker.run_pending()
        assert time.monotonic() - started < 5
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts) == (JobStatus.QUEUED, 1)
        assert row.last_error == (
            "TimeoutError: cut off after its time limit of 0.3 s (timeout_seconds of test.overruns)"
        )
        assert row.run_at > clock.now  # retried after the backoff
        clock.advance(3600)
        await worker.run_pending()
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, RUNS[tag]) == (JobStatus.DEAD, 2, 2)
        # What the cut-off handler wrote in its transaction was rolled back both times.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            listed = (await client.get("/api/Jobs", headers=tenant.headers)).json()
        assert [j["kind"] for j in listed["items"]] == ["test.overruns"]

    async def test_a_handlers_own_timeout_is_an_ordinary_failure(self, app: FastAPI, tenant: Tenant) -> None:
        job_id = await enqueue_job(app, tenant, "test.failing", {"tag": _tag("own"), "kind": "timeout_own"})
        await Worker(db_of(app)).run_pending()
        row = await read_job(app, tenant, job_id)
        assert row.status == JobStatus.QUEUED
        assert row.last_error == "TimeoutError: the SMTP server did not answer"

    def test_a_handler_written_for_a_transaction_is_refused_at_import(self) -> None:
        from deskpal.core.context import Ctx

        async def old_style(ctx: Ctx, p: Nap) -> None:
            return None

        with pytest.raises(
            TypeError, match=r"test.old_style: a handler takes \(job: JobContext, payload\), not Ctx"
        ):
            job("test.old_style", payload=Nap)(old_style)
        assert "test.old_style" not in REGISTRY

    def test_a_time_limit_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="timeout_seconds"):
            job("test.never", payload=Nap, timeout_seconds=0)


class TestFailures:
    async def test_a_permanent_failure_is_dead_at_once(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        tag = _tag("permanent")
        clock = Clock()
        job_id = await enqueue_job(app, tenant, "test.failing", {"tag": tag, "kind": "permanent"})
        worker = Worker(db_of(app), clock=clock)
        for _ in range(3):
            await worker.run_pending()
            clock.advance(7200)
        assert RUNS[tag] == 1
        got = (await client.get(f"/api/Jobs/{job_id}", headers=tenant.headers)).json()
        assert (got["status"], got["attempts"], got["maxAttempts"]) == ("dead", 1, 5)
        assert got["lastError"] == "deskpal.core.jobs.PermanentJobError: mailbox does not exist"
        assert got["finishedAt"] is not None

    async def test_retry_after_replaces_the_backoff(self, app: FastAPI, tenant: Tenant) -> None:
        tag, retry_after = _tag("later"), 120.0
        clock = Clock()
        payload = {"tag": tag, "kind": "retry_after", "retry_after": retry_after, "times": 1}
        job_id = await enqueue_job(app, tenant, "test.failing", payload)
        worker = Worker(db_of(app), clock=clock)
        await worker.run_pending()
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts) == (JobStatus.QUEUED, 1)
        assert row.run_at == clock.now + timedelta(seconds=retry_after)  # exactly: no jitter
        assert "rate limited" in (row.last_error or "")
        clock.advance(retry_after - 1)
        assert await worker.run_pending() == 0
        clock.advance(2)
        assert await worker.run_pending() == 1
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, RUNS[tag]) == (JobStatus.DONE, 2, 2)

    async def test_a_retryable_failure_on_the_last_attempt_is_dead(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        clock = Clock()
        payload = {"tag": _tag("last"), "kind": "retry_after", "retry_after": 1.0}
        job_id = await enqueue_job(app, tenant, "test.failing", payload, max_attempts=2)
        worker = Worker(db_of(app), clock=clock)
        for _ in range(3):
            await worker.run_pending()
            clock.advance(2)
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts) == (JobStatus.DEAD, 2)

    def test_retry_after_cannot_be_negative(self) -> None:
        with pytest.raises(ValueError, match="retry_after"):
            RetryableJobError("no", retry_after=-1)


ACTIVE: Counter[str] = Counter()
PEAK: Counter[str] = Counter()


class Overlap(BaseModel):
    group: str


@job("test.overlap", payload=Overlap)
async def overlap(job: JobContext, p: Overlap) -> None:
    ACTIVE[p.group] += 1
    PEAK[p.group] = max(PEAK[p.group], ACTIVE[p.group])
    try:
        await asyncio.sleep(0.2)
    finally:
        ACTIVE[p.group] -= 1


class TestConcurrency:
    async def test_a_worker_runs_up_to_its_concurrency_at_once(self, app: FastAPI, tenant: Tenant) -> None:
        group = _tag("overlap")
        for _ in range(7):
            await enqueue_job(app, tenant, "test.overlap", {"group": group})
        started = time.monotonic()
        assert await Worker(db_of(app), concurrency=3).run_pending() == 7
        assert PEAK[group] == 3
        assert time.monotonic() - started < 1.4  # three rounds of 0.2 s, not seven

    async def test_run_forever_keeps_its_slots_full(self, app: FastAPI, tenant: Tenant) -> None:
        group = _tag("forever")
        ids = [await enqueue_job(app, tenant, "test.overlap", {"group": group}) for _ in range(4)]
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(db_of(app), concurrency=2, poll_seconds=0.01).run_forever(stop))

        async def all_done() -> bool:
            return [(await read_job(app, tenant, i)).status for i in ids] == [JobStatus.DONE] * len(ids)

        await eventually(all_done)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        assert PEAK[group] == 2

    async def test_stopping_claims_no_more_and_lets_running_jobs_finish(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        group = _tag("stop")
        ids = [await enqueue_job(app, tenant, "test.overlap", {"group": group}) for _ in range(4)]
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(db_of(app), concurrency=2).run_pending(stop))

        async def two_running() -> bool:
            return ACTIVE[group] == 2

        await eventually(two_running)
        stop.set()
        assert await asyncio.wait_for(task, timeout=5) == 2
        statuses = sorted([(await read_job(app, tenant, i)).status for i in ids])
        assert statuses == [JobStatus.DONE, JobStatus.DONE, JobStatus.QUEUED, JobStatus.QUEUED]

    async def test_a_cancelled_worker_stops_its_jobs_and_their_leases_lapse(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        tag = _tag("cancelled")
        RELEASE[tag] = asyncio.Event()  # never set
        job_id = await enqueue_job(app, tenant, "test.held_first_attempt", {"tag": tag})
        task = asyncio.create_task(Worker(db_of(app), lease_seconds=30).run_forever(asyncio.Event()))

        async def started() -> bool:
            return SEEN_ATTEMPTS.get(tag) == [1]

        await eventually(started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
        assert tag in CANCELLED
        assert (await read_job(app, tenant, job_id)).status == JobStatus.RUNNING  # until its lease lapses
        clock = Clock()
        clock.advance(31)
        assert await Worker(db_of(app), clock=clock).run_pending() == 1
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts) == (JobStatus.DONE, 2)

    def test_concurrency_is_a_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert Settings().worker_concurrency == 4
        monkeypatch.setenv("DESKPAL_WORKER_CONCURRENCY", "9")
        assert Settings().worker_concurrency == 9
        monkeypatch.setenv("DESKPAL_WORKER_CONCURRENCY", "0")
        with pytest.raises(ValueError, match="worker_concurrency"):
            Settings()
