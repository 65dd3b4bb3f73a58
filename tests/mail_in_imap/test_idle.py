"""IMAP IDLE against the real Dovecot (which offers it), on both databases: a mail appended while
the poller idles arrives at once however long the poll interval; IDLE off means the poll; the
cap on idling mailboxes leaves the rest polled; a stopping worker ends IDLE at once and lets go of
the lease.

The pollers run in real workers with a poll interval of 30 s, so that only IDLE can explain a mail
arriving within seconds. `idle_watch` counts the rounds waiting in IDLE (it wraps the real
ImapSession.idle, changing nothing of what it does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.worker import Worker
from deskpal.email import runtime as email_runtime
from deskpal.email.inbound.imap import ImapConfig, ImapFailure, ImapSession
from tests.mail_in_imap.conftest import make_channel
from tests.mail_in_imap.dovecot import Dovecot, ImapAccount
from tests.mail_in_imap.inbox import Inbox
from tests.mail_in_imap.test_polling import mail, mailbox_of, until
from tests.support import Tenant, db_of


@dataclass
class IdleWatch:
    now: int = 0  # rounds in IDLE right now
    most: int = 0  # ... at most, at any moment
    calls: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def idling(self, at_least: int = 1, within: float = 10) -> None:
        async def enough() -> bool:
            return self.now >= at_least

        await until(enough, within=within, what=f"{at_least} mailboxes idling")
        await asyncio.sleep(0.2)  # the IDLE command sent and answered


@pytest.fixture
def idle_watch(monkeypatch: pytest.MonkeyPatch) -> IdleWatch:
    watch = IdleWatch()
    real = ImapSession.idle

    async def counted(self: ImapSession, seconds: float) -> bool:
        watch.calls += 1
        watch.now += 1
        watch.most = max(watch.most, watch.now)
        watch.started.set()
        try:
            return await real(self, seconds)
        finally:
            watch.now -= 1

    monkeypatch.setattr(ImapSession, "idle", counted)
    return watch


StartWorker = Callable[..., Awaitable[tuple[Worker, asyncio.Event, "asyncio.Task[None]"]]]


@pytest.fixture
async def start_worker(app: FastAPI) -> AsyncIterator[StartWorker]:
    """Start a worker (its IMAP poller included) with these IMAP settings; stopped at the end."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**imap: Any) -> tuple[Worker, asyncio.Event, asyncio.Task[None]]:
        values = {"imap_poll_seconds": 30, "imap_lease_seconds": 5, "imap_timeout_seconds": 5} | imap
        email_runtime.configure(app.state.settings.model_copy(update=values), app.state.storage)
        stop = asyncio.Event()
        worker = Worker(db_of(app), poll_seconds=0.05)
        task = asyncio.create_task(worker.run_forever(stop))
        running.append((stop, task))
        return worker, stop, task

    try:
        yield start
    finally:
        for stop, task in running:
            stop.set()
            await asyncio.wait_for(task, 30)


async def count_of(inbox: Inbox) -> int:
    return sum((await inbox.originals()).values())


async def wait_for_mails(inbox: Inbox, n: int, *, within: float, what: str) -> float:
    async def arrived() -> bool:
        return await count_of(inbox) >= n

    return await until(arrived, within=within, what=what)


class TestIdle:
    async def test_a_mail_appended_while_idling_arrives_within_seconds(
        self,
        client: httpx.AsyncClient,
        tenant: Tenant,
        imap_account: ImapAccount,
        inbox: Inbox,
        idle_watch: IdleWatch,
        start_worker: StartWorker,
    ) -> None:
        imap_account.deliver(mail(1))
        await make_channel(client, tenant, imap_account)
        await start_worker(imap_idle_seconds=60)
        await wait_for_mails(inbox, 1, within=10, what="the first poll")
        await idle_watch.idling()
        for n in (2, 3):  # the second while idling again after the first was fetched
            imap_account.deliver(mail(n))
            took = await wait_for_mails(inbox, n, within=10, what=f"mail {n}, appended during IDLE")
            assert took < 3, f"mail {n} took {took:.1f} s with a 30 s poll interval"
        assert idle_watch.most == 1

    async def test_with_idle_off_the_mail_waits_for_the_poll(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        imap_account: ImapAccount,
        inbox: Inbox,
        idle_watch: IdleWatch,
        start_worker: StartWorker,
    ) -> None:
        imap_account.deliver(mail(1))
        channel = await make_channel(client, tenant, imap_account)
        await start_worker(imap_idle_seconds=0)
        await wait_for_mails(inbox, 1, within=10, what="the first poll")
        imap_account.deliver(mail(2))
        await asyncio.sleep(4)
        assert await count_of(inbox) == 1  # not before the next poll, 30 s after the first
        row = await mailbox_of(app, tenant, channel["channelID"])
        assert row.lease_holder is None and row.next_poll_at is not None and row.last_fetch_at is not None
        assert (row.next_poll_at - row.last_fetch_at).total_seconds() == pytest.approx(30, abs=1)
        assert idle_watch.calls == 0

    async def test_no_more_mailboxes_idle_than_the_cap_and_the_others_are_still_polled(
        self,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        inbox: Inbox,
        idle_watch: IdleWatch,
        start_worker: StartWorker,
    ) -> None:
        accounts = [dovecot.add_account() for _ in range(3)]
        for n, account in enumerate(accounts):
            account.deliver(mail(n))
            await make_channel(client, tenant, account)
        await start_worker(imap_idle_seconds=60, imap_idle_max=1, imap_poll_seconds=1)
        await wait_for_mails(inbox, 3, within=10, what="each mailbox's first poll")
        await idle_watch.idling()
        for n, account in enumerate(accounts, start=3):
            account.deliver(mail(n))
        await wait_for_mails(inbox, 6, within=10, what="the new mail of every mailbox")
        assert idle_watch.most == 1

    async def test_stopping_the_worker_ends_idle_at_once_and_releases_the_lease(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        imap_account: ImapAccount,
        inbox: Inbox,
        idle_watch: IdleWatch,
        start_worker: StartWorker,
    ) -> None:
        imap_account.deliver(mail(1))
        channel = await make_channel(client, tenant, imap_account)
        _, stop, task = await start_worker(imap_idle_seconds=60)
        await wait_for_mails(inbox, 1, within=10, what="the first poll")
        await idle_watch.idling()
        held = await mailbox_of(app, tenant, channel["channelID"])
        assert held.lease_holder is not None  # idling holds the lease
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 10)
        took = time.monotonic() - started
        assert took < 2, f"stopping took {took:.1f} s"
        assert idle_watch.now == 0
        row = await mailbox_of(app, tenant, channel["channelID"])
        assert (row.lease_holder, row.lease_until, row.failures) == (None, None, 0)


class TestSessionIdle:
    """ImapSession.idle on its own: the answers of the IMAP layer the poller relies on."""

    @pytest.fixture
    async def session(self, dovecot: Dovecot, imap_account: ImapAccount) -> AsyncIterator[ImapSession]:
        settings = imap_account.channel_settings("starttls")
        config = ImapConfig(
            host=settings["imapHost"],
            port=settings["imapPort"],
            security="starttls",
            user=imap_account.user,
            password=imap_account.password,
            timeout=5,
            ca_file=dovecot.ca_file,
        )
        session = ImapSession(config)
        await session.open()
        await session.examine()
        try:
            yield session
        finally:
            await session.close()

    async def test_quiet_until_the_time_is_up_then_woken_by_new_mail(
        self, session: ImapSession, imap_account: ImapAccount
    ) -> None:
        assert "IDLE" in session.capabilities
        started = time.monotonic()
        assert await session.idle(0.5) is False
        assert 0.4 < time.monotonic() - started < 2
        waiting = asyncio.create_task(session.idle(30))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await asyncio.to_thread(imap_account.deliver, mail(1))
        assert await asyncio.wait_for(waiting, 5) is True
        assert time.monotonic() - started < 2
        assert [p.uid for p in await session.pending(0)] == [1]  # the connection still works

    async def test_cancelled_idle_drops_the_connection_at_once(self, session: ImapSession) -> None:
        waiting = asyncio.create_task(session.idle(30))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert time.monotonic() - started < 1
        with pytest.raises(ImapFailure, match="not connected"):  # dropped, not left to time out
            await session.pending(0)
