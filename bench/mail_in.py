"""Mail in: raw mails posted to `POST /api/Channels/{id}/inbound`, then parsed, threaded and stored
by one and several `deskpal worker` processes, on SQLite and PostgreSQL.

    .venv/bin/python bench/mail_in.py [--db sqlite|postgresql|both] [--mails 1000]
        [--workers 1,2] [--concurrency 4] [--py-spy DIR] [--seed 13] [--import-mails 10000]

For each database: a fresh, migrated database, one customer and one Email channel. Then, per worker
count: --mails generated mails (stdlib `email`; new conversations and replies threading by
In-Reply-To / References to earlier ones, some HTML, a few attachments, auto-replies, bounces and
byte-identical duplicates sent on purpose) are posted one after the other to the raw-mail endpoint
in this process over the ASGI app (endpoint mails/s: each request stores the bytes and writes the
row and its job); then that many `deskpal worker` processes are started and the InboundMail rows
are polled until none is pending. End to end mails/s = filed mails / the time from the first
`processed_at` to the last (process start-up is not counted); worker CPU ms per mail from
/proc/<pid>/stat over the same span. Every mail must end `stored`, or `duplicate` for the
duplicates sent: the run fails otherwise. Last, `deskpal mail import` of an mbox of --import-mails
generated mails is run as a user runs it and timed (the command's own mails/s: each mail stored and
its row and job written; the workers file them afterwards). Figures go in docs/performance.md,
"Mail in".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.mail_out import PG_ADMIN, _cpu_seconds, _pg_admin, _record  # noqa: E402

SECRET = "bench-mail-in-" + "k" * 40
SUPPORT = "support@bench.test"
_FIRST_NAMES = ["Zoë", "Jan", "Amélie", "Lukas", "Sofía", "Giulia", "João", "Emma", "Noah", "Mia"]
_TOPICS = [
    ("My order {n} is late", "Hello,\n\nI ordered item {n} two weeks ago and it has not arrived yet."),
    ("Refund for invoice {n}", "Hi,\n\nI returned the parcel last week. When will invoice {n} be refunded?"),
    ("Cannot log in", "Hello support,\n\nSince this morning I cannot log in to account {n}."),
    ("Wrong size delivered", "Dear team,\n\nOrder {n} came in size M, I ordered L. How do I swap it?"),
    ("Frage zu Bestellung {n}", "Guten Tag,\n\nwann wird meine Bestellung {n} versendet?\n\nGrüße"),
]
_REPLIES = [
    "Thanks, that helps. One more question: can you ship it to my office instead?",
    "It still has not arrived. Could you check again, please?",
    "Great, received it today. You can close this.",
    "I attached a photo of the damaged box.",
]
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class _Thread:
    sender: str
    name: str
    subject: str
    ids: list[str] = field(default_factory=list)  # Message-IDs so far, oldest first
    last_text: str = ""


@dataclass
class Corpus:
    mails: list[bytes]
    duplicates: int  # byte-identical resends among them: expected to end `duplicate`
    kinds: dict[str, int]


def _signature(name: str) -> str:
    return f"\n\nKind regards,\n{name}\n--\nSent from my phone"


def _base(sender: str, name: str, subject: str, when: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=sender.split("@", 1)[1])
    return msg


def _quoted(text: str, when: datetime) -> str:
    quoted = "\n".join("> " + line for line in text.splitlines())
    return f"\n\nOn {format_datetime(when)}, Bench Support <{SUPPORT}> wrote:\n{quoted}\n"


def _html(text: str) -> str:
    paras = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return f"<html><body><div style='font-family:Arial'>{paras}</div></body></html>"


def _bounce(thread: _Thread, when: datetime) -> bytes:
    """An RFC 3464 report (multipart/report) about a mail deskpal never sent: stored, no ticket."""
    boundary = "=_" + uuid.uuid4().hex
    mid = make_msgid(domain="mx.bench.test")
    ours = make_msgid(domain="bench.test")
    lines = [
        "From: Mail Delivery System <MAILER-DAEMON@mx.bench.test>",
        f"To: {SUPPORT}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {mid}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is the mail system. Your message to <{thread.sender}> could not be delivered.",
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.bench.test",
        "",
        f"Final-Recipient: rfc822; {thread.sender}",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
        f"From: {SUPPORT}",
        f"To: {thread.sender}",
        f"Subject: Re: {thread.subject}",
        f"Message-ID: {ours}",
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode()


def generate(n: int, seed: int) -> Corpus:
    """n raw mails, in the order they arrive: ~45% new conversations, ~35% replies (a third of them
    HTML, some with an attachment), ~5% out-of-office answers, ~3% bounces, ~2% byte-identical
    resends of an earlier mail."""
    rng = random.Random(seed)
    start = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    threads: list[_Thread] = []
    mails: list[bytes] = []
    kinds: dict[str, int] = {}
    duplicates = 0
    for i in range(n):
        when = start + timedelta(seconds=30 * i)
        roll = rng.random()
        if mails and roll < 0.02:
            mails.append(rng.choice(mails[-50:]))
            duplicates += 1
            kinds["duplicate"] = kinds.get("duplicate", 0) + 1
            continue
        if threads and roll < 0.05:
            mails.append(_bounce(rng.choice(threads), when))
            kinds["bounce"] = kinds.get("bounce", 0) + 1
            continue
        if not threads or roll < 0.55:
            name = rng.choice(_FIRST_NAMES)
            sender = f"{name.lower().encode('ascii', 'ignore').decode() or 'x'}.{i}@customer{i % 7}.test"
            subject_t, body_t = rng.choice(_TOPICS)
            thread = _Thread(sender, name, subject_t.format(n=1000 + i), last_text="")
            body = body_t.format(n=1000 + i) + _signature(name)
            msg = _base(sender, name, thread.subject, when)
            kind = "new"
        else:
            thread = rng.choice(threads[-200:])
            msg = _base(thread.sender, thread.name, "Re: " + thread.subject, when)
            msg["In-Reply-To"] = thread.ids[-1]
            msg["References"] = " ".join(thread.ids[-10:])
            if roll < 0.60:
                msg["Auto-Submitted"] = "auto-replied"
                msg["X-Autoreply"] = "yes"
                msg.replace_header("Subject", "Automatic reply: " + thread.subject)
                body = "I am out of the office until Monday and will read your mail on my return."
                kind = "autoreply"
            else:
                body = rng.choice(_REPLIES) + _signature(thread.name) + _quoted(thread.last_text, when)
                kind = "reply"
        msg.set_content(body)
        if kind != "autoreply" and rng.random() < 0.3:
            msg.add_alternative(_html(body), subtype="html")
            kind += "+html"
        if kind.startswith(("new", "reply")) and rng.random() < 0.06:
            msg.add_attachment(_PNG, maintype="image", subtype="png", filename=f"photo-{i}.png")
            kind += "+attachment"
        kinds[kind] = kinds.get(kind, 0) + 1
        thread.ids.append(str(msg["Message-ID"]))
        thread.last_text = body
        if kind.startswith("new"):
            threads.append(thread)
        mails.append(msg.as_bytes())
    return Corpus(mails, duplicates, kinds)


async def _statuses(db: Any, customer_id: int, after: int) -> tuple[dict[str, int], list[datetime]]:
    from sqlalchemy import func, select

    from deskpal.core.db import transaction
    from deskpal.email.inbound.models import InboundMail

    async with transaction(db, write=False, customer_id=customer_id) as session:
        stmt = (
            select(
                InboundMail.status,
                func.count(),
                func.min(InboundMail.processed_at),
                func.max(InboundMail.processed_at),
            )
            .where(InboundMail.inbound_mail_id > after, InboundMail.status != "duplicate")
            .group_by(InboundMail.status)
        )
        counts: dict[str, int] = {}
        stamps: list[datetime] = []
        for status, count, first, last in (await session.execute(stmt)).all():
            counts[status] = count
            if status == "stored" and first is not None:
                stamps = [first, last]
        dupes = select(func.count()).where(
            InboundMail.inbound_mail_id > after, InboundMail.status == "duplicate"
        )
        counts["duplicate"] = int(await session.scalar(dupes.select_from(InboundMail)) or 0)
        return counts, stamps


async def _post_all(client: Any, headers: dict[str, str], channel_id: int, mails: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in mails:
        r = await client.post(
            f"/api/Channels/{channel_id}/inbound",
            content=raw,
            headers={**headers, "Content-Type": "message/rfc822"},
        )
        if r.status_code != 202:
            raise RuntimeError(f"inbound: {r.status_code} {r.text}")
    return time.perf_counter() - started


def _load() -> float:
    return os.getloadavg()[0]


async def _drain(
    db: Any,
    env: dict[str, str],
    customer_id: int,
    after: int,
    workers: int,
    corpus: Corpus,
    py_spy: Path | None,
    label: str,
) -> dict[str, Any]:
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - returns at once; the workers run beside this loop
            [sys.executable, "-m", "deskpal", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    deadline = time.monotonic() + 900
    spy, cpu_start, cpu_end, loads = None, None, 0.0, []
    counts: dict[str, int] = {}
    stamps: list[datetime] = []
    try:
        while time.monotonic() < deadline:
            counts, stamps = await _statuses(db, customer_id, after)
            if stamps and cpu_start is None:
                # From the first filed mail: start-up (imports, the migrations check) is no mail's cost.
                cpu_start = sum(_cpu_seconds(p.pid) for p in procs)
                if py_spy is not None:
                    spy = _record(py_spy / f"{label}-workers{workers}.txt", procs[0].pid)
            if cpu_start is not None:
                loads.append(_load())
            if counts.get("pending", 0) == 0 and stamps:
                cpu_end = sum(_cpu_seconds(p.pid) for p in procs)
                break
            await asyncio.sleep(0.1)
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    filed = counts.get("stored", 0) + counts.get("failed", 0)
    span = (stamps[1] - stamps[0]).total_seconds() if stamps else float("nan")
    return {
        "workers": workers,
        "mails": len(corpus.mails),
        "stored": counts.get("stored", 0),
        "duplicate": counts.get("duplicate", 0),
        "failed": counts.get("failed", 0),
        "pending": counts.get("pending", 0),
        "seconds": round(span, 3),
        "mails_per_s": round((filed - 1) / span, 1) if span and span == span else float("nan"),
        # The workers' own CPU per mail: unlike mails/s, hardly moved by what else the machine runs.
        "worker_cpu_ms_per_mail": round((cpu_end - (cpu_start or 0.0)) * 1000 / max(filed - 1, 1), 2),
        "load_avg_1m": round(max(loads), 2) if loads else _load(),
    }


async def bench_db(
    kind: str,
    mails: int,
    worker_counts: list[int],
    concurrency: int,
    seed: int,
    py_spy: Path | None,
    import_mails: int = 0,
) -> dict[str, Any]:
    import httpx
    from sqlalchemy import func, select

    from deskpal.app import create_app
    from deskpal.config import Settings
    from deskpal.core.db import transaction
    from deskpal.customers.service import create_customer
    from deskpal.email.inbound.models import InboundMail
    from deskpal.migrate import upgrade_async

    workdir = tempfile.mkdtemp(prefix=f"deskpal-mailin-{kind}-")
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir}/deskpal.db"
    else:
        pg_name = f"deskpal_mailin_{uuid.uuid4().hex[:8]}"
        await _pg_admin(f'CREATE DATABASE "{pg_name}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    try:
        await upgrade_async(url)
        settings = Settings(database_url=url, data_dir=Path(workdir), secret_key=SECRET, run_worker=False)
        app = create_app(settings)
        async with transaction(app.state.db) as db:
            new = await create_customer(
                db, "Bench", admin_email=f"a{uuid.uuid4().hex[:6]}@b.test", admin_password=None
            )
        customer_id = new.customer.customer_id
        headers = {"Authorization": f"Bearer {new.api_key}"}
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
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
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            r = await client.post(
                "/api/Channels",
                json={"name": "Support mail", "channelType": "Email", "settings": {"fromAddress": SUPPORT}},
                headers=headers,
            )
            r.raise_for_status()
            channel_id = r.json()["channelID"]
            for run_no, workers in enumerate(worker_counts):
                corpus = generate(mails, seed + run_no)
                async with transaction(app.state.db, write=False, customer_id=customer_id) as session:
                    after = int(await session.scalar(select(func.max(InboundMail.inbound_mail_id))) or 0)
                load_before = _load()
                posted_s = await _post_all(client, headers, channel_id, corpus.mails)
                run = await _drain(app.state.db, env, customer_id, after, workers, corpus, py_spy, kind)
                run["endpoint_mails_per_s"] = round(len(corpus.mails) / posted_s, 1)
                run["load_avg_1m_before"] = round(load_before, 2)
                run["kinds"] = corpus.kinds
                ok = (
                    run["failed"] == 0
                    and run["pending"] == 0
                    and run["duplicate"] == corpus.duplicates
                    and run["stored"] == len(corpus.mails) - corpus.duplicates
                )
                run["ok"] = ok
                runs.append(run)
                print(f"[{kind}] {json.dumps(run)}", flush=True)
        imported = None
        if import_mails:
            imported = await asyncio.to_thread(
                _import_rate, env, workdir, channel_id, import_mails, seed + 99
            )
            print(f"[{kind}] import {json.dumps(imported)}", flush=True)
        await app.state.db.dispose()
        return {"kind": kind, "runs": runs, "import": imported}
    finally:
        if pg_name:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def _import_rate(env: dict[str, str], workdir: str, channel_id: int, n: int, seed: int) -> dict[str, Any]:
    """`deskpal mail import` of an mbox of n generated mails, as a user runs it: the command's own
    mails/s (each mail's bytes stored and its row and job written; the workers file them later)."""
    import mailbox

    path = os.path.join(workdir, f"import-{n}.mbox")
    box = mailbox.mbox(path)
    try:
        for raw in generate(n, seed).mails:
            box.add(mailbox.mboxMessage(raw))
        box.flush()
    finally:
        box.close()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "deskpal", "mail", "import", "--channel-id", str(channel_id), path],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    try:
        summary: dict[str, Any] = json.loads(done.stdout)  # the command's JSON summary
    except ValueError:
        summary = {}
    return {
        "mails": n,
        "exit_code": done.returncode,
        "seconds": round(seconds, 1),
        "import_mails_per_s": round(n / seconds, 1),
        "summary": summary,
        "stderr_tail": done.stderr[-300:] if done.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--py-spy", type=Path, help="record the first worker for 4 s into this dir")
    parser.add_argument(
        "--import-mails",
        type=int,
        default=10_000,
        help="time `deskpal mail import` of an mbox this big (0: skip)",
    )
    args = parser.parse_args()
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    counts = [int(w) for w in args.workers.split(",")]
    failed = False
    for kind in kinds:
        result = asyncio.run(
            bench_db(kind, args.mails, counts, args.concurrency, args.seed, args.py_spy, args.import_mails)
        )
        print(json.dumps(result))
        failed = failed or not all(run["ok"] for run in result["runs"])
        imported = result["import"]
        failed = failed or (
            imported is not None and (imported["exit_code"] != 0 or imported["summary"].get("failed"))
        )
    if failed:
        sys.exit("some mails did not end stored (or duplicate): see the runs above")


if __name__ == "__main__":
    main()
