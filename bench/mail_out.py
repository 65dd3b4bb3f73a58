"""Mail out: sends/s to a local SMTP sink with one and several `deskpal worker` processes, and
preview latency, on SQLite and PostgreSQL.

    .venv/bin/python bench/mail_out.py [--db sqlite|postgresql|both] [--mails 1000]
        [--workers 1,2] [--concurrency 16] [--previews 200]

For each database: a fresh, migrated database, one customer and an Email channel whose SMTP server
is an aiosmtpd sink in its own process (plain SMTP on 127.0.0.1; it counts mails by Message-ID and
stamps each arrival). Then, per worker count: --mails received mails answered through
`POST /api/TicketMessages/{id}/send` (in this process, over the ASGI app: each request writes the
reply and its send job), then that many `deskpal worker` processes are started and the time from the
first mail's arrival to the last is taken: sends/s = mails / that time (process start-up is not
counted). Every Message-ID must arrive exactly once. Last, --previews `preview` requests one after
the other: p50/p95.
Figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

PG_ADMIN = os.environ.get("DESKPAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SECRET = "bench-mail-" + "k" * 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sink(port: int, out: str, ready: Any) -> None:
    """The SMTP sink process: appends "<arrival time> <Message-ID>" per mail to `out`."""
    from aiosmtpd.controller import Controller

    log = open(out, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mid = ""
            for line in envelope.original_content.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    mid = line.split(b":", 1)[1].strip().decode()
                    break
                if not line:
                    break
            log.write(f"{time.time():.6f} {mid}\n")
            return "250 2.0.0 Ok: queued"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def _arrivals(path: str) -> list[tuple[float, str]]:
    if not os.path.exists(path):
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        when, _, mid = line.partition(" ")
        rows.append((float(when), mid))
    return rows


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


async def _queue_replies(client: Any, headers: dict[str, str], channel_id: int, n: int) -> list[str]:
    """n received mails, each answered through send: the Message-IDs the sink must receive."""
    ids = []
    for i in range(n):
        r = await client.post(
            "/api/TicketMessages/create-new",
            json={
                "channel": "Email",
                "channelID": channel_id,
                "fromAddress": f"customer{i}@example.test",
                "subject": f"Order {i} is late",
                "message": "Where is my order?",
                "messageIdentifier": f"<in-{uuid.uuid4().hex}@example.test>",
            },
            headers=headers,
        )
        r.raise_for_status()
        sent = await client.post(
            f"/api/TicketMessages/{r.json()['messageID']}/send",
            json={"modifiedAnswer": f"Your order {i} ships today.\n\nKind regards,\nSupport"},
            headers=headers,
        )
        sent.raise_for_status()
        ids.append(sent.json()["messageIdentifier"])
    return ids


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _record(out: Path, pid: int, seconds: int = 4) -> subprocess.Popen[bytes]:
    """py-spy on one worker for `seconds` (raw collapsed stacks)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
         "--duration", str(seconds), "--rate", "200", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _drain(
    env: dict[str, str],
    workers: int,
    expected: list[str],
    sink_log: str,
    py_spy: Path | None = None,
    label: str = "",
) -> dict[str, Any]:
    seen_before = len(_arrivals(sink_log))
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - returns at once; the workers run beside this loop
            [sys.executable, "-m", "deskpal", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    deadline = time.monotonic() + 600
    spy, cpu_start, cpu_end = None, None, 0.0
    try:
        while time.monotonic() < deadline:
            got = _arrivals(sink_log)[seen_before:]
            if got and cpu_start is None:
                # From the first arrival: start-up (imports, migrations check) is not a mail's cost.
                cpu_start = sum(_cpu_seconds(p.pid) for p in procs)
                if py_spy is not None:
                    spy = _record(py_spy / f"{label}-workers{workers}.txt", procs[0].pid)
            if len({mid for _, mid in got} & set(expected)) == len(expected):
                cpu_end = sum(_cpu_seconds(p.pid) for p in procs)
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a late duplicate would show here
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    got = _arrivals(sink_log)[seen_before:]
    mine = [(t, mid) for t, mid in got if mid in set(expected)]
    counts: dict[str, int] = {}
    for _, mid in mine:
        counts[mid] = counts.get(mid, 0) + 1
    times = sorted(t for t, _ in mine)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {
        "workers": workers,
        "mails": len(expected),
        "arrived": len(counts),
        "duplicates": sum(c - 1 for c in counts.values()),
        "seconds": span,
        "sends_per_s": (len(times) - 1) / span if span and span == span else float("nan"),
        # The workers' own CPU per mail: unlike sends/s, hardly moved by what else the machine runs.
        "worker_cpu_ms_per_mail": (cpu_end - (cpu_start or 0.0)) * 1000 / max(len(expected) - 1, 1),
    }


async def _previews(client: Any, headers: dict[str, str], channel_id: int, n: int) -> dict[str, float]:
    ids = []
    for i in range(n):
        r = await client.post(
            "/api/TicketMessages/create-new",
            json={
                "channel": "Email",
                "channelID": channel_id,
                "fromAddress": f"preview{i}@example.test",
                "subject": f"Question {i}",
                "message": "How do I reset my password?",
            },
            headers=headers,
        )
        r.raise_for_status()
        ids.append(r.json()["messageID"])
    times = []
    for mid in ids:
        started = time.perf_counter()
        r = await client.post(
            f"/api/TicketMessages/{mid}/preview",
            json={"modifiedAnswer": "Use the reset link."},
            headers=headers,
        )
        times.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(len(times) * 0.95) - 1]}


async def bench_db(
    kind: str,
    mails: int,
    worker_counts: list[int],
    concurrency: int,
    previews: int,
    py_spy: Path | None = None,
) -> dict[str, Any]:
    import httpx

    from deskpal.app import create_app
    from deskpal.config import Settings
    from deskpal.core.db import transaction
    from deskpal.customers.service import create_customer
    from deskpal.migrate import upgrade_async

    workdir = tempfile.mkdtemp(prefix=f"deskpal-mail-{kind}-")
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir}/deskpal.db"
    else:
        pg_name = f"deskpal_mail_{uuid.uuid4().hex[:8]}"
        await _pg_admin(f'CREATE DATABASE "{pg_name}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    port, sink_log = _free_port(), os.path.join(workdir, "sink.log")
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(port, sink_log, ready), daemon=True)
    sink.start()
    ready.wait(30)
    try:
        await upgrade_async(url)
        settings = Settings(database_url=url, data_dir=Path(workdir), secret_key=SECRET, run_worker=False)
        app = create_app(settings)
        async with transaction(app.state.db) as db:
            new = await create_customer(
                db, "Bench", admin_email=f"a{uuid.uuid4().hex[:6]}@b.test", admin_password=None
            )
        headers = {"Authorization": f"Bearer {new.api_key}"}
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            r = await client.post(
                "/api/Channels",
                json={
                    "name": "Support mail",
                    "channelType": "Email",
                    "settings": {
                        "smtpHost": "127.0.0.1",
                        "smtpPort": port,
                        "smtpSecurity": "none",
                        "fromAddress": "support@bench.test",
                        "fromName": "Bench Support",
                    },
                },
                headers=headers,
            )
            r.raise_for_status()
            channel_id = r.json()["channelID"]
            env = {
                **os.environ,
                "DESKPAL_DATABASE_URL": url,
                "DESKPAL_DATA_DIR": workdir,
                "DESKPAL_SECRET_KEY": SECRET,
                "DESKPAL_WORKER_CONCURRENCY": str(concurrency),
                "DESKPAL_WORKER_POLL_SECONDS": "0.05",
                "PYTHONPATH": str(ROOT / "src"),
            }
            runs = []
            for workers in worker_counts:
                started = time.perf_counter()
                expected = await _queue_replies(client, headers, channel_id, mails)
                queued_s = time.perf_counter() - started
                run = await _drain(env, workers, expected, sink_log, py_spy, kind)
                run["send_requests_per_s"] = mails / queued_s
                runs.append(run)
                print(f"[{kind}] {json.dumps(run)}", flush=True)
            preview = await _previews(client, headers, channel_id, previews)
            print(f"[{kind}] preview {json.dumps(preview)}", flush=True)
        await app.state.db.dispose()
        return {"kind": kind, "runs": runs, "preview": preview}
    finally:
        sink.terminate()
        if pg_name:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--previews", type=int, default=200)
    parser.add_argument("--py-spy", type=Path, help="record the first worker for 4 s into this dir")
    args = parser.parse_args()
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    counts = [int(w) for w in args.workers.split(",")]
    for kind in kinds:
        result = asyncio.run(bench_db(kind, args.mails, counts, args.concurrency, args.previews, args.py_spy))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
