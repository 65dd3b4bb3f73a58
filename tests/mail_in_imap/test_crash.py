"""Polling survives its workers: `deskpal worker` processes killed (SIGKILL and SIGTERM) while they
fetch from Dovecot, restarted, and every mail of the folder was taken in exactly once.

A batch of mails is handed to receive() and the folder's last UID moved past it in one
transaction: a worker killed mid-batch commits none of it, and the worker that takes the mailbox
over (once the lease lapses) fetches that batch again, so no mail is handed over twice at all, let
alone stored twice. Until the inbound pipeline is merged the workers run with the TEMPORARY
stand-in for receive() (standin.py), which records each committed hand-over to a file.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.mail_in_imap.conftest import PIPELINE, make_channel
from tests.mail_in_imap.dovecot import Dovecot, ImapAccount
from tests.mail_in_imap.standin import Recorder, message_key
from tests.support import Tenant

REPO = Path(__file__).resolve().parents[2]


def mail(n: int) -> bytes:
    return (
        f"From: <customer{n}@example.test>\r\nTo: <support@acme.test>\r\nSubject: Ticket {n}\r\n"
        f"Message-ID: <crash-{n}-{uuid.uuid4().hex}@example.test>\r\n\r\nPlease help ({n}).\r\n"
    ).encode()


class Workers:
    """`deskpal worker` processes on the test's database, polling Dovecot; with the stand-in
    recording to `record` unless `record` is None (the real pipeline)."""

    def __init__(
        self, app: FastAPI, dovecot: Dovecot, record: Path | None, *, delay: float, logs: Path
    ) -> None:
        settings = app.state.settings
        self.record = record
        self.logs = logs  # each worker's stderr, for a failure's post-mortem
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
            "DESKPAL_DATABASE_URL": settings.resolved_database_url,
            "DESKPAL_DATA_DIR": str(settings.data_dir),
            "DESKPAL_SECRET_KEY": settings.resolved_secret_key,
            "DESKPAL_IMAP_CA_FILE": dovecot.ca_file,
            "DESKPAL_IMAP_POLL_SECONDS": "0.2",
            "DESKPAL_IMAP_LEASE_SECONDS": "2",  # a killed worker's mailbox is taken over 2 s later
            "DESKPAL_IMAP_TIMEOUT_SECONDS": "5",
            "DESKPAL_WORKER_POLL_SECONDS": "0.1",
            "STANDIN_DELAY_SECONDS": str(delay),
        }
        self.alive: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        if self.record is not None:
            command = [sys.executable, "-m", "tests.mail_in_imap.standin", str(self.record), "worker"]
        else:
            command = [sys.executable, "-m", "deskpal", "worker"]
        with (self.logs / f"worker-{len(list(self.logs.iterdir()))}.log").open("wb") as log:
            proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        self.alive.append(proc)
        return proc

    async def stop(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        proc.send_signal(sig)
        await asyncio.to_thread(proc.wait, 60)
        self.alive.remove(proc)

    async def stop_all(self) -> None:
        for proc in list(self.alive):
            await self.stop(proc, signal.SIGTERM)


async def _until(check: Any, *, within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _kill_repeatedly(
    workers: Workers, account: ImapAccount, progress: Any, *, kills: int, mails: list[bytes]
) -> int:
    """Kill a random worker `kills` times while new mail keeps arriving, each kill once some of it
    has come in, then start another; returns how many kills were SIGKILLs."""
    rng = random.Random(1206)
    hard = 0
    workers.start()
    workers.start()
    for n in range(kills):
        before = await progress()
        fresh = [mail(len(mails) + i) for i in range(30)]
        account.deliver_many(fresh)
        mails += fresh

        async def moving(before: int = before) -> bool:
            return await progress() > before

        await _until(moving, within=60, what="mail to come in")
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        victim = rng.choice(workers.alive)
        sig = signal.SIGKILL if n % 2 == 0 else signal.SIGTERM
        hard += sig == signal.SIGKILL
        await workers.stop(victim, sig)
        workers.start()
    return hard


async def test_workers_killed_while_fetching_take_every_mail_in_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    dovecot: Dovecot,
    imap_account: ImapAccount,
    tmp_path: Path,
) -> None:
    mails = [mail(n) for n in range(150)]
    imap_account.deliver_many(mails)
    await make_channel(client, tenant, imap_account)
    recorder = Recorder(tmp_path / "received.jsonl")
    workers = Workers(app, dovecot, recorder.path, delay=0.02, logs=tmp_path)  # a batch takes a while

    async def progress() -> int:
        return len(recorder.records())

    try:
        hard = await _kill_repeatedly(workers, imap_account, progress, kills=10, mails=mails)

        async def all_in() -> bool:
            return len(recorder.handed()) >= len(mails)

        await _until(all_in, within=120, what="every mail to be taken in")
        await asyncio.sleep(1.0)  # a second hand-over would come now
    finally:
        await workers.stop_all()
    handed = recorder.handed()
    cut = recorder.attempts() - sum(handed.values())
    print(f"\n{len(mails)} mails, 10 kills ({hard} SIGKILL): {cut} hand-overs cut short and fetched again")
    expected = {message_key(m) for m in mails}
    assert set(handed) == expected, f"lost: {len(expected - set(handed))}"
    twice = {k: c for k, c in handed.items() if c > 1}
    assert not twice, f"{len(twice)} mails handed over twice after {hard} SIGKILLs"
    pids = Counter(r["pid"] for r in recorder.records())
    assert len(pids) > 2, "the mail should have come in through several workers"


@pytest.mark.skipif(not PIPELINE, reason="needs the inbound pipeline's receive() (branch inbound-pipeline)")
async def test_with_the_pipeline_workers_killed_while_fetching_store_every_mail_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    dovecot: Dovecot,
    imap_account: ImapAccount,
    tmp_path: Path,
) -> None:
    mails = [mail(n) for n in range(150)]
    imap_account.deliver_many(mails)
    await make_channel(client, tenant, imap_account)
    workers = Workers(app, dovecot, None, delay=0, logs=tmp_path)

    async def listed() -> list[dict[str, Any]]:
        r = await client.get("/api/InboundMails?pageSize=1000", headers=tenant.headers)
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    async def progress() -> int:
        return len(await listed())

    try:
        await _kill_repeatedly(workers, imap_account, progress, kills=10, mails=mails)

        async def all_in() -> bool:
            return len([m for m in await listed() if m["status"] != "duplicate"]) >= len(mails)

        await _until(all_in, within=120, what="every mail to be stored")
        await asyncio.sleep(1.0)
    finally:
        await workers.stop_all()
    # Each mail has a Message-ID of its own: one original row each (a second would be a
    # `duplicate` row, or a surplus original had the dedupe failed).
    originals = [m for m in await listed() if m["status"] != "duplicate"]
    assert len(originals) == len(mails)
