"""Batch job kinds on both databases: due jobs of one customer run together in one call, each
keeping its own outcome, lease and attempts; customers never share a call."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from deskpal.core.jobs import JobBatch, JobStatus, PermanentJobError, RetryableJobError, batch_job
from deskpal.core.worker import Worker
from tests.core.job_helpers import Clock, enqueue_job, read_job
from tests.support import Tenant, db_of

CALLS: list[list[tuple[int, str]]] = []  # per call: (customer, tag) of each job


class Step(BaseModel):
    tag: str
    outcome: str = "ok"  # ok | retry | dead | raise | slow


@batch_job("test.batch", payload=Step, max_batch=3, max_attempts=4, timeout_seconds=0.5)
async def run_steps(batch: JobBatch) -> None:
    CALLS.append([(batch.customer_id, item.payload.tag) for item in batch.items])
    async with batch.db() as ctx:  # one transaction for the call, bound to its one customer
        assert ctx.actor.customer_id == batch.customer_id
    for item in batch.items:
        if item.payload.outcome == "retry":
            item.fail(RetryableJobError("try again", retry_after=60))
        elif item.payload.outcome == "dead":
            item.fail(PermanentJobError("no such mailbox"))
    if any(item.payload.outcome == "raise" for item in batch.items):
        raise RuntimeError("the server went away")
    if any(item.payload.outcome == "slow" for item in batch.items):
        await asyncio.sleep(30)


def _calls(run: str) -> list[list[str]]:
    return [
        [tag for _, tag in call if tag.startswith(run)]
        for call in CALLS
        if any(t.startswith(run) for _, t in call)
    ]


async def test_due_jobs_run_together_up_to_the_batch_size(app: FastAPI, tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [await enqueue_job(app, tenant, "test.batch", {"tag": f"{run}-{i}"}) for i in range(7)]
    worker = Worker(db_of(app), concurrency=1, clock=Clock())
    assert await worker.run_pending() == 7
    # One slot: the first claim takes one job and tops its batch up to three; oldest first.
    assert _calls(run) == [
        [f"{run}-0", f"{run}-1", f"{run}-2"],
        [f"{run}-3", f"{run}-4", f"{run}-5"],
        [f"{run}-6"],
    ]
    for job_id in ids:
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.attempts, row.locked_by) == (JobStatus.DONE, 1, None)


async def test_each_job_keeps_its_own_outcome(app: FastAPI, tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    ok, retry, dead = [
        await enqueue_job(app, tenant, "test.batch", {"tag": f"{run}-{o}", "outcome": o})
        for o in ("ok", "retry", "dead")
    ]
    clock = Clock()
    await Worker(db_of(app), clock=clock).run_pending()
    assert len(_calls(run)) == 1
    assert (await read_job(app, tenant, ok)).status == JobStatus.DONE
    retried = await read_job(app, tenant, retry)
    assert (retried.status, retried.attempts, retried.last_error) == (
        JobStatus.QUEUED,
        1,
        "deskpal.core.jobs.RetryableJobError: try again",
    )
    assert (retried.run_at - clock.now).total_seconds() == pytest.approx(60, abs=1)
    failed = await read_job(app, tenant, dead)
    assert (failed.status, failed.last_error) == (
        JobStatus.DEAD,
        "deskpal.core.jobs.PermanentJobError: no such mailbox",
    )


async def test_an_exception_out_of_the_call_fails_the_jobs_not_settled(app: FastAPI, tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    dead, raising, plain = [
        await enqueue_job(app, tenant, "test.batch", {"tag": f"{run}-{o}", "outcome": o})
        for o in ("dead", "raise", "ok")
    ]
    await Worker(db_of(app), clock=Clock()).run_pending()
    assert (await read_job(app, tenant, dead)).status == JobStatus.DEAD  # its own failure stands
    for job_id in (raising, plain):
        row = await read_job(app, tenant, job_id)
        assert (row.status, row.last_error) == (JobStatus.QUEUED, "RuntimeError: the server went away")


async def test_the_time_limit_bounds_the_whole_call(app: FastAPI, tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [
        await enqueue_job(app, tenant, "test.batch", {"tag": f"{run}-{o}", "outcome": o})
        for o in ("ok", "slow")
    ]
    await Worker(db_of(app), clock=Clock()).run_pending()
    for job_id in ids:
        row = await read_job(app, tenant, job_id)
        assert row.status == JobStatus.QUEUED
        assert (
            row.last_error
            == "TimeoutError: cut off after its time limit of 0.5 s (timeout_seconds of test.batch)"
        )


async def test_a_payload_that_does_not_validate_fails_alone(app: FastAPI, tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    good = await enqueue_job(app, tenant, "test.batch", {"tag": f"{run}-good"})
    bad = await enqueue_job(app, tenant, "test.batch", {"tag": f"{run}-bad"})
    from sqlalchemy import update

    from deskpal.core.db import transaction
    from deskpal.core.jobs import JobRow

    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:  # written by an older release
        await db.execute(update(JobRow).where(JobRow.job_id == bad).values(payload={"tag": 5}))
    await Worker(db_of(app), clock=Clock()).run_pending()
    assert (await read_job(app, tenant, good)).status == JobStatus.DONE
    row = await read_job(app, tenant, bad)
    assert row.status == JobStatus.QUEUED and "validation error" in (row.last_error or "")


async def test_customers_never_share_a_call(app: FastAPI, tenant: Tenant, other_tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    for i in range(4):
        await enqueue_job(app, tenant if i % 2 else other_tenant, "test.batch", {"tag": f"{run}-{i}"})
    await Worker(db_of(app), clock=Clock()).run_pending()
    calls = [call for call in CALLS if any(t.startswith(run) for _, t in call)]
    assert sorted(tag for call in calls for _, tag in call) == [f"{run}-{i}" for i in range(4)]
    assert all(len({customer for customer, _ in call}) == 1 for call in calls)
    assert len(calls) == 2


def test_a_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        batch_job("test.never_batch", payload=Step, max_batch=0)
