"""Durable jobs on both databases: same-transaction enqueue, retries with backoff, dead jobs, leases."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.db import transaction, utcnow
from deskpal.core.jobs import JobContext, JobRow, JobStatus, job
from deskpal.core.worker import Outcome, Worker
from tests.core.job_helpers import Clock, enqueue_job, read_job
from tests.support import Tenant, db_of, run_jobs_until_idle

RUNS: Counter[str] = Counter()


class Tagged(BaseModel):
    tag: str
    fail_times: int = 0


@job("test.flaky", payload=Tagged, max_attempts=3, backoff_seconds=10)
async def flaky(job: JobContext, p: Tagged) -> None:
    RUNS[p.tag] += 1
    if RUNS[p.tag] <= p.fail_times:
        raise RuntimeError(f"planned failure {RUNS[p.tag]}")


@job("test.slow", payload=Tagged, max_attempts=5)
async def slow(job: JobContext, p: Tagged) -> None:
    RUNS[p.tag] += 1
    await asyncio.sleep(0.01)


class TestEnqueue:
    async def test_job_written_in_a_rolled_back_transaction_never_exists(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        with pytest.raises(RuntimeError):
            async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
                await Ctx.system(db, tenant.customer_id).enqueue("system.noop", {"note": "lost"})
                raise RuntimeError("the change fails")
        async with transaction(db_of(app), customer_id=tenant.customer_id, write=False) as db:
            assert (await db.scalars(select(JobRow))).all() == []

    async def test_unknown_kind_is_refused(self, app: FastAPI, tenant: Tenant) -> None:
        with pytest.raises(LookupError):
            await enqueue_job(app, tenant, "no.such.kind", {})


class TestWorker:
    async def test_noop_job_runs_to_done(self, app: FastAPI, tenant: Tenant) -> None:
        job_id = await enqueue_job(app, tenant, "system.noop", {"note": "hello"})
        assert await run_jobs_until_idle(app) == 1
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, row.last_error) == (JobStatus.DONE, 1, None)
        assert row.finished_at is not None
        assert row.locked_by is None

    async def test_failure_is_retried_after_a_backoff(self, app: FastAPI, tenant: Tenant) -> None:
        clock = Clock()
        worker = Worker(db_of(app), clock=clock)
        tag = f"retry-{uuid.uuid4()}"
        job_id = await enqueue_job(app, tenant, "test.flaky", {"tag": tag, "fail_times": 1})
        await worker.run_pending()
        row = await read_job(app, tenant, job_id)
        assert row.status == JobStatus.QUEUED
        assert row.attempts == 1
        assert "planned failure 1" in (row.last_error or "")
        assert row.run_at - clock.now >= timedelta(seconds=8)  # 10 s base, ±20 % jitter
        assert await worker.run_pending() == 0  # not due yet
        clock.advance(13)
        assert await worker.run_pending() == 1
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, row.last_error) == (JobStatus.DONE, 2, None)

    async def test_job_that_keeps_failing_ends_dead_and_admins_can_retry_it(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        import httpx

        clock = Clock()
        worker = Worker(db_of(app), clock=clock)
        tag = f"dead-{uuid.uuid4()}"
        job_id = await enqueue_job(app, tenant, "test.flaky", {"tag": tag, "fail_times": 99})
        for _ in range(5):
            await worker.run_pending()
            clock.advance(3600)
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts) == (JobStatus.DEAD, 3)
        assert RUNS[tag] == 3
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            listed = await client.get("/api/Jobs?status=dead", headers=tenant.headers)
            assert [j["jobID"] for j in listed.json()["items"]] == [job_id]
            assert listed.json()["items"][0]["lastError"]
            retried = await client.post(f"/api/Jobs/{job_id}/retry", headers=tenant.headers)
            assert retried.status_code == 200
            assert retried.json()["status"] == "queued"

    async def test_unknown_kind_in_the_table_fails_without_stopping_the_worker(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            row = JobRow(kind="gone.away", payload={}, max_attempts=1, run_at=utcnow())
            db.add(row)
        ok = await enqueue_job(app, tenant, "system.noop", {})
        await run_jobs_until_idle(app)
        assert (await read_job(app, tenant, row.job_id)).status == JobStatus.DEAD
        assert (await read_job(app, tenant, ok)).status == JobStatus.DONE

    async def test_handler_runs_bound_to_the_jobs_tenant(
        self, app: FastAPI, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        a = await enqueue_job(app, tenant, "system.noop", {})
        b = await enqueue_job(app, other_tenant, "system.noop", {})
        await run_jobs_until_idle(app)
        assert (await read_job(app, tenant, a)).status == JobStatus.DONE
        assert (await read_job(app, other_tenant, b)).status == JobStatus.DONE


class TestConcurrency:
    async def test_concurrent_workers_run_each_job_exactly_once(self, app: FastAPI, tenant: Tenant) -> None:
        prefix = f"once-{uuid.uuid4()}-"
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            ctx = Ctx.system(db, tenant.customer_id)
            for i in range(60):
                await ctx.enqueue("test.slow", {"tag": prefix + str(i)})
        workers = [Worker(db_of(app), concurrency=5) for _ in range(4)]
        ran = await asyncio.gather(*(w.run_pending() for w in workers))
        assert sum(ran) == 60
        assert sorted(v for k, v in RUNS.items() if k.startswith(prefix)) == [1] * 60
        if db_of(app).dialect == "postgresql":
            assert sum(1 for n in ran if n) > 1, "SKIP LOCKED should let several workers claim at once"

    async def test_job_of_a_dead_worker_is_reclaimed_after_its_lease(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        clock = Clock()
        crashed = Worker(db_of(app), lease_seconds=30, clock=clock)
        job_id = await enqueue_job(app, tenant, "system.noop", {})
        claimed = await crashed.claim()  # ...and the process dies before running it
        assert [r.job_id for r in claimed] == [job_id]
        rescuer = Worker(db_of(app), lease_seconds=30, clock=clock)
        assert await rescuer.run_pending() == 0  # the lease still holds
        clock.advance(31)
        assert await rescuer.run_pending() == 1
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts) == (JobStatus.DONE, 2)
        # The crashed worker's late outcome does not overwrite the rescuer's.
        assert await crashed.finish([claimed[0]], None, [Outcome("late failure")]) == 0
        assert (await read_job(app, tenant, job_id)).status == JobStatus.DONE

    async def test_run_forever_stops_when_asked(self, app: FastAPI, tenant: Tenant) -> None:
        job_id = await enqueue_job(app, tenant, "system.noop", {})
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(db_of(app), poll_seconds=0.01).run_forever(stop))
        for _ in range(200):
            if (await read_job(app, tenant, job_id)).status == JobStatus.DONE:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        assert (await read_job(app, tenant, job_id)).status == JobStatus.DONE


class TestHousekeeping:
    async def test_old_rate_limit_windows_are_swept(self, app: FastAPI) -> None:
        import time

        from deskpal.core import ratelimit

        await ratelimit.hit(
            db_of(app), "login:addr:old", limit=5, window_seconds=60, now=time.time() - 3 * 86400
        )
        await ratelimit.hit(db_of(app), "login:addr:new", limit=5, window_seconds=60)
        await Worker(db_of(app)).housekeeping()
        assert await ratelimit.count(db_of(app), "login:addr:new", window_seconds=60) == 1
        old = await ratelimit.count(
            db_of(app), "login:addr:old", window_seconds=60, now=time.time() - 3 * 86400
        )
        assert old == 0


def test_every_declared_job_type_is_registered_for_workers() -> None:
    """`deskpal worker` and `serve` register every @job in the source, not just the ones they import."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import deskpal

    declared = {
        m.group(1)
        for path in Path(deskpal.__file__).parent.rglob("*.py")
        for m in re.finditer(r'@job\(\s*"([^"]+)"', path.read_text())
    }
    code = (
        "from deskpal.job_types import register_all; register_all();"
        "from sqlalchemy.orm import configure_mappers; configure_mappers();"
        "from deskpal.core.jobs import REGISTRY; print(' '.join(sorted(REGISTRY)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert declared <= set(out.stdout.split()), declared - set(out.stdout.split())
    assert "system.noop" in declared
