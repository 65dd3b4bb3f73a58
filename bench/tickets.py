"""Tickets benchmark: seed N tickets with M messages, then measure deskpal against a bare stack.

    .venv/bin/python bench/tickets.py [--db sqlite|postgresql|both] [--tickets 100000] [--messages 1000000]

For each database it seeds a fresh one (migrated; bulk inserts, the full-text index maintained by the
database as in production), starts deskpal and the bare FastAPI + SQLAlchemy app (bench/bare_app.py)
under uvicorn, and runs the load generator in a separate process (`tickets.py load ...`):
p50/p95 with one client, then requests/s with 32 concurrent clients, for GET one ticket, a filtered
sorted list page of 25, and 2-word searches; and deskpal's requests/s as a ratio of the bare app's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_ADMIN = os.environ.get("DESKPAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

WORDS = [
    "account",
    "password",
    "reset",
    "login",
    "invoice",
    "refund",
    "order",
    "delivery",
    "parcel",
    "shipping",
    "address",
    "payment",
    "card",
    "subscription",
    "cancel",
    "upgrade",
    "plan",
    "error",
    "crash",
    "screen",
    "app",
    "android",
    "iphone",
    "browser",
    "email",
    "phone",
    "call",
    "printer",
    "warranty",
    "repair",
    "return",
    "exchange",
    "discount",
    "coupon",
    "price",
    "charge",
    "bank",
    "transfer",
    "receipt",
    "tax",
    "update",
    "install",
    "version",
    "sync",
    "backup",
    "export",
    "import",
    "report",
    "dashboard",
    "settings",
    "profile",
    "security",
    "two",
    "factor",
    "code",
    "locked",
    "expired",
    "missing",
    "damaged",
    "late",
    "tracking",
    "number",
    "customer",
    "support",
    "agent",
    "manager",
    "urgent",
    "please",
    "thanks",
    "hello",
    "problem",
    "issue",
    "question",
    "help",
    "broken",
    "slow",
    "wrong",
    "double",
]
STATUSES = ["Open", "Pending", "Closed", "Waiting"]


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(12, 40))
    return " ".join(words).capitalize() + "."


# --- seeding ---------------------------------------------------------------------------------------


async def seed(url: str, n_tickets: int, n_messages: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from deskpal.core.db import Database, transaction
    from deskpal.customers.service import create_customer
    from deskpal.messages.models import TicketMessage
    from deskpal.tickets.models import Ticket

    db = Database(url)
    async with transaction(db) as s:
        new = await create_customer(
            s, "Bench", admin_email=f"bench-{uuid.uuid4().hex[:6]}@bench.test", admin_password=None
        )
    cid = new.customer.customer_id
    rng = random.Random(4)
    now = datetime.now(UTC)
    start = time.perf_counter()
    batch = 5000
    per_ticket = max(1, n_messages // n_tickets)
    for lo in range(0, n_tickets, batch):
        async with transaction(db, customer_id=cid) as s:
            tickets = []
            for i in range(lo, min(lo + batch, n_tickets)):
                created = now - timedelta(minutes=(n_tickets - i) * 5)
                tickets.append(
                    {
                        "token": str(uuid.uuid4()), "created_at": created, "status": rng.choice(STATUSES),
                        "subject": sentence(rng)[:80], "channel_type": "Email", "uid": f"u{i % 20000}@x.test",
                        "escalated": False, "is_spam": rng.random() < 0.05, "is_important": False,
                        "is_closed": False, "is_processed": True, "is_read": False,
                        "last_message_date": created, "custom_fields_data": {}, "customer_id": cid,
                    }
                )  # fmt: skip
            ids = (await s.execute(insert(Ticket).returning(Ticket.ticket_id), tickets)).scalars().all()
            messages = [
                {
                    "ticket_id": tid, "customer_id": cid, "created_at": now, "incoming": j % 2 == 0,
                    "sender_type": "EndUser" if j % 2 == 0 else "CustomerRep", "is_draft": False,
                    "is_internal_note": False, "text_body": sentence(rng) + " " + sentence(rng),
                    "custom_fields_data": {},
                }
                for tid in ids
                for j in range(per_ticket)
            ]  # fmt: skip
            await s.execute(insert(TicketMessage), messages)
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE")
        await conn.commit()
    await db.dispose()
    return {"customer_id": cid, "api_key": new.api_key, "seconds": time.perf_counter() - start}


# --- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [PY, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(100):
        try:
            httpx.get(base + "/docs", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


# --- load generator (runs in its own process) ------------------------------------------------------


async def load(
    base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1
                i += clients

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000,
    }  # fmt: skip


def run_load(
    base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(
            {"base": base, "paths": paths, "headers": headers, "clients": clients, "seconds": seconds}, fh
        )
    out = subprocess.run([PY, __file__, "load", fh.name], capture_output=True, text=True, check=True)
    os.unlink(fh.name)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


# --- one database ----------------------------------------------------------------------------------


def bench_db(kind: str, n_tickets: int, n_messages: int, seconds: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"deskpal-bench-{kind}-"))
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        name = f"deskpal_bench_{uuid.uuid4().hex[:8]}"

        async def create() -> None:
            engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
            await engine.dispose()

        asyncio.run(create())
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    from deskpal.migrate import upgrade

    upgrade(url)
    seeded = asyncio.run(seed(url, n_tickets, n_messages))
    print(
        f"[{kind}] seeded {n_tickets} tickets / {n_messages} messages in {seeded['seconds']:.0f}s", flush=True
    )
    env = {**os.environ, "DESKPAL_DATABASE_URL": url, "DESKPAL_DATA_DIR": str(workdir),
           "DESKPAL_SECRET_KEY": "bench-" + "k" * 40, "DESKPAL_RUN_WORKER": "false"}  # fmt: skip
    rng = random.Random(7)
    ids = [rng.randint(1, n_tickets) for _ in range(500)]
    searches = [f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(200)]
    auth = {"Authorization": f"Bearer {seeded['api_key']}"}
    workloads = {
        "get": [f"/api/Tickets/{i}" for i in ids],
        "list": [f"/api/Tickets?status={s}&sortBy=dateCreated&pageSize=25" for s in STATUSES],
        "search": [f"/api/Tickets?search={q.replace(' ', '+')}&pageSize=25" for q in searches],
    }
    bare_workloads = {
        "get": [f"/tickets/{i}" for i in ids],
        "list": [f"/tickets?customer_id={seeded['customer_id']}&status={s}" for s in STATUSES],
    }
    results: dict[str, Any] = {}
    deskpal, base = start_server("deskpal.asgi:app", env)
    try:
        for name, paths in workloads.items():
            results[name] = {
                "one": run_load(base, paths, auth, 1, seconds),
                "c32": run_load(base, paths, auth, 32, seconds),
            }
    finally:
        deskpal.terminate()
        deskpal.wait()
    bare, base = start_server("bench.bare_app:app", {**env, "PYTHONPATH": str(ROOT)})
    try:
        for name, paths in bare_workloads.items():
            results[name]["bare_c32"] = run_load(base, paths, {}, 32, seconds)
            results[name]["ratio"] = results[name]["c32"]["rps"] / results[name]["bare_c32"]["rps"]
    finally:
        bare.terminate()
        bare.wait()
    return {"seed_seconds": seeded["seconds"], "results": results}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "load":
        spec = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps(asyncio.run(load(**spec))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        out = bench_db(kind, args.tickets, args.messages, args.seconds)
        seeded = f"seeded in {out['seed_seconds']:.0f}s"
        print(f"\n== {kind}: {args.tickets} tickets, {args.messages} messages ({seeded})")
        print(f"{'workload':<8} {'p50 1c':>8} {'p95 1c':>8} {'rps 32c':>8} {'bare rps':>9} {'ratio':>6}")
        for name, r in out["results"].items():
            bare = r.get("bare_c32", {}).get("rps")
            bare_s = f"{bare:.0f}" if bare else "-"
            ratio_s = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            one = r["one"]
            print(
                f"{name:<8} {one['p50_ms']:>7.1f}ms {one['p95_ms']:>7.1f}ms {r['c32']['rps']:>8.0f} "
                f"{bare_s:>9} {ratio_s:>6}"
            )
        print(json.dumps(out, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
