"""Message creation and attachment throughput, on SQLite and PostgreSQL.

    .venv/bin/python bench/messages.py [--db sqlite|postgresql|both] [--seconds 10] [--clients 16]

For each database: a fresh, migrated database and one customer; `deskpal serve` (worker off, so
only request handling is measured) in its own process; a load generator in another process that
POSTs for `--seconds`:
  - new:   POST /api/TicketMessages/create-new without ticketID (a new ticket and end user each time)
  - reply: POST /api/TicketMessages/create-new into one existing ticket
and prints creations/s and latency; then uploads and downloads a 20 MB attachment a few times and
prints MB/s. Figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from wrk_lua import WRK_DONE  # bench/ is the script's own directory

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_ADMIN = os.environ.get("DESKPAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
ATTACHMENT_MB = 20


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


async def _tenant(url: str) -> dict[str, Any]:
    from deskpal.channels.models import ChannelType
    from deskpal.channels.schemas import ChannelCreateDTO
    from deskpal.channels.service import create_channel
    from deskpal.core.context import Ctx
    from deskpal.core.db import Database, transaction
    from deskpal.customers.service import create_customer

    db = Database(url)
    try:
        async with transaction(db) as session:
            new = await create_customer(session, "Bench", admin_email="bench@bench.test", admin_password=None)
            ctx = Ctx.system(session, new.customer.customer_id)
            channel, _ = await create_channel(
                ctx, ChannelCreateDTO(name="mail", channel_type=ChannelType.EMAIL)
            )
            return {"api_key": new.api_key, "channel_id": channel.channel_id}
    finally:
        await db.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(channel_id: int, i: int, ticket_id: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "Email",
        "channelID": channel_id,
        "incoming": True,
        "fromAddress": f"customer{i % 5000}@example.test",
        "fromName": f"Customer {i % 5000}",
        "subject": f"Order {100000 + i} has not arrived",
        "textBody": "Hello, my order was due last week and the tracking page has not changed since. "
        "Could you tell me where the parcel is and whether I can still get a refund? Thanks.",
    }
    if ticket_id is not None:
        body["ticketID"] = ticket_id
    return body


async def _load(
    base: str, key: str, channel_id: int, ticket_id: int | None, clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(k: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = await client.post(
                "/api/TicketMessages/create-new", json=_body(channel_id, i, ticket_id), headers=headers
            )
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                errors += 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(k, client) for k in range(clients)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed,
        "errors": errors,
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
    }


WRK_SCRIPT = (
    """
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Authorization"] = os.getenv("BENCH_AUTH"), ["Content-Type"] = "application/json"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/api/TicketMessages/create-new", headers, bodies[(i % #bodies) + 1])
end
"""
    + WRK_DONE
)


def _run_load(
    base: str, key: str, channel_id: int, ticket_id: int | None, clients: int, seconds: float
) -> dict[str, Any]:
    """In another process: wrk when installed (httpx costs the shared cores more CPU than the
    server it would measure), else the httpx client below."""
    if shutil.which("wrk"):
        with tempfile.TemporaryDirectory() as tmp:
            bodies = Path(tmp) / "bodies"
            bodies.write_text(
                "".join(json.dumps(_body(channel_id, i, ticket_id)) + "\n" for i in range(5000))
            )
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT)
            env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_AUTH": f"Bearer {key}"}
            duration = f"-d{max(1, round(seconds))}s"
            cmd = ["wrk", "-t1", f"-c{clients}", duration, "--timeout", "60s", "-s", str(script), base]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            result["per_second"] = result["requests"] / result["seconds"]
            result["generator"] = "wrk"
            return result
    args = json.dumps([base, key, channel_id, ticket_id, clients, seconds])
    out = subprocess.run([PY, __file__, "load", args], capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout)
    result["generator"] = "httpx"
    return result


def _attachments(base: str, key: str, channel_id: int, rounds: int = 3) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"}
    payload = os.urandom(ATTACHMENT_MB * 1024 * 1024)
    with httpx.Client(base_url=base, timeout=120, headers=headers) as client:
        msg = client.post("/api/TicketMessages/create-new", json=_body(channel_id, 0, None)).json()
        up_seconds = down_seconds = 0.0
        for n in range(rounds):
            t0 = time.perf_counter()
            r = client.post(
                f"/api/TicketMessages/{msg['messageID']}/attachments",
                files={"file": (f"bench-{n}.bin", payload, "application/octet-stream")},
            )
            up_seconds += time.perf_counter() - t0
            r.raise_for_status()
            token = r.json()["accessToken"]
            t0 = time.perf_counter()
            got = 0
            with client.stream("GET", f"/api/File/{token}") as resp:
                for chunk in resp.iter_bytes():
                    got += len(chunk)
            down_seconds += time.perf_counter() - t0
            assert got == len(payload), (got, len(payload))
    return {
        "upload_mb_s": rounds * ATTACHMENT_MB / up_seconds,
        "download_mb_s": rounds * ATTACHMENT_MB / down_seconds,
    }


def bench(kind: str, seconds: float, clients: int, workers: int) -> dict[str, Any]:
    from deskpal.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        pg_name = None
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        else:
            pg_name = f"deskpal_bench_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg_admin(f'CREATE DATABASE "{pg_name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
        try:
            upgrade(url)
            tenant = asyncio.run(_tenant(url))
            env = {
                **os.environ,
                "DESKPAL_DATABASE_URL": url,
                "DESKPAL_DATA_DIR": tmp,
                "DESKPAL_SECRET_KEY": "bench-" + "k" * 40,
                "DESKPAL_RUN_WORKER": "false",
            }
            port = _free_port()
            server = subprocess.Popen(
                [
                    *(PY, "-m", "deskpal", "serve", "--port", str(port), "--workers", str(workers)),
                    *("--no-demo", "--no-migrate", "--no-access-log"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                for _ in range(300):
                    try:
                        httpx.get(base + "/health", timeout=1)
                        break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                key, channel_id = tenant["api_key"], tenant["channel_id"]
                first = httpx.post(
                    base + "/api/TicketMessages/create-new",
                    json=_body(channel_id, 0, None),
                    headers={"Authorization": f"Bearer {key}"},
                ).json()
                _run_load(base, key, channel_id, None, clients, 2)  # warm-up
                results = {
                    "new": _run_load(base, key, channel_id, None, clients, seconds),
                    "reply": _run_load(base, key, channel_id, first["ticketID"], clients, seconds),
                    **_attachments(base, key, channel_id),
                }
            finally:
                server.terminate()
                server.wait(timeout=30)
        finally:
            if pg_name:
                asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    return results


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "load":
        base, key, channel_id, ticket_id, clients, seconds = json.loads(sys.argv[2])
        print(json.dumps(asyncio.run(_load(base, key, channel_id, ticket_id, clients, seconds))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="deskpal serve --workers")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"{'db':<11} {'workload':<8} {'creations/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6}")
    for kind in kinds:
        r = bench(kind, args.seconds, args.clients, args.workers)
        for name in ("new", "reply"):
            w = r[name]
            print(
                f"{kind:<11} {name:<8} {w['per_second']:>11.1f} {w['p50_ms']:>8.1f} "
                f"{w['p95_ms']:>8.1f} {w['errors']:>6}"
            )
        print(
            f"{kind:<11} attachments ({ATTACHMENT_MB} MB): upload {r['upload_mb_s']:.1f} MB/s, "
            f"download {r['download_mb_s']:.1f} MB/s"
        )
        print(
            f"{kind:<11} {args.workers} server process(es), load generator {r['new']['generator']} "
            f"with {args.clients} connections; "
            f"1-minute load average after: {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
