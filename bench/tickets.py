"""Tickets benchmark: seed N tickets with M messages, then measure deskpal against a bare stack.

    .venv/bin/python bench/tickets.py [--db sqlite|postgresql|both] [--tickets 100000]
        [--messages 1000000] [--seconds 10] [--data DIR] [--py-spy DIR]

For each database it seeds a fresh one (the migrations' schema, then bulk loads of generated support
conversations, bench/supporttext.py), then serves deskpal and the bare FastAPI + SQLAlchemy app
(bench/bare_app.py) one after the other under identical uvicorn settings, and drives them from a
load generator in a separate process (wrk when installed, else `tickets.py load`, a raw asyncio
HTTP/1.1 client). For each workload — GET one ticket, a filtered sorted list page of 25, 2-word
searches — it warms up, then measures p50/p95 with one client and requests/s with 32 concurrent
clients, each over a window of --seconds; the bare app does the same reads for get and list, and
deskpal's requests/s is printed as a ratio of the bare app's.

With --data DIR the seeded databases are kept (SQLite file, PostgreSQL database name in
DIR/<kind>.json) and reused by later runs with the same sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from supporttext import FIRST_NAMES, TOPICS, SupportText  # noqa: E402
from wrk_lua import WRK_DONE  # noqa: E402

PY = sys.executable
PG_ADMIN = os.environ.get("DESKPAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TABLES = ["topic", "end_user", "ticket", "ticket_message", "ticket_end_user", "ticket_topic"]
STATUSES = [("Open", 0.35), ("Pending", 0.15), ("Waiting", 0.1), ("Closed", 0.4)]
CHANNEL_TYPES = [("Email", 0.6), ("Chat", 0.3), ("Phone", 0.1)]
CLIENTS = 32
POOL_SIZE = 10  # both apps: DESKPAL_DB_POOL_SIZE (pool_size, same max_overflow)
UVICORN = ["--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]


def weighted(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


# --- seeding ---------------------------------------------------------------------------------------


def generate(n_tickets: int, n_messages: int, admin_rep_id: int, customer_id: int) -> Iterator[Any]:
    """Rows per ticket, by table (ids assigned here, from 1), and its conversation. End users (a uid
    for every three tickets on average) come before the first ticket that names them; the topics
    are the conversation kinds, before everything."""
    gen = SupportText(seed=4)
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0)
    span = timedelta(days=730)
    base, extra = divmod(n_messages, n_tickets)
    message_id = 0
    topic_ids = {name: i + 1 for i, name in enumerate(TOPICS)}
    yield (
        {
            "topic": [
                {"topic_id": i, "customer_id": customer_id, "name": name.capitalize()}
                for name, i in topic_ids.items()
            ]
        },
        None,
    )
    users: set[int] = set()
    for i in range(n_tickets):
        ticket_id = i + 1
        n = base + (1 if i < extra else 0)
        conv = gen.conversation(max(n, 1))
        created = now - span + span * (i / n_tickets) + timedelta(seconds=rng.randint(0, 600))
        status = weighted(rng, STATUSES)
        user = rng.randint(1, n_tickets // 3 + 1)
        uid = f"user{user}@example.com"
        end_users = []
        if user not in users:
            users.add(user)
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(FIRST_NAMES)}son"
            end_users.append(
                {"end_user_id": user, "customer_id": customer_id, "uid": uid, "name": name, "email": uid}
            )
        messages = []
        last_user_id = None
        t = created
        for j, (from_user, text) in enumerate(conv.messages[:n]):
            message_id += 1
            t = t + timedelta(minutes=rng.randint(3, 2000))
            if from_user:
                last_user_id = message_id
            messages.append(
                {
                    "message_id": message_id,
                    "ticket_id": ticket_id,
                    "customer_id": customer_id,
                    "created_at": t,
                    "message_date": t,
                    "incoming": from_user,
                    "sender_type": "EndUser" if from_user else "CustomerRep",
                    "customer_rep_id": None if from_user else admin_rep_id,
                    "subject": conv.subject if j == 0 else None,
                    "text_body": text,
                    "message": text,
                    "body_preview": text[:200],
                    "uid": uid if from_user else None,
                }
            )
        follow_up = now + timedelta(days=rng.randint(1, 30)) if rng.random() < 0.02 else None
        ticket = {
            "ticket_id": ticket_id,
            "customer_id": customer_id,
            "token": str(uuid.UUID(int=rng.getrandbits(128))),
            "created_at": created,
            "status": status,
            "subject": conv.subject,
            "channel_type": weighted(rng, CHANNEL_TYPES),
            "uid": uid,
            "customer_rep_id": admin_rep_id if rng.random() < 0.5 else None,
            "is_spam": rng.random() < 0.03,
            "is_closed": status == "Closed",
            "is_processed": rng.random() < 0.98,
            "is_read": rng.random() < 0.7,
            "close_date": t if status == "Closed" else None,
            "follow_up_date": follow_up,
            "last_message_date": t if messages else None,
            "last_end_user_message_id": last_user_id,
            "preview": messages[-1]["text_body"][:200] if messages else None,
        }
        yield (
            {
                "end_user": end_users,
                "ticket": [ticket],
                "ticket_message": messages,
                "ticket_end_user": [
                    {"ticket_id": ticket_id, "end_user_id": user, "customer_id": customer_id}
                ],
                "ticket_topic": [
                    {"ticket_id": ticket_id, "topic_id": topic_ids[conv.topic], "customer_id": customer_id}
                ],
            },
            conv,
        )


async def create_tenant(url: str) -> dict[str, Any]:
    from deskpal.core.db import Database, transaction
    from deskpal.customers.service import create_customer

    db = Database(url)
    async with transaction(db) as s:
        new = await create_customer(
            s, "Bench", admin_email=f"bench-{uuid.uuid4().hex[:6]}@bench.test", admin_password=None
        )
    await db.dispose()
    return {
        "customer_id": new.customer.customer_id,
        "rep_id": new.admin.customer_rep_id,
        "api_key": new.api_key,
    }


def column_plan(table_name: str, db_columns: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The columns to load (those of the database that the model knows) and each one's default."""
    import deskpal.models  # noqa: F401 - every mapper
    from deskpal.core.db import Base

    table = Base.metadata.tables[table_name]
    names, defaults = [], {}
    for name in db_columns:
        col = table.columns.get(name)
        if col is None:
            continue  # generated (search_vector) or unknown to the model: the database fills it
        names.append(name)
        d = col.default
        if d is not None and getattr(d, "is_scalar", False):
            defaults[name] = d.arg  # type: ignore[attr-defined]
        elif d is not None and getattr(d, "is_callable", False):
            defaults[name] = d.arg  # type: ignore[attr-defined]  # called per row
        else:
            defaults[name] = None
    return names, defaults


def rows_for(names: list[str], defaults: dict[str, Any], rows: list[dict[str, Any]], conv: Any) -> list[Any]:
    out = []
    for row in rows:
        values = []
        for n in names:
            if n in row:
                v = row[n]
            else:
                d = defaults[n]
                v = d(None) if callable(d) else d
            values.append(conv(v))
        out.append(values)
    return out


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, dict | list):
        return json.dumps(v)
    if isinstance(v, bool):
        return int(v)
    return v


def _pg_value(v: Any) -> Any:
    if isinstance(v, dict | list):
        return json.dumps(v)
    return v


def seed_sqlite(path: Path, n_tickets: int, n_messages: int, tenant: dict[str, Any]) -> list[str]:
    """Plain executemany in one transaction with the tables' indexes and triggers dropped; then the
    very same index definitions (sqlite_master.sql) recreated, the full-text table built in one pass
    ('rebuild') and its triggers restored."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-500000")
    names = ", ".join(f"'{t}'" for t in TABLES)
    saved = con.execute(
        f"SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({names}) "
        "AND type IN ('trigger', 'index') AND sql IS NOT NULL"
    ).fetchall()
    con.execute("BEGIN")
    for kind, name, _ in saved:
        con.execute(f'DROP {kind.upper()} "{name}"')
    plans = {t: column_plan(t, [r[1] for r in con.execute(f"PRAGMA table_info({t})")]) for t in TABLES}
    insert = {
        t: f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for t, (cols, _) in plans.items()
    }

    def load(batch: dict[str, list[dict[str, Any]]]) -> None:
        for t in TABLES:
            if batch.get(t):
                con.executemany(insert[t], rows_for(*plans[t], batch[t], _sqlite_value))

    t0 = time.perf_counter()
    queries = _load_all(n_tickets, n_messages, tenant, load)
    t1 = time.perf_counter()
    for kind, _, sql in saved:
        if kind == "index":
            con.execute(sql)
    t2 = time.perf_counter()
    con.execute("INSERT INTO ticket_message_fts(ticket_message_fts) VALUES ('rebuild')")
    t3 = time.perf_counter()
    for kind, _, sql in saved:
        if kind == "trigger":
            con.execute(sql)
    con.execute("COMMIT")
    con.execute("ANALYZE")
    print(
        f"[sqlite] load {t1 - t0:.0f}s, indexes {t2 - t1:.0f}s, full-text rebuild {t3 - t2:.0f}s, "
        f"analyze {time.perf_counter() - t3:.0f}s"
    )
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return queries


def _load_all(n_tickets: int, n_messages: int, tenant: dict[str, Any], load: Any) -> list[str]:
    """Generate and hand batches of rows to load(); returns 2-word searches taken from the text."""
    queries: list[str] = []
    batch: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    gen = SupportText(seed=9)
    rows_of = generate(n_tickets, n_messages, tenant["rep_id"], tenant["customer_id"])
    for count, (rows, _) in enumerate(rows_of):
        for t, r in rows.items():
            batch[t].extend(r)
        msgs = rows.get("ticket_message")
        if len(queries) < 400 and count % 97 == 0 and msgs:
            q = gen.query(msgs[0]["text_body"])
            if q:
                queries.append(q)
        if len(batch["ticket"]) >= 5000:
            load(batch)
            batch = {t: [] for t in TABLES}
    load(batch)
    return queries


async def seed_postgresql(url: str, n_tickets: int, n_messages: int, tenant: dict[str, Any]) -> list[str]:
    """COPY with the tables' secondary indexes dropped, then the very same definitions
    (pg_indexes.indexdef, the GIN one included) recreated; the generated tsvector column is computed
    by the database as rows arrive. Generation (Python) and COPY (the server) overlap: the COPY
    of one batch runs in the background while the next is generated."""
    import asyncpg

    from deskpal.tickets import search

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    con = await asyncpg.connect(dsn)
    await con.execute("SET maintenance_work_mem = '1GB'")
    saved = await con.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY($1::text[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        TABLES,
    )
    for r in saved:
        await con.execute(f'DROP INDEX "{r["indexname"]}"')
    plans = {}
    for t in TABLES:
        cols = await con.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
            "AND is_generated = 'NEVER' ORDER BY ordinal_position",
            t,
        )
        plans[t] = column_plan(t, [c["column_name"] for c in cols])
    # Foreign keys are checked row by row during COPY: off for the load (session_replication_role),
    # the ids are consistent by construction.
    await con.execute("SET session_replication_role = replica")
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[Any]] = []

    async def copy(batch: dict[str, list[dict[str, Any]]]) -> None:
        for t in TABLES:
            if batch.get(t):
                cols, defaults = plans[t]
                await con.copy_records_to_table(
                    t, records=rows_for(cols, defaults, batch[t], _pg_value), columns=cols
                )

    def load(batch: dict[str, list[dict[str, Any]]]) -> None:
        # Runs in the generating thread: wait for the previous COPY, start this one.
        for f in pending:
            f.result()
        pending[:] = [asyncio.run_coroutine_threadsafe(copy(batch), loop)]

    t0 = time.perf_counter()
    queries = await asyncio.to_thread(_load_all, n_tickets, n_messages, tenant, load)
    for f in pending:
        await asyncio.wrap_future(f)
    await con.execute("SET session_replication_role = DEFAULT")
    t1 = time.perf_counter()
    for r in saved:
        await con.execute(r["indexdef"])
    # The trigger filling the narrow search table was off for the load (session_replication_role):
    # one copy in id order, then its GIN index built over the rows (faster than row by row).
    await con.execute(f"DROP INDEX {search.SEARCH_INDEX}")
    await con.execute(f"DROP INDEX {search.SEARCH_TENANT_INDEX}")
    await con.execute(search.PG_BACKFILL)
    await con.execute(search.PG_INDEX)
    await con.execute(search.PG_TENANT_INDEX)
    t2 = time.perf_counter()
    for t, col in (
        ("ticket", "ticket_id"),
        ("ticket_message", "message_id"),
        ("end_user", "end_user_id"),
        ("topic", "topic_id"),
    ):
        seq = f"pg_get_serial_sequence('{t}', '{col}')"
        await con.execute(f"SELECT setval({seq}, (SELECT max({col}) FROM {t}))")
    await con.execute("VACUUM ANALYZE")
    t3 = time.perf_counter()
    print(f"[postgresql] load {t1 - t0:.0f}s, indexes {t2 - t1:.0f}s, vacuum analyze {t3 - t2:.0f}s")
    await con.close()
    return queries


async def _recount(url: str) -> None:
    """The list's bucket counts, from the tickets: the bulk loads bypass ticket_count's triggers."""
    from deskpal.core.db import Database
    from deskpal.tickets.counts import rebuild

    db = Database(url)
    try:
        await rebuild(db)
    finally:
        await db.dispose()


def prepare(kind: str, n_tickets: int, n_messages: int, data: Path | None) -> dict[str, Any]:
    from deskpal.migrate import upgrade

    state_file = data / f"{kind}.json" if data else None
    if state_file and state_file.exists():
        state = json.loads(state_file.read_text())
        if (state["tickets"], state["messages"]) == (n_tickets, n_messages):
            print(f"[{kind}] reusing {state['url']} (seeded in {state['seed_seconds']:.0f}s)", flush=True)
            started = time.perf_counter()
            upgrade(state["url"])  # a database seeded by an older deskpal gets the newer migrations
            print(f"[{kind}] migrations up to date ({time.perf_counter() - started:.1f}s)", flush=True)
            return state  # type: ignore[no-any-return]
    workdir = data or Path(tempfile.mkdtemp(prefix=f"deskpal-bench-{kind}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        path = workdir / f"bench-{n_tickets}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        name = f"perfbench_{uuid.uuid4().hex[:8]}"  # not deskpal_*: test clean-ups drop those
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    start = time.perf_counter()
    upgrade(url)
    tenant = asyncio.run(create_tenant(url))
    if kind == "sqlite":
        queries = seed_sqlite(path, n_tickets, n_messages, tenant)
    else:
        queries = asyncio.run(seed_postgresql(url, n_tickets, n_messages, tenant))
    asyncio.run(_recount(url))
    seconds = time.perf_counter() - start
    print(f"[{kind}] seeded {n_tickets} tickets / {n_messages} messages in {seconds:.0f}s", flush=True)
    state = {
        "kind": kind,
        "url": url,
        "tickets": n_tickets,
        "messages": n_messages,
        "seed_seconds": seconds,
        "workdir": str(workdir),
        "queries": queries,
        **tenant,
    }
    if state_file:
        state_file.write_text(json.dumps(state))
    return state


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


# --- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [PY, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", *UVICORN]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(300):
        try:
            httpx.get(base + "/openapi.json", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- load generation (always in another process) ---------------------------------------------------

WRK_SCRIPT = (
    """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local auth = os.getenv("BENCH_AUTH")
local i = 0
local bad = 0
request = function()
  i = i + 1
  local headers = {}
  if auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
"""
    + WRK_DONE
)


async def load(base: str, paths: list[str], auth: str, clients: int, seconds: float) -> dict[str, Any]:
    """A raw HTTP/1.1 keep-alive client (httpx costs more CPU than the servers it would measure)."""
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    auth_line = f"Authorization: {auth}\r\n" if auth else ""

    async def worker(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        i = k
        while time.perf_counter() < deadline:
            req = f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: {host}\r\n{auth_line}\r\n"
            t0 = time.perf_counter()
            writer.write(req.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            i += clients
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
    }


def run_load(base: str, paths: list[str], auth: str, clients: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        paths_file = Path(tmp) / "paths"
        paths_file.write_text("\n".join(paths) + "\n")
        if shutil.which("wrk"):
            script = Path(tmp) / "bench.lua"
            script.write_text(WRK_SCRIPT)
            env = {**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_AUTH": auth}
            duration = f"-d{max(1, round(seconds))}s"
            cmd = ["wrk", "-t1", f"-c{clients}", duration, "--timeout", "30s", "-s", str(script), base]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            result["generator"] = "wrk"
        else:
            spec = Path(tmp) / "spec.json"
            spec.write_text(
                json.dumps(
                    {"base": base, "paths": paths, "auth": auth, "clients": clients, "seconds": seconds}
                )
            )
            cmd = [PY, __file__, "load", str(spec)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            result = json.loads(out)
            result["generator"] = "asyncio"
    result["rps"] = result["requests"] / result["seconds"]
    result["loadavg"] = os.getloadavg()[0]
    return result


def check_paths(base: str, paths: list[str], auth: str) -> dict[str, Any]:
    """Every path answers 200 before anything is timed; for lists, how many rows they find."""
    import httpx

    totals = []
    with httpx.Client(base_url=base, headers={"Authorization": auth} if auth else {}, timeout=60) as c:
        for p in paths:
            r = c.get(p)
            if r.status_code != 200:
                raise RuntimeError(f"GET {p}: {r.status_code} {r.text[:300]}")
            body = r.json()
            if isinstance(body, dict) and "totalCount" in body:
                totals.append(body["totalCount"])
    if not totals:
        return {}
    return {
        "median_total": statistics.median(totals),
        "max_total": max(totals),
        "empty": sum(1 for t in totals if t == 0),
    }


def measure(
    base: str,
    paths: list[str],
    auth: str,
    seconds: float,
    py_spy: Path | None = None,
    pid: int | None = None,
    label: str = "",
) -> dict[str, Any]:
    run_load(base, paths, auth, CLIENTS, min(3.0, seconds))  # warm-up: pools, caches, the JIT-less paths
    one = run_load(base, paths, auth, 1, seconds)
    spy = None
    if py_spy and pid:
        out = py_spy / f"{label}.txt"
        spy = subprocess.Popen(
            [
                shutil.which("py-spy") or str(Path(PY).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--output",
                str(out),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    cpu = _cpu_seconds(pid) if pid else 0.0
    many = run_load(base, paths, auth, CLIENTS, seconds)
    if pid:
        # The server's own CPU time per request: unlike requests/s, barely moved by whatever else
        # runs on the machine (the database server's CPU is not in it).
        many["server_cpu_ms"] = (_cpu_seconds(pid) - cpu) * 1000 / max(many["requests"], 1)
    if spy:
        spy.wait()
    return {"one": one, "c32": many}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- one database ----------------------------------------------------------------------------------


def bench_db(kind: str, state: dict[str, Any], seconds: float, py_spy: Path | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "DESKPAL_DATABASE_URL": state["url"],
        "DESKPAL_DATA_DIR": state["workdir"],
        "DESKPAL_SECRET_KEY": "bench-" + "k" * 40,
        "DESKPAL_RUN_WORKER": "false",
        "DESKPAL_DB_POOL_SIZE": str(POOL_SIZE),
        "PYTHONPATH": str(ROOT),
    }
    n = state["tickets"]
    rng = random.Random(7)
    ids = [rng.randint(1, n) for _ in range(500)]
    pages = [(s, p) for s, _ in STATUSES[:3] for p in (1, 2, 3, 4)]
    auth = f"Bearer {state['api_key']}"
    workloads = {
        "get": [f"/api/Tickets/{i}" for i in ids],
        "list": [f"/api/Tickets?status={s}&sortBy=dateCreated&pageSize=25&pageNumber={p}" for s, p in pages],
        "search": [f"/api/Tickets?search={quote(q)}&pageSize=25" for q in state["queries"]],
    }
    bare_workloads = {
        "get": [f"/tickets/{i}" for i in ids],
        "list": [f"/tickets?customer_id={state['customer_id']}&status={s}&page={p}" for s, p in pages],
    }
    results: dict[str, Any] = {}
    proc, base = start_server("deskpal.asgi:app", env)
    try:
        for name, paths in workloads.items():
            found = check_paths(base, paths, auth)
            results[name] = measure(base, paths, auth, seconds, py_spy, proc.pid, f"{kind}-deskpal-{name}")
            results[name]["found"] = found
            print(f"[{kind}] deskpal {name}: {json.dumps(results[name])}", flush=True)
    finally:
        stop_server(proc)
    proc, base = start_server("bench.bare_app:app", env)
    try:
        for name, paths in bare_workloads.items():
            check_paths(base, paths, "")
            bare = measure(base, paths, "", seconds, py_spy, proc.pid, f"{kind}-bare-{name}")
            results[name]["bare"] = bare
            results[name]["ratio"] = results[name]["c32"]["rps"] / bare["c32"]["rps"]
            print(f"[{kind}] bare {name}: {json.dumps(bare)}", flush=True)
    finally:
        stop_server(proc)
    return results


def report(kind: str, state: dict[str, Any], results: dict[str, Any]) -> None:
    print(
        f"\n== {kind}: {state['tickets']} tickets, {state['messages']} messages "
        f"(seeded in {state['seed_seconds']:.0f}s)"
    )
    head = ("workload", "p50 1c", "p95 1c", "rps 32c", "bare p50", "bare rps", "ratio", "cpu/req", "bare cpu")
    print(f"{head[0]:<8} " + " ".join(f"{h:>9}" for h in head[1:]))
    for name, r in results.items():
        bare = r.get("bare")
        cells = [
            f"{r['one']['p50_ms']:.1f}ms",
            f"{r['one']['p95_ms']:.1f}ms",
            f"{r['c32']['rps']:.0f}",
            f"{bare['one']['p50_ms']:.1f}ms" if bare else "-",
            f"{bare['c32']['rps']:.0f}" if bare else "-",
            f"{r['ratio']:.2f}" if "ratio" in r else "-",
            f"{r['c32'].get('server_cpu_ms', 0):.2f}ms",
            f"{bare['c32'].get('server_cpu_ms', 0):.2f}ms" if bare else "-",
        ]
        print(f"{name:<8} " + " ".join(f"{c:>9}" for c in cells))
    errors = sum(m["errors"] for r in results.values() for k in ("one", "c32") for m in [r[k]])
    loads = [m["loadavg"] for r in results.values() for k in ("one", "c32") for m in [r[k]]]
    print(f"1-minute load average while measuring: {min(loads):.1f}-{max(loads):.1f} (2 cores)")
    found = results["search"]["found"]
    print(
        f"errors: {errors}; load generator: {results['get']['c32']['generator']}; search hits per "
        f"query: median {found.get('median_total')}, max {found.get('max_total')}, none {found.get('empty')}"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "load":
        spec = json.loads(Path(sys.argv[2]).read_text())
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        print(json.dumps(asyncio.run(load(**spec))))
        return
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured window (at least 10)")
    parser.add_argument("--data", type=Path, help="keep the seeded databases here and reuse them")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--py-spy", type=Path, help="record the servers under 32 clients into this dir")
    args = parser.parse_args()
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        state = prepare(kind, args.tickets, args.messages, args.data)
        if args.seed_only:
            continue
        results = bench_db(kind, state, args.seconds, args.py_spy)
        report(kind, state, results)
        out = {"kind": kind, "seed_seconds": state["seed_seconds"], "results": results}
        print(json.dumps(out), file=sys.stderr)


if __name__ == "__main__":
    main()
