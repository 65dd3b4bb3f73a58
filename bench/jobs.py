"""Job queue throughput, on SQLite and PostgreSQL.

    .venv/bin/python bench/jobs.py [--db sqlite|postgresql|both] [--jobs 2000] [--concurrency 4] [--repeat 1]

For each database: a fresh, migrated database and one customer; then, in this process:
  - enqueue:      --jobs system.noop jobs written in one transaction (jobs/s written)
  - enqueue+key:  the same with an idempotency key each
  - noop:         one worker runs them (jobs/s run, claim to recorded outcome; and the worker
                  process's CPU per job)
  - noop, 10 keys: the same with ordering keys spread over 10 keys
  - call-out:     --jobs / 10 jobs that read, wait 20 ms with no transaction open (a network call),
                  and write (jobs/s run)
Figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from deskpal.core.db import Database, transaction  # noqa: E402
from deskpal.core.jobs import JobContext, job  # noqa: E402
from deskpal.core.worker import Worker  # noqa: E402

PG_ADMIN = os.environ.get("DESKPAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NETWORK_SECONDS = 0.02
CPU_PER_JOB: list[float] = []  # µs of this process's CPU per job run, per case


class CallOut(BaseModel):
    n: int


@job("bench.call_out", payload=CallOut)
async def call_out(job: JobContext, p: CallOut) -> None:
    async with job.db(write=False) as ctx:
        assert ctx.customer_id == job.customer_id
    async with job.call_out():
        await asyncio.sleep(NETWORK_SECONDS)
    async with job.db():
        pass


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


async def _enqueue(
    db: Database, customer_id: int, kind: str, payloads: list[dict[str, object]], **keys: object
) -> float:
    from deskpal.core.context import Ctx

    started = time.perf_counter()
    async with transaction(db, customer_id=customer_id) as session:
        ctx = Ctx.system(session, customer_id)
        for i, payload in enumerate(payloads):
            extra = {k: f"{v}-{i}" if k == "idempotency_key" else f"{v}-{i % 10}" for k, v in keys.items()}
            await ctx.enqueue(kind, payload, **extra)  # type: ignore[arg-type]
    return len(payloads) / (time.perf_counter() - started)


async def _run(db: Database, concurrency: int) -> tuple[int, float]:
    started, cpu = time.perf_counter(), time.process_time()
    ran = await Worker(db, concurrency=concurrency).run_pending()
    CPU_PER_JOB.append((time.process_time() - cpu) / ran * 1e6)
    return ran, ran / (time.perf_counter() - started)


async def bench(url: str, jobs: int, concurrency: int) -> dict[str, float]:
    from deskpal.customers.service import create_customer
    from deskpal.job_types import register_all
    from deskpal.migrate import upgrade_async

    register_all()
    await upgrade_async(url)
    db = Database(url)
    try:
        async with transaction(db) as session:
            customer = (
                await create_customer(session, "Bench", admin_email="b@b.test", admin_password=None)
            ).customer
        cid = customer.customer_id
        noop = [{"note": str(i)} for i in range(jobs)]
        out: dict[str, float] = {}
        out["enqueue /s"] = await _enqueue(db, cid, "system.noop", noop)
        out["noop run /s"] = (await _run(db, concurrency))[1]
        out["noop run, worker CPU µs/job"] = CPU_PER_JOB[-1]
        out["enqueue+key /s"] = await _enqueue(db, cid, "system.noop", noop, idempotency_key="k")
        out["noop (idempotency keys) run /s"] = (await _run(db, concurrency))[1]
        await _enqueue(db, cid, "system.noop", noop, ordering_key="ticket")
        out["noop, 10 ordering keys, run /s"] = (await _run(db, concurrency))[1]
        await _enqueue(db, cid, "bench.call_out", [{"n": i} for i in range(jobs // 10)])
        out[f"call-out {NETWORK_SECONDS * 1000:g} ms run /s"] = (await _run(db, concurrency))[1]
        return out
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="run each database this often; print the best")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        runs = [await _once(kind, args.jobs, args.concurrency) for _ in range(args.repeat)]
        print(f"{kind} ({args.jobs} jobs, concurrency {args.concurrency}, best of {args.repeat})")
        for label in runs[0]:
            values = [r[label] for r in runs]
            best = min(values) if "µs" in label else max(values)  # a shared machine only slows runs down
            print(f"  {label:34s} {best:8.0f}")


async def _once(kind: str, jobs: int, concurrency: int) -> dict[str, float]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return await bench(f"sqlite+aiosqlite:///{tmp}/bench.db", jobs, concurrency)
    name = f"deskpal_bench_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        return await bench(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", jobs, concurrency)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
