"""Enqueue keys on both databases: an idempotency key stores a job once (also under concurrent
enqueues); an ordering key runs one key's jobs one at a time in order, different keys in parallel."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import func, select

from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.core.jobs import JobContext, JobRow, JobStatus, job
from deskpal.core.worker import Worker
from tests.core.job_helpers import Clock, enqueue_job, read_job
from tests.support import Tenant, db_of


async def _count(app: FastAPI, tenant: Tenant) -> int:
    async with transaction(db_of(app), customer_id=tenant.customer_id, write=False) as db:
        return int((await db.scalar(select(func.count()).select_from(JobRow))) or 0)


class TestIdempotencyKey:
    async def test_a_second_enqueue_with_the_key_returns_the_first_job(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        key = f"delivery-{uuid.uuid4()}"
        first = await enqueue_job(app, tenant, "system.noop", {"note": "a"}, idempotency_key=key)
        again = await enqueue_job(app, tenant, "system.noop", {"note": "b"}, idempotency_key=key)
        assert again == first
        listed = (await client.get("/api/Jobs", headers=tenant.headers)).json()
        assert [(j["jobID"], j["payload"]) for j in listed["items"]] == [(first, {"note": "a"})]
        # Finished jobs still count: a delivery retried after its job ran is not run again.
        await Worker(db_of(app)).run_pending()
        assert await enqueue_job(app, tenant, "system.noop", {}, idempotency_key=key) == first
        assert await _count(app, tenant) == 1

    async def test_the_key_is_per_customer_and_kind_and_jobs_without_one_never_collide(
        self, app: FastAPI, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        key = "same-key"
        mine = await enqueue_job(app, tenant, "system.noop", {}, idempotency_key=key)
        theirs = await enqueue_job(app, other_tenant, "system.noop", {}, idempotency_key=key)
        other_kind = await enqueue_job(
            app, tenant, "test.ordered", {"key": "x", "seq": 0}, idempotency_key=key
        )
        plain = [await enqueue_job(app, tenant, "system.noop", {}) for _ in range(2)]
        assert len({mine, theirs, other_kind, *plain}) == 5
        assert (await read_job(app, other_tenant, theirs)).customer_id == other_tenant.customer_id

    async def test_twice_in_one_transaction_is_one_job(self, app: FastAPI, tenant: Tenant) -> None:
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            ctx = Ctx.system(db, tenant.customer_id)
            a = await ctx.enqueue("system.noop", {}, idempotency_key="k")
            b = await ctx.enqueue("system.noop", {}, idempotency_key="k")
            assert a is b
        assert await _count(app, tenant) == 1

    @pytest.mark.parametrize("first_commits", [True, False])
    async def test_concurrent_enqueues_store_one_job(
        self, app: FastAPI, tenant: Tenant, first_commits: bool
    ) -> None:
        """The second waits for the first transaction (PostgreSQL: on the unique index; SQLite: on the
        write lock), then returns its job, or writes its own if the first rolled back."""
        key = f"race-{uuid.uuid4()}"
        db = db_of(app)
        first_written = asyncio.Event()
        finish_first = asyncio.Event()

        async def first() -> int:
            async with transaction(db, customer_id=tenant.customer_id) as session:
                row = await Ctx.system(session, tenant.customer_id).enqueue(
                    "system.noop", {}, idempotency_key=key
                )
                first_written.set()
                await finish_first.wait()
                if not first_commits:
                    raise RuntimeError("the first request fails")
                return row.job_id

        async def second() -> int:
            await first_written.wait()
            return await enqueue_job(app, tenant, "system.noop", {"note": "second"}, idempotency_key=key)

        one = asyncio.create_task(first())
        two = asyncio.create_task(second())
        await first_written.wait()
        await asyncio.sleep(0.2)
        assert not two.done()  # held until the first transaction ends
        finish_first.set()
        if first_commits:
            assert await two == await one
        else:
            with pytest.raises(RuntimeError):
                await one
            survivor = await read_job(app, tenant, await two)
            assert survivor.payload == {"note": "second"}
        assert await _count(app, tenant) == 1

    @pytest.mark.parametrize("field", ["idempotency_key", "ordering_key"])
    async def test_keys_are_1_to_200_characters(self, app: FastAPI, tenant: Tenant, field: str) -> None:
        for bad in ("", "k" * 201):
            with pytest.raises(ValueError, match=field):
                await enqueue_job(app, tenant, "system.noop", {}, **{field: bad})
        await enqueue_job(app, tenant, "system.noop", {}, **{field: "k" * 200})


class Ordered(BaseModel):
    key: str
    seq: int
    fail: bool = False


LOG: dict[str, list[tuple[str, int]]] = {}
RUNNING: dict[str, int] = {}
BOTH_RUNNING: dict[str, asyncio.Event] = {}


@job("test.ordered", payload=Ordered, max_attempts=2, backoff_seconds=60)
async def ordered(job: JobContext, p: Ordered) -> None:
    log = LOG.setdefault(p.key, [])
    log.append(("start", p.seq))
    await asyncio.sleep(0.01 * (5 - p.seq % 5))  # earlier ones are slower: a race would reorder them
    log.append(("end", p.seq))
    if p.fail:
        raise RuntimeError("planned")


@job("test.rendezvous", payload=Ordered)
async def rendezvous(job: JobContext, p: Ordered) -> None:
    """Succeeds only if another job of the group runs at the same time."""
    RUNNING[p.key] = RUNNING.get(p.key, 0) + 1
    if RUNNING[p.key] == 2:
        BOTH_RUNNING[p.key].set()
    await asyncio.wait_for(BOTH_RUNNING[p.key].wait(), timeout=5)


class TestOrderingKey:
    async def test_one_keys_jobs_run_one_at_a_time_in_enqueue_order(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        key = f"ticket:{uuid.uuid4()}"
        for seq in range(8):
            await enqueue_job(app, tenant, "test.ordered", {"key": key, "seq": seq}, ordering_key=key)
        workers = [Worker(db_of(app), concurrency=4) for _ in range(2)]
        assert sum(await asyncio.gather(*(w.run_pending() for w in workers))) == 8
        expected = [(step, seq) for seq in range(8) for step in ("start", "end")]
        assert LOG[key] == expected

    async def test_different_keys_and_customers_run_in_parallel(
        self, app: FastAPI, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        for pair in (("a", "b"), ("same", "same")):
            group = f"rv-{uuid.uuid4()}"
            BOTH_RUNNING[group] = asyncio.Event()
            owners = (tenant, tenant) if pair == ("a", "b") else (tenant, other_tenant)
            ids = [
                await enqueue_job(app, owner, "test.rendezvous", {"key": group, "seq": i}, ordering_key=k)
                for i, (owner, k) in enumerate(zip(owners, pair, strict=True))
            ]
            assert await Worker(db_of(app), concurrency=2).run_pending() == 2
            rows = [await read_job(app, owner, i) for owner, i in zip(owners, ids, strict=True)]
            assert [r.status for r in rows] == [JobStatus.DONE, JobStatus.DONE], [r.last_error for r in rows]

    async def test_a_failing_job_holds_back_its_key_until_it_is_dead(
        self, app: FastAPI, tenant: Tenant
    ) -> None:
        key, other = f"held-{uuid.uuid4()}", f"free-{uuid.uuid4()}"
        clock = Clock()
        failing = await enqueue_job(
            app, tenant, "test.ordered", {"key": key, "seq": 0, "fail": True}, ordering_key=key
        )
        behind = await enqueue_job(app, tenant, "test.ordered", {"key": key, "seq": 1}, ordering_key=key)
        free = await enqueue_job(app, tenant, "test.ordered", {"key": other, "seq": 0}, ordering_key=other)
        worker = Worker(db_of(app), clock=clock)
        assert await worker.run_pending() == 2  # the failing one and the other key's
        assert (await read_job(app, tenant, failing)).status == JobStatus.QUEUED  # waiting for its retry
        assert (await read_job(app, tenant, behind)).status == JobStatus.QUEUED  # held back meanwhile
        assert (await read_job(app, tenant, free)).status == JobStatus.DONE
        clock.advance(3600)
        assert await worker.run_pending() == 2  # the retry fails for good, then the next one runs
        assert (await read_job(app, tenant, failing)).status == JobStatus.DEAD
        assert (await read_job(app, tenant, behind)).status == JobStatus.DONE
        assert LOG[key] == [("start", 0), ("end", 0), ("start", 0), ("end", 0), ("start", 1), ("end", 1)]

    async def test_the_claim_reads_indexes_only(self, app: FastAPI, tenant: Tenant) -> None:
        """Index-friendly on both planners: the due jobs from ix_job_due, the "earlier job of this key
        still active?" probe from the partial ix_job_ordering (PostgreSQL with sequential scans off, as
        a small table would otherwise be scanned)."""
        from sqlalchemy import text

        from deskpal.core.worker import claim_statements

        db = db_of(app)
        await enqueue_job(app, tenant, "system.noop", {}, ordering_key="k")
        for stmt in claim_statements():
            async with db.engine.connect() as conn:
                bound = stmt.params(now=Clock()(), limit=4)
                compiled = bound.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
                if db.dialect == "postgresql":
                    await conn.execute(text("SET enable_seqscan = off"))
                    rows = await conn.execute(text(f"EXPLAIN {compiled}"))
                    plan = "\n".join(str(r[0]) for r in rows)
                else:
                    rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
                    plan = "\n".join(str(r[3]) for r in rows)
            assert "ix_job_ordering" in plan, plan
            assert "ix_job_due" in plan, plan
            assert "Seq Scan" not in plan and "SCAN job" not in plan, plan
            assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan  # read in index order
