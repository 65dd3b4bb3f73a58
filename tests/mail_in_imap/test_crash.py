"""Polling survives its workers: `deskpal worker` processes killed (SIGKILL and SIGTERM) while they
fetch from Dovecot, restarted, and every mail of the folder was taken in exactly once.

A batch of mails is recorded by the pipeline and the folder's last UID moved past it in one
transaction: a worker killed mid-batch commits none of it, and the worker that takes the mailbox
over (once the lease lapses) fetches that batch again, so no mail arrives twice at all (not even as
a `duplicate` row), let alone is stored twice. What a SIGKILL cut short shows as bytes staged to
storage that no row records (the orphan sweeper's, later).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from deskpal.email.inbound.receive import AREA
from deskpal.storage.jobs import prefix_of
from tests.mail_in_imap.conftest import make_channel
from tests.mail_in_imap.dovecot import Dovecot, ImapAccount
from tests.mail_in_imap.inbox import Inbox, message_id_of
from tests.support import Tenant

REPO = Path(__file__).resolve().parents[2]


def mail(n: int) -> bytes:
    return (
        f"From: <customer{n}@example.test>\r\nTo: <support@acme.test>\r\nSubject: Ticket {n}\r\n"
        f"Message-ID: <crash-{n}-{uuid.uuid4().hex}@example.test>\r\n\r\nPlease help ({n}).\r\n"
    ).encode()


class Workers:
    """`deskpal worker` processes on the test's database and storage, polling Dovecot."""

    def __init__(self, app: FastAPI, dovecot: Dovecot, *, logs: Path) -> None:
        settings = app.state.settings
        self.logs = logs  # each worker's stderr, for a failure's post-mortem
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),
            "DESKPAL_DATABASE_URL": settings.resolved_database_url,
            "DESKPAL_DATA_DIR": str(settings.data_dir),
            "DESKPAL_SECRET_KEY": settings.resolved_secret_key,
            "DESKPAL_IMAP_CA_FILE": dovecot.ca_file,
            "DESKPAL_IMAP_POLL_SECONDS": "0.2",
            "DESKPAL_IMAP_LEASE_SECONDS": "2",  # a killed worker's mailbox is taken over 2 s later
            "DESKPAL_IMAP_TIMEOUT_SECONDS": "5",
            "DESKPAL_WORKER_POLL_SECONDS": "0.1",
        }
        if settings.storage_url:
            self.env["DESKPAL_STORAGE_URL"] = settings.storage_url
        self.alive: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with (self.logs / f"worker-{len(list(self.logs.glob('worker-*')))}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "deskpal", "worker"],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
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
    inbox: Inbox,
    tmp_path: Path,
) -> None:
    mails = [mail(n) for n in range(150)]
    imap_account.deliver_many(mails)
    await make_channel(client, tenant, imap_account)
    workers = Workers(app, dovecot, logs=tmp_path)
    storage, prefix = app.state.storage, prefix_of(AREA, tenant.customer_id)
    before = {b.key async for b in storage.list(prefix)}  # the data dir outlives a test

    async def progress() -> int:
        return len(await inbox.rows())

    try:
        hard = await _kill_repeatedly(workers, imap_account, progress, kills=10, mails=mails)

        async def all_in() -> bool:
            return len(await inbox.arrivals()) >= len(mails)

        await _until(all_in, within=120, what="every mail to be taken in")
        await asyncio.sleep(1.0)  # a second arrival would come now
    finally:
        await workers.stop_all()
    arrived = await inbox.arrivals()
    expected = {message_id_of(m) for m in mails}
    assert set(arrived) == expected, f"lost: {len(expected - set(arrived))}"
    twice = {k: c for k, c in arrived.items() if c > 1}
    assert not twice, f"{len(twice)} mails arrived twice after {hard} SIGKILLs"
    recorded = {r.storage_key for r in await inbox.rows()}
    cut = len({b.key async for b in storage.list(prefix)} - before - recorded)
    print(f"\n{len(mails)} mails, 10 kills ({hard} SIGKILL): {cut} staged mails left by a kill mid-batch")
