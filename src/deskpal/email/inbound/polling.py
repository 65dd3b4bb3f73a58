"""IMAP polling: every worker process leases the mailboxes that are due and polls each in a task of
its own, fetching by UID, never by \\Seen.

A round of one mailbox: lease it (a compare-and-set UPDATE: one poller at a time; a lease that
lapsed, its worker dead, is taken over), connect and EXAMINE its folder, compare UIDVALIDITY, list
the UIDs above the last one received, and fetch them in batches. Each batch's bytes are staged to
storage, then recorded by the pipeline (receive.py, through handoff.py) with the folder's last UID
moved past it in ONE transaction, so a worker killed mid-round refetches at most the batch it had
not committed, and the pipeline's dedupe (Message-ID, bytes) stores each mail once however often it
arrives. A changed UIDVALIDITY starts over from UID 0 under the same dedupe.

No transaction is open while the server (or the storage) answers. A failing mailbox backs off
exponentially (capped) in its own row; the others, in their own tasks, never wait for it. A round
is cut off after a time limit, and yields its mailbox after a budget of fetching (the backlog makes
it due again at once, so a big folder does not keep a worker's slot from the other mailboxes).

Where the server offers IDLE, a round that left no backlog waits in it for a bounded time (a few
mailboxes per worker at once, in threads of their own), fetching what the server announces at once
on the same connection and under the same lease (docs/mail.md, "IDLE, bounded").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from deskpal.channels import service as channels
from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.core.db import Database, transaction, utcnow
from deskpal.core.jobs import daemon
from deskpal.core.maintenance import all_tenants_maintenance
from deskpal.email import runtime as email_runtime
from deskpal.email.inbound import handoff
from deskpal.email.inbound.idling import IdleSlots, idle_or_stop
from deskpal.email.inbound.imap import ImapConfig, ImapFailure, ImapSession, Pending
from deskpal.email.inbound.imap_channel import imap_config_of
from deskpal.email.inbound.imap_models import ImapMailbox
from deskpal.email.inbound.models import InboundSource
from deskpal.email.inbound.receive import StagedMail

log = logging.getLogger("deskpal.email.imap")

BATCH_MAILS = 50  # mails per FETCH and per transaction
BATCH_BYTES = 20 * 1024 * 1024  # ... or fewer when they are big (one big mail is a batch alone)
ROUND_BUDGET_SECONDS = 30.0  # fetching before a round hands its mailbox back (due again at once)
ROUND_LIMIT_SECONDS = 300.0  # a round still running then is cut off, and counts as a failure
MAX_BACKOFF_SECONDS = 900.0
CONCURRENCY = 8  # mailboxes one worker process polls at once
TICK_SECONDS = 1.0  # how often a poller looks for due mailboxes


@dataclass(frozen=True, slots=True)
class PollSettings:
    poll_seconds: float = 5.0
    lease_seconds: float = 60.0
    timeout: float = 30.0  # each step of the IMAP conversation
    ca_file: str | None = None
    idle_seconds: float = 60.0  # how long a round may wait in IDLE; 0: never
    idle_max: int = 8  # mailboxes idling at once per poller

    @classmethod
    def from_runtime(cls) -> PollSettings:
        rt = email_runtime.runtime()
        return cls(
            poll_seconds=rt.imap_poll_seconds,
            lease_seconds=rt.imap_lease_seconds,
            timeout=rt.imap_timeout,
            ca_file=rt.imap_ca_file,
            idle_seconds=rt.imap_idle_seconds,
            idle_max=rt.imap_idle_max,
        )

    def backoff(self, failures: int) -> timedelta:
        base = max(self.poll_seconds, 1.0)
        delay = min(base * 2 ** max(failures, 1), MAX_BACKOFF_SECONDS)
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass(frozen=True, slots=True)
class Claim:
    """A mailbox this poller holds the lease of, as it stood when leased."""

    mailbox_id: int
    customer_id: int
    channel_id: int
    folder: str
    account: str | None
    uidvalidity: int | None
    last_uid: int
    failures: int


@dataclass(frozen=True, slots=True)
class RoundResult:
    mailbox_id: int
    fetched: int = 0  # mails recorded by the pipeline
    duplicates: int = 0  # ... that the channel had already
    backlog: int = 0
    error: str | None = None  # the advice recorded as last_error
    lost_lease: bool = False
    idled: bool = False  # the round waited in IDLE (and is due again at once)


class LeaseLost(Exception):
    """Another poller holds the mailbox now (this one's lease lapsed, or the channel's account
    changed): whatever this round has not committed is left to it."""


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


# --- the lease -------------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return (ImapMailbox.next_poll_at <= now) & or_(
        ImapMailbox.lease_until.is_(None), ImapMailbox.lease_until < now
    )


async def claim_due(
    db: Database, holder: str, *, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[Claim]:
    """Lease up to `limit` mailboxes due now whose lease is free or lapsed, oldest due first."""
    if limit <= 0:
        return []
    now = now or utcnow()
    # Mailboxes are every customer's: which are due is a question about all of them, like the job
    # queue's claim (core/worker.py). The compare-and-set in the UPDATE settles two pollers racing.
    async with all_tenants_maintenance(db, "lease the IMAP mailboxes due for a poll, whoever's") as session:
        probe = (
            select(ImapMailbox.imap_mailbox_id)
            .where(_due(now))
            .order_by(ImapMailbox.next_poll_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(all_tenants=True)
        )
        ids = list((await session.scalars(probe)).all())
        if not ids:
            return []
        take = (
            update(ImapMailbox)
            .where(ImapMailbox.imap_mailbox_id.in_(ids), _due(now))
            .values(lease_holder=holder, lease_until=now + timedelta(seconds=lease_seconds))
            .returning(
                ImapMailbox.imap_mailbox_id,
                ImapMailbox.customer_id,
                ImapMailbox.channel_id,
                ImapMailbox.folder,
                ImapMailbox.account,
                ImapMailbox.uidvalidity,
                ImapMailbox.last_uid,
                ImapMailbox.failures,
            )
            .execution_options(all_tenants=True, synchronize_session=False)
        )
        return [
            Claim(
                mailbox_id=row[0],
                customer_id=row[1],
                channel_id=row[2],
                folder=row[3],
                account=row[4],
                uidvalidity=row[5],
                last_uid=row[6],
                failures=row[7],
            )
            for row in (await session.execute(take)).all()
        ]


def _held(claim: Claim, holder: str) -> Any:
    return (ImapMailbox.imap_mailbox_id == claim.mailbox_id) & (ImapMailbox.lease_holder == holder)


async def _update_held(db: Database, claim: Claim, holder: str, **values: Any) -> bool:
    """Write `values` to the mailbox if this poller still holds it; whether it did."""
    async with transaction(db, customer_id=claim.customer_id) as session:
        return await _update_held_in(session, claim, holder, **values)


async def _update_held_in(session: Any, claim: Claim, holder: str, **values: Any) -> bool:
    stmt = (
        update(ImapMailbox)
        .where(_held(claim, holder))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def _keep_lease(db: Database, claim: Claim, holder: str, settings: PollSettings) -> None:
    """Renew the lease every third of it until cancelled; return once it is found lost."""
    while True:
        await asyncio.sleep(settings.lease_seconds / 3)
        try:
            until = utcnow() + timedelta(seconds=settings.lease_seconds)
            if not await _update_held(db, claim, holder, lease_until=until):
                return
        except Exception:  # the database is away: keep trying while the lease may still hold
            log.warning("renewing the lease of IMAP mailbox %s failed", claim.mailbox_id, exc_info=True)


# --- one round ------------------------------------------------------------------------------------


def _batches(pending: Sequence[Pending]) -> list[Pending]:
    """The next batch: up to BATCH_MAILS, and no more than BATCH_BYTES unless one mail is bigger."""
    batch: list[Pending] = []
    size = 0
    for item in pending:
        if batch and (len(batch) >= BATCH_MAILS or size + item.size > BATCH_BYTES):
            break
        batch.append(item)
        size += item.size
    return batch


async def _config(db: Database, claim: Claim, settings: PollSettings) -> ImapConfig | None:
    async with transaction(db, write=False, customer_id=claim.customer_id) as session:
        channel = await session.get(Channel, claim.channel_id)
        if channel is None:
            return None
        return imap_config_of(channel, ca_file=settings.ca_file, timeout=settings.timeout)


async def _commit_batch(
    db: Database,
    claim: Claim,
    holder: str,
    staged: Sequence[StagedMail],
    *,
    last_uid: int,
    backlog: int,
    settings: PollSettings,
) -> int:
    """Record each staged mail and move last_uid past them, in one transaction; how many were
    duplicates."""
    duplicates = 0
    async with (
        handoff.dropped_unless_recorded(staged),
        transaction(db, customer_id=claim.customer_id) as session,
    ):
        ctx = Ctx.worker(session, claim.customer_id)
        channel = await channels.get_channel(ctx, claim.channel_id)
        for mail in staged:
            stored = await handoff.record(ctx, channel, mail, source=InboundSource.IMAP)
            duplicates += stored.duplicate
        moved = await _update_held_in(
            session,
            claim,
            holder,
            last_uid=last_uid,
            backlog=backlog,
            lease_until=utcnow() + timedelta(seconds=settings.lease_seconds),
        )
        if not moved:
            raise LeaseLost  # rolls the batch back: the new holder fetches it again
    return duplicates


async def _staged(claim: Claim, raws: Sequence[bytes]) -> list[StagedMail]:
    """The batch staged, or none of it: a mail that cannot be written fails the batch (fetched
    again at the next try) and what was written of it is removed."""
    results = await handoff.stage_many(claim.customer_id, raws)
    staged = [r for r in results if not isinstance(r, Exception)]
    failed = next((r for r in results if isinstance(r, Exception)), None)
    if failed is not None:
        await handoff.drop(staged)
        raise failed
    return staged


async def _fetch_round(
    db: Database,
    claim: Claim,
    holder: str,
    config: ImapConfig,
    settings: PollSettings,
    stop: asyncio.Event,
    idle: IdleSlots | None = None,
) -> RoundResult:
    session = ImapSession(config)
    try:
        async with asyncio.timeout(ROUND_LIMIT_SECONDS):
            await session.open()
            last_uid = await _examined(db, claim, holder, config, session)
            fetched, duplicates, backlog, last_uid = await _fetch_new(
                db, claim, holder, session, settings, stop, last_uid
            )
        result = RoundResult(claim.mailbox_id, fetched=fetched, duplicates=duplicates, backlog=backlog)
        if (
            backlog
            or idle is None
            or settings.idle_seconds <= 0
            or stop.is_set()
            or "IDLE" not in session.capabilities
            or not idle.acquire()
        ):
            return result
        try:
            return await _idle_round(db, claim, holder, session, settings, stop, last_uid, result)
        finally:
            idle.release()
    finally:
        await session.close()


async def _examined(db: Database, claim: Claim, holder: str, config: ImapConfig, session: ImapSession) -> int:
    """EXAMINE the folder; the UID to fetch after (0 when UIDVALIDITY or the account changed)."""
    state = await session.examine()
    last_uid = claim.last_uid
    if claim.uidvalidity != state.uidvalidity or claim.account != config.account:
        if claim.uidvalidity is not None:
            log.warning(
                "IMAP mailbox %s (%s %s): UIDVALIDITY %s is now %s; fetching it all again (the pipeline "
                "drops what it has already)",
                claim.mailbox_id,
                config.server,
                config.folder,
                claim.uidvalidity,
                state.uidvalidity,
            )
        # UIDs of another UIDVALIDITY (or another account) name other messages: from UID 0.
        # A first poll (uidvalidity None, account None after the migration) keeps its last_uid.
        if claim.uidvalidity is not None or (claim.account is not None and claim.account != config.account):
            last_uid = 0
        if not await _update_held(
            db, claim, holder, uidvalidity=state.uidvalidity, last_uid=last_uid, account=config.account
        ):
            raise LeaseLost
    return last_uid


async def _fetch_new(
    db: Database,
    claim: Claim,
    holder: str,
    session: ImapSession,
    settings: PollSettings,
    stop: asyncio.Event,
    last_uid: int,
) -> tuple[int, int, int, int]:
    """Fetch what is above `last_uid` in batches, each committed with its last UID: (fetched,
    duplicates, backlog, the last UID now)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    fetched = duplicates = 0
    pending = await session.pending(last_uid)
    while pending and not stop.is_set():  # at least one batch a round, however slow
        batch = _batches(pending)
        mails = await session.fetch([p.uid for p in batch])
        pending = pending[len(batch) :]
        # The bytes to storage before the transaction (which S3 must not be called inside).
        staged = await _staged(claim, [mail.raw for mail in mails])
        duplicates += await _commit_batch(
            db, claim, holder, staged, last_uid=batch[-1].uid, backlog=len(pending), settings=settings
        )
        last_uid = batch[-1].uid
        fetched += len(mails)
        if loop.time() - started >= ROUND_BUDGET_SECONDS:
            break
    return fetched, duplicates, len(pending), last_uid


async def _idle_round(
    db: Database,
    claim: Claim,
    holder: str,
    session: ImapSession,
    settings: PollSettings,
    stop: asyncio.Event,
    last_uid: int,
    result: RoundResult,
) -> RoundResult:
    """Wait in IDLE on the round's connection for up to `settings.idle_seconds` (the lease renewed
    meanwhile by poll_mailbox's keeper), fetching at once whatever the server announces, then
    waiting on for the rest of the time. Ends early when the worker stops or a fetch leaves a
    backlog (the mailbox is then due again at once, as any round with a backlog)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.idle_seconds
    fetched, duplicates, backlog = result.fetched, result.duplicates, 0
    while not stop.is_set() and (left := deadline - loop.time()) > 0:
        if not await idle_or_stop(session, left, stop):
            break
        async with asyncio.timeout(ROUND_LIMIT_SECONDS):
            more, dup, backlog, last_uid = await _fetch_new(
                db, claim, holder, session, settings, stop, last_uid
            )
        fetched, duplicates = fetched + more, duplicates + dup
        if more:
            log.info("IMAP mailbox %s: %d mails in while idling (%d duplicates)", claim.mailbox_id, more, dup)
        if backlog:
            break
    return RoundResult(claim.mailbox_id, fetched=fetched, duplicates=duplicates, backlog=backlog, idled=True)


async def poll_mailbox(
    db: Database,
    claim: Claim,
    holder: str,
    settings: PollSettings,
    stop: asyncio.Event | None = None,
    idle: IdleSlots | None = None,
) -> RoundResult:
    """One round of one leased mailbox, to its recorded outcome (the lease released); with `idle`,
    a round that left no backlog may wait in IDLE (a slot free, the server offering it). Never
    raises but for cancellation."""
    stop = stop or asyncio.Event()
    work = asyncio.create_task(_round(db, claim, holder, settings, stop, idle))
    lease = asyncio.create_task(_keep_lease(db, claim, holder, settings))
    try:
        await asyncio.wait({work, lease}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lease.cancel()
        if not work.done():  # the lease was lost, or this poller is being cancelled
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        with contextlib.suppress(asyncio.CancelledError):
            await lease
    if work.cancelled():
        log.warning("IMAP mailbox %s: lost its lease mid-round; stopped, recording nothing", claim.mailbox_id)
        return RoundResult(claim.mailbox_id, lost_lease=True)
    return work.result()


async def _round(
    db: Database,
    claim: Claim,
    holder: str,
    settings: PollSettings,
    stop: asyncio.Event,
    idle: IdleSlots | None,
) -> RoundResult:
    try:
        return await _round_recorded(db, claim, holder, settings, stop, idle)
    except Exception as exc:  # recording the outcome failed (the database is away): the lease lapses
        log.exception("IMAP mailbox %s: the poll's outcome could not be recorded", claim.mailbox_id)
        return RoundResult(claim.mailbox_id, error=f"{type(exc).__name__}: {exc}")


async def _round_recorded(
    db: Database,
    claim: Claim,
    holder: str,
    settings: PollSettings,
    stop: asyncio.Event,
    idle: IdleSlots | None,
) -> RoundResult:
    try:
        config = await _config(db, claim, settings)
    except Exception as exc:
        return await _failed(db, claim, holder, settings, f"reading the channel failed: {exc}")
    if config is None or config.folder != claim.folder:
        # The channel no longer polls this folder (a save marks that too): not due until it does.
        await _update_held(db, claim, holder, next_poll_at=None, lease_holder=None, lease_until=None)
        return RoundResult(claim.mailbox_id)
    try:
        # Cut off after ROUND_LIMIT_SECONDS of talking to the server (the time in IDLE not counted).
        result = await _fetch_round(db, claim, holder, config, settings, stop, idle)
    except LeaseLost:
        log.warning(
            "IMAP mailbox %s: another poller holds it now; this round records nothing", claim.mailbox_id
        )
        return RoundResult(claim.mailbox_id, lost_lease=True)
    except ImapFailure as failure:
        log.warning("IMAP mailbox %s (%s): %s", claim.mailbox_id, config.server, failure)
        return await _failed(db, claim, holder, settings, failure.advice())
    except TimeoutError:
        text = f"The poll of {config.server} took longer than {ROUND_LIMIT_SECONDS:g} s and was cut off."
        return await _failed(db, claim, holder, settings, text)
    except Exception as exc:  # storing failed (the database, the file store): fetched again later
        log.exception("IMAP mailbox %s: storing the fetched mail failed", claim.mailbox_id)
        return await _failed(db, claim, holder, settings, f"Storing the fetched mail failed ({exc}).")
    now = utcnow()
    # After IDLE, due again at once: the wait just ended is as good as a poll, and the next round
    # (a slot permitting) watches again, so a mailbox on an IDLE server is watched without gaps.
    due = now if result.backlog or result.idled else now + timedelta(seconds=settings.poll_seconds)
    recorded = await _update_held(
        db,
        claim,
        holder,
        failures=0,
        last_error=None,
        last_fetch_at=now,
        backlog=result.backlog,
        next_poll_at=due,
        lease_holder=None,
        lease_until=None,
    )
    if result.fetched:
        log.info(
            "IMAP mailbox %s: %d mails in (%d duplicates), %d left",
            claim.mailbox_id,
            result.fetched,
            result.duplicates,
            result.backlog,
        )
    return result if recorded else RoundResult(claim.mailbox_id, lost_lease=True)


async def _failed(db: Database, claim: Claim, holder: str, settings: PollSettings, text: str) -> RoundResult:
    now = utcnow()
    failures = claim.failures + 1
    with contextlib.suppress(Exception):  # the database is away too: the lease lapses, all is tried again
        await _update_held(
            db,
            claim,
            holder,
            failures=failures,
            last_error=text[:4000],
            last_error_at=now,
            next_poll_at=now + settings.backoff(failures),
            lease_holder=None,
            lease_until=None,
        )
    return RoundResult(claim.mailbox_id, error=text)


# --- the poller -----------------------------------------------------------------------------------


class Poller:
    """Leases due mailboxes and polls each in its own task, up to `concurrency` at once."""

    def __init__(
        self,
        db: Database,
        settings: PollSettings,
        *,
        concurrency: int = CONCURRENCY,
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.concurrency = concurrency
        self.holder = holder or holder_name()
        self.idle = IdleSlots(settings.idle_max)
        self._running: set[asyncio.Task[RoundResult]] = set()

    async def start_due(self, stop: asyncio.Event) -> int:
        """Lease what is due for the free slots and start polling it; how many started. A round
        waiting in IDLE holds an idle slot, not one of the `concurrency` polling slots."""
        free = self.concurrency - (len(self._running) - self.idle.in_use)
        claims = await claim_due(self.db, self.holder, limit=free, lease_seconds=self.settings.lease_seconds)
        for claim in claims:
            task = asyncio.create_task(
                poll_mailbox(self.db, claim, self.holder, self.settings, stop, self.idle),
                name=f"imap-{claim.mailbox_id}",
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(claims)

    async def run(self, stop: asyncio.Event) -> None:
        tick = min(TICK_SECONDS, self.settings.poll_seconds)
        try:
            while not stop.is_set():
                try:
                    await self.start_due(stop)
                except Exception:
                    log.exception("IMAP poller %s: leasing mailboxes failed; trying again", self.holder)
                waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait()), *self._running}
                try:
                    await asyncio.wait(waiters, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        if waiter not in self._running:
                            waiter.cancel()
        except asyncio.CancelledError:
            for task in self._running:
                task.cancel()
            raise
        finally:
            # Stopping: each round ends after its current batch (it watches `stop`) and records it.
            await asyncio.gather(*self._running, return_exceptions=True)

    async def poll_due(self) -> list[RoundResult]:
        """Poll every mailbox due now until none is (a backlog is due again at once), and wait for
        the rounds: for tests and one-off runs."""
        results: list[RoundResult] = []
        while True:
            settings = self.settings
            claims = await claim_due(
                self.db, self.holder, limit=self.concurrency, lease_seconds=settings.lease_seconds
            )
            if not claims:
                return results
            results += await asyncio.gather(
                *(poll_mailbox(self.db, c, self.holder, settings) for c in claims)
            )


@daemon("email.imap_poll")
async def poll_imap_mailboxes(db: Database, stop: asyncio.Event) -> None:
    """Every worker's IMAP poller (docs/mail.md, "IMAP and import")."""
    await Poller(db, PollSettings.from_runtime()).run(stop)
