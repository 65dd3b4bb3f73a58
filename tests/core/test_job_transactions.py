"""A handler's network step runs with no transaction open (both databases): it loads in one short
transaction, calls out with none open, and records in another; JobContext refuses the mixtures."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from deskpal.core.jobs import JobContext, JobStatus, job
from deskpal.core.worker import Worker
from tests.core.job_helpers import enqueue_job, open_transactions, read_job
from tests.support import Tenant, db_of

IN_CALL: dict[str, asyncio.Event] = {}
RELEASE: dict[str, asyncio.Event] = {}


class Step(BaseModel):
    tag: str


@job("test.three_steps", payload=Step)
async def three_steps(job: JobContext, p: Step) -> None:
    async with job.db(write=False) as ctx:  # load
        assert ctx.customer_id == job.customer_id
    async with job.call_out():  # the network step
        IN_CALL[p.tag].set()
        await RELEASE[p.tag].wait()
    async with job.db() as ctx:  # record
        await ctx.enqueue("system.noop", {"note": p.tag})


class Misuse(BaseModel):
    how: str


@job("test.misuse", payload=Misuse, max_attempts=1)
async def misuse(job: JobContext, p: Misuse) -> None:
    if p.how == "call_out_in_db":
        async with job.db(), job.call_out():
            pass
    elif p.how == "db_in_db":
        async with job.db(), job.db():
            pass
    else:
        async with job.call_out(), job.db():
            pass


class TestNetworkStep:
    async def test_no_transaction_is_open_while_a_handler_calls_out(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        tag = f"step-{uuid.uuid4()}"
        IN_CALL[tag], RELEASE[tag] = asyncio.Event(), asyncio.Event()
        job_id = await enqueue_job(app, tenant, "test.three_steps", {"tag": tag})
        running = asyncio.create_task(Worker(db_of(app), concurrency=1).run_pending())
        await asyncio.wait_for(IN_CALL[tag].wait(), timeout=10)
        assert await open_transactions(app) == []
        # A request that writes goes through meanwhile (on SQLite it would wait for the write lock).
        created = await asyncio.wait_for(
            client.post("/api/Topics", json={"name": tag}, headers=tenant.headers), timeout=5
        )
        assert created.status_code in (200, 201), created.text
        RELEASE[tag].set()
        assert await running == 2  # the job, and the one it recorded
        assert (await read_job(app, tenant, job_id)).status == JobStatus.DONE
        listed = (await client.get("/api/Jobs", headers=tenant.headers)).json()["items"]
        assert {(j["kind"], j["payload"].get("note")) for j in listed} >= {("system.noop", tag)}

    @pytest.mark.parametrize(
        ("how", "message"),
        [
            ("call_out_in_db", "a network call inside a transaction"),
            ("db_in_db", "a transaction inside another one"),
            ("db_in_call_out", "a transaction inside call_out()"),
        ],
    )
    async def test_mixing_a_transaction_and_a_call_out_is_refused(
        self, app: FastAPI, tenant: Tenant, how: str, message: str
    ) -> None:
        job_id = await enqueue_job(app, tenant, "test.misuse", {"how": how})
        await Worker(db_of(app)).run_pending()
        row = await read_job(app, tenant, job_id)
        assert row.status == JobStatus.DEAD
        assert row.last_error == f"RuntimeError: job test.misuse: {message}"
