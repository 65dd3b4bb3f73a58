"""IMAP polling against the real Dovecot, on both databases: by UID (never by \\Seen), in batches
committed with the folder's last UID, one poller per mailbox (a lease), UIDVALIDITY changes,
backoff of a failing mailbox while the others go on, and what the channel shows.

What came in is read from the pipeline's InboundMail rows (inbox.py): every committed arrival is a
row, an original or a duplicate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from deskpal.core.db import transaction, utcnow
from deskpal.core.worker import Worker
from deskpal.email import runtime as email_runtime
from deskpal.email.inbound import polling
from deskpal.email.inbound.imap_models import ImapMailbox
from deskpal.email.inbound.polling import LeaseLost, claim_due, poll_mailbox
from tests.mail_in_imap.conftest import make_channel, poll_now, poll_settings
from tests.mail_in_imap.dovecot import Dovecot, ImapAccount
from tests.mail_in_imap.inbox import Inbox, message_id_of
from tests.support import Tenant, db_of


def mail(n: int, *, to: str = "support@acme.test", body: str = "Where is my order?") -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.test>\r\nTo: {to}\r\nSubject: Order {n}\r\n"
        f"Date: Sat, 06 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <order-{n}-{uuid.uuid4().hex}@example.test>\r\n\r\n{body} ({n})\r\n"
    ).encode()


async def mailbox_of(app: FastAPI, tenant: Tenant, channel_id: int) -> ImapMailbox:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        stmt = select(ImapMailbox).where(
            ImapMailbox.channel_id == channel_id, ImapMailbox.next_poll_at.is_not(None)
        )
        return (await db.scalars(stmt)).one()


async def until(check: Any, *, within: float, what: str) -> float:
    """Seconds it took for `check()` to hold; fails after `within`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def fast_polling(app: FastAPI, dovecot: Dovecot) -> None:
    """The workers' pollers (email runtime) poll every 0.2 s with a 5 s lease, trusting Dovecot's CA."""
    settings = app.state.settings.model_copy(
        update={"imap_poll_seconds": 0.2, "imap_lease_seconds": 5, "imap_timeout_seconds": 5}
    )
    email_runtime.configure(settings, app.state.storage)


@pytest.fixture
async def worker(app: FastAPI, fast_polling: None) -> AsyncIterator[Worker]:
    """A worker running in the test's loop, its IMAP poller included, until the test ends."""
    stop = asyncio.Event()
    running = Worker(db_of(app), poll_seconds=0.05)
    task = asyncio.create_task(running.run_forever(stop))
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class TestFetching:
    async def test_new_mail_arrives_within_seconds_through_the_worker(
        self,
        client: httpx.AsyncClient,
        tenant: Tenant,
        imap_account: ImapAccount,
        inbox: Inbox,
        worker: Worker,
    ) -> None:
        channel = await make_channel(client, tenant, imap_account)
        first = mail(1)
        imap_account.deliver(first)

        async def arrived(n: int) -> bool:
            return sum((await inbox.originals()).values()) >= n

        await until(lambda: arrived(1), within=10, what="the mail in the folder before the channel")
        second = mail(2)
        imap_account.deliver(second)
        took = await until(lambda: arrived(2), within=10, what="a new mail")
        assert took < 3, f"a new mail took {took:.1f} s"
        assert await inbox.raws() == [first, second]  # the bytes as the server held them
        rows = await inbox.rows()
        assert {(r.channel_id, r.source) for r in rows} == {(channel["channelID"], "imap")}

    async def test_a_mail_read_elsewhere_is_fetched_and_no_flag_is_changed(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        read = imap_account.deliver(mail(1), seen=True)  # opened in someone's mail client already
        unread = imap_account.deliver(mail(2))
        await make_channel(client, tenant, imap_account)
        await poll_now(app, dovecot)
        assert sum((await inbox.originals()).values()) == 2
        assert "\\Seen" in imap_account.flags(read)
        assert "\\Seen" not in imap_account.flags(unread)

    async def test_each_poll_takes_only_what_came_since(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        channel = await make_channel(client, tenant, imap_account)
        for n in range(3):
            imap_account.deliver(mail(n))
        await poll_now(app, dovecot)
        uids = [imap_account.deliver(mail(n)) for n in range(3, 5)]
        await poll_now(app, dovecot)  # nothing is due yet: polled every 0.2 s
        await asyncio.sleep(0.25)
        await poll_now(app, dovecot)
        assert list((await inbox.arrivals()).values()) == [1] * 5
        row = await mailbox_of(app, tenant, channel["channelID"])
        assert (row.last_uid, row.backlog, row.failures) == (uids[-1], 0, 0)
        assert row.uidvalidity == imap_account.uidvalidity()
        assert row.lease_holder is None and row.last_fetch_at is not None

    async def test_a_big_folder_is_fetched_in_batches_showing_its_backlog(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        for n in range(23):
            imap_account.deliver(mail(n))
        monkeypatch.setattr(polling, "BATCH_MAILS", 10)
        monkeypatch.setattr(polling, "ROUND_BUDGET_SECONDS", 0.0)  # one batch per round
        channel = await make_channel(client, tenant, imap_account)
        db = db_of(app)
        settings = poll_settings(dovecot)
        (claim,) = await claim_due(db, "test", limit=5, lease_seconds=5)
        result = await poll_mailbox(db, claim, "test", settings)
        assert (result.fetched, result.backlog) == (10, 13)
        shown = (await client.get(f"/api/Channels/{channel['channelID']}", headers=tenant.headers)).json()
        assert shown["imapStatus"]["backlog"] == 13 and shown["imapStatus"]["lastFetchAt"] is not None
        results = await poll_now(app, dovecot)  # due again at once while there is a backlog
        assert [r.fetched for r in results] == [10, 3]
        assert sum((await inbox.originals()).values()) == 23
        assert (await mailbox_of(app, tenant, channel["channelID"])).backlog == 0

    async def test_the_folder_named_is_the_one_polled(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        imap_account.create_folder("Support")
        imap_account.deliver(mail(1))  # INBOX: not the channel's
        wanted = mail(2)
        imap_account.deliver(wanted, folder="Support")
        await make_channel(client, tenant, imap_account, imapFolder="Support")
        await poll_now(app, dovecot)
        assert await inbox.raws() == [wanted]


class TestLease:
    async def test_one_poller_holds_a_mailbox_until_its_lease_lapses(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        imap_account.deliver(mail(1))
        await make_channel(client, tenant, imap_account)
        db = db_of(app)
        (held,) = await claim_due(db, "first", limit=5, lease_seconds=5)
        assert await claim_due(db, "second", limit=5, lease_seconds=5) == []
        later = utcnow() + timedelta(seconds=6)  # the first poller died: its lease lapsed
        (taken,) = await claim_due(db, "second", limit=5, lease_seconds=5, now=later)
        assert taken.mailbox_id == held.mailbox_id
        # The first poller, back from a long pause, finds the mailbox gone: it records nothing.
        late = await poll_mailbox(db, held, "first", poll_settings(dovecot))
        assert late.lost_lease and await inbox.rows() == []
        done = await poll_mailbox(db, taken, "second", poll_settings(dovecot))
        assert done.fetched == 1 and sum((await inbox.arrivals()).values()) == 1

    async def test_a_poll_cut_off_mid_batch_leaves_only_that_batch_to_fetch_again(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        sent = [mail(n) for n in range(12)]
        for raw in sent:
            imap_account.deliver(raw)
        monkeypatch.setattr(polling, "BATCH_MAILS", 5)
        channel = await make_channel(client, tenant, imap_account)
        db = db_of(app)
        recorded = 0
        record = polling.handoff.record
        cut = asyncio.Event()

        async def slow_record(*args: Any, **kwargs: Any) -> Any:
            nonlocal recorded
            recorded += 1
            if recorded == 8:  # the third mail of the second batch: the worker dies here
                cut.set()
                await asyncio.sleep(60)
            return await record(*args, **kwargs)

        monkeypatch.setattr(polling.handoff, "record", slow_record)
        (claim,) = await claim_due(db, "doomed", limit=5, lease_seconds=5)
        task = asyncio.create_task(poll_mailbox(db, claim, "doomed", poll_settings(dovecot)))
        await asyncio.wait_for(cut.wait(), 10)
        task.cancel()  # as SIGKILL would: the batch's transaction never commits
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sum((await inbox.arrivals()).values()) == 5  # the first batch only
        assert (await mailbox_of(app, tenant, channel["channelID"])).last_uid == 5
        monkeypatch.setattr(polling.handoff, "record", record)
        later = utcnow() + timedelta(seconds=6)
        (taken,) = await claim_due(db, "heir", limit=5, lease_seconds=5, now=later)
        await poll_mailbox(db, taken, "heir", poll_settings(dovecot))
        arrived = await inbox.arrivals()
        assert set(arrived.values()) == {1} and set(arrived) == {message_id_of(m) for m in sent}


class TestFailures:
    async def test_a_refused_login_backs_off_and_the_other_channel_still_fetches(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        inbox: Inbox,
        worker: Worker,
    ) -> None:
        good_account, bad_account = dovecot.add_account(), dovecot.add_account()
        bad = await make_channel(client, tenant, bad_account, imapPassword="not-the-password")
        good = await make_channel(client, tenant, good_account)
        expected = []
        for n in range(5):
            expected.append(mail(n))
            good_account.deliver(expected[-1])
            await asyncio.sleep(0.5)

        async def all_arrived() -> bool:
            return len(await inbox.originals()) == len(expected)

        await until(all_arrived, within=10, what="the good channel's mail")
        assert {r.channel_id for r in await inbox.rows()} == {good["channelID"]}
        row = await mailbox_of(app, tenant, bad["channelID"])
        # 2.5 s at a poll every 0.2 s would be a dozen tries; backing off (2 s, 4 s, …) leaves two.
        assert 1 <= row.failures <= 2, row.failures
        assert row.next_poll_at is not None and row.last_error_at is not None
        assert row.next_poll_at - row.last_error_at >= timedelta(seconds=1.5)  # not the 0.2 s poll
        shown = (await client.get(f"/api/Channels/{bad['channelID']}", headers=tenant.headers)).json()
        status = shown["imapStatus"]
        assert (
            "refused the sign-in" in status["lastError"]
            and "check imapUser/imapPassword" in status["lastError"]
        )
        assert status["lastFetchAt"] is None and status["lastErrorAt"] is not None
        assert "not-the-password" not in str(shown)
        good_status = (await client.get(f"/api/Channels/{good['channelID']}", headers=tenant.headers)).json()
        assert good_status["imapStatus"]["lastError"] is None and good_status["imapStatus"]["backlog"] == 0

    async def test_the_backoff_grows_and_saving_the_channel_retries_at_once(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        imap_account.deliver(mail(1))
        wrong = imap_account.channel_settings(imapPassword="wrong")
        channel = await make_channel(client, tenant, imap_account, imapPassword="wrong")
        db = db_of(app)
        settings = poll_settings(dovecot)
        delays = []
        for _ in range(3):
            now = utcnow() + timedelta(hours=len(delays))  # each try once the last backoff is over
            (claim,) = await claim_due(db, "test", limit=1, lease_seconds=5, now=now)
            result = await poll_mailbox(db, claim, "test", settings)
            assert result.error and "refused the sign-in" in result.error
            row = await mailbox_of(app, tenant, channel["channelID"])
            assert row.next_poll_at is not None
            delays.append((row.next_poll_at - utcnow()).total_seconds())
        assert delays[0] < delays[1] < delays[2] <= polling.MAX_BACKOFF_SECONDS * 1.2
        fixed = {**wrong, "imapPassword": imap_account.password}
        r = await client.put(
            f"/api/Channels/{channel['channelID']}",
            json={"name": "fixed", "settings": fixed},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        await poll_now(app, dovecot)  # due at once: no waiting out the backoff
        row = await mailbox_of(app, tenant, channel["channelID"])
        assert (row.failures, row.last_error) == (0, None)
        assert sum((await inbox.originals()).values()) == 1

    async def test_a_lost_lease_at_commit_rolls_the_batch_back(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        imap_account.deliver(mail(1))
        await make_channel(client, tenant, imap_account)
        db = db_of(app)
        (claim,) = await claim_due(db, "mine", limit=1, lease_seconds=5)
        await claim_due(db, "thief", limit=1, lease_seconds=5, now=utcnow() + timedelta(seconds=6))
        with pytest.raises(LeaseLost):
            await polling._commit_batch(
                db, claim, "mine", [], last_uid=1, backlog=0, settings=poll_settings(dovecot)
            )


class TestUidValidity:
    async def test_a_new_uidvalidity_fetches_the_folder_again_from_uid_zero(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        dovecot: Dovecot,
        imap_account: ImapAccount,
        inbox: Inbox,
    ) -> None:
        imap_account.create_folder("Support")
        sent = [mail(n) for n in range(3)]
        for raw in sent:
            imap_account.deliver(raw, folder="Support")
        channel = await make_channel(client, tenant, imap_account, imapFolder="Support")
        await poll_now(app, dovecot)
        before = await mailbox_of(app, tenant, channel["channelID"])
        new_validity = imap_account.reset_uidvalidity("Support")  # same mail, new UIDs
        assert new_validity != before.uidvalidity
        await asyncio.sleep(0.25)
        await poll_now(app, dovecot)
        after = await mailbox_of(app, tenant, channel["channelID"])
        assert (after.uidvalidity, after.last_uid) == (new_validity, 3)
        ids = {message_id_of(m) for m in sent}
        # Each arrived again, under its new UID: the pipeline knew it (a `duplicate` row), so
        # nothing is stored twice.
        assert await inbox.arrivals() == dict.fromkeys(ids, 2)
        assert await inbox.originals() == dict.fromkeys(ids, 1)
