"""The email.receive job: recorded mails parsed, threaded and filed, under a time limit.

A batch kind (core/jobs.py, batch_job): the worker hands up to BATCH due mails of one customer to
one call. Steps, each outside the others' transactions: the rows read (one short transaction),
each mail's raw bytes read, parsed and its attachments' bytes stored (no transaction: storage and
CPU), then every parsed mail filed and its row marked in ONE write transaction, each mail in a
savepoint of its own, and the failures' rows written in one more. Whatever goes wrong for a mail
ends with its row `failed` and a readable error, its raw bytes kept for GET .../raw and
POST .../retry; a failing mail fails alone and never holds up the next ones (each keeps its own
job, attempts and outcome). A storage or database hiccup is retried (with backoff) before it counts
as a failure. Mails of one thread never share a batch (their jobs' ordering key), and a batch
files in arrival order. docs/mail.md, "Inbound pipeline" and "Filing in batches".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.jobs import BatchItem, JobBatch, JobContext, RetryableJobError, batch_job
from deskpal.email.inbound import filing
from deskpal.email.inbound.lookups import Lookups
from deskpal.email.inbound.models import InboundMail, InboundStatus
from deskpal.email.inbound.parse import parse
from deskpal.email.inbound.parsed import MailKind, ParsedMail
from deskpal.email.inbound.receive import RECEIVE_KIND, ReceiveMail
from deskpal.storage import BlobNotFound, Storage, storage_for
from deskpal.storage import jobs as blob_jobs
from deskpal.storage.base import StoredBlob

log = logging.getLogger("deskpal.email")

MAX_ATTEMPTS = 5
# Mails of one customer filed in one call and one transaction. The larger, the less each costs
# (a commit, the claim, the lookups), and the longer one batch holds SQLite's write lock.
BATCH = 20
TIME_LIMIT_SECONDS = 180.0
# Parsing alone gets less than the job's limit, so that a mail the parser chokes on is marked
# failed by this job rather than cut off by the worker (which would retry it to no end).
PARSE_SECONDS = 60.0
# A batch starts no new mail after this long (a parser choking on several in a row): the call's
# time limit must leave room for filing those parsed. The rest run again at once.
PARSE_BUDGET_SECONDS = 60.0
_ERROR_CHARS = 2000
_ATTACHMENTS = "attachments"  # the attachments' storage area (attachments/service.py)


class _Unfileable(Exception):
    """The mail cannot be filed however often it is tried (its channel is gone)."""


def _words(step: str, exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{step}: {type(exc).__name__}{': ' + text if text else ''}"[:_ERROR_CHARS]


def last_attempt(job: JobContext) -> bool:
    return job.attempt >= job.max_attempts


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _store_attachments(job: JobContext, store: Storage, mail: ParsedMail) -> list[StoredBlob]:
    if mail.kind is MailKind.BOUNCE:
        return []  # a report's quoted mail is never a message's attachment
    prefix = blob_jobs.prefix_of(_ATTACHMENTS, job.customer_id)
    return [await store.put(prefix, _once(a.data), max_bytes=max(len(a.data), 1)) for a in mail.attachments]


async def _drop(store: Storage, blobs: list[StoredBlob]) -> None:
    for blob in blobs:
        try:
            await store.delete(blob.key)
        except Exception:  # the orphan sweeper removes what is left
            log.warning("could not delete blob %s of a mail not filed", blob.key, exc_info=True)


@dataclass(slots=True)
class _Mail:
    """One mail of a batch, from its row's key to its outcome."""

    item: BatchItem
    payload: ReceiveMail
    key: str
    store: Storage
    parsed: ParsedMail | None = None
    blobs: list[StoredBlob] = field(default_factory=list)
    failure: str | None = None  # why its row ends failed (written after the filing transaction)

    @property
    def job(self) -> JobContext:
        return self.item.job


async def _begin_all(batch: JobBatch) -> list[_Mail]:
    """The batch's rows still to be filed, in one transaction (a write only when one of the jobs is
    on its last attempt: that one first marks its row failed, see _begin_row)."""
    by_id = {item.payload.inbound_mail_id: item for item in batch.items}
    write = any(last_attempt(item.job) for item in batch.items)
    mails: list[_Mail] = []
    async with batch.db(write=write) as ctx:
        stmt = select(InboundMail).where(InboundMail.inbound_mail_id.in_(list(by_id)))
        found = {row.inbound_mail_id: row for row in (await ctx.db.scalars(stmt)).all()}
        for item in sorted(batch.items, key=lambda i: i.job.job_id):  # arrival order
            row = found.get(item.payload.inbound_mail_id)
            if row is None or row.status != InboundStatus.PENDING.value:
                continue  # filed by an earlier attempt, or not to be filed
            if last_attempt(item.job):
                _begin_row(item.job, row)
            mails.append(_Mail(item, item.payload, row.storage_key, storage_for(item.payload.storage)))
        if write:
            await ctx.db.flush()
    return mails


def _begin_row(job: JobContext, row: InboundMail) -> None:
    """The last attempt marks the row failed before it starts, so that a mail whose every attempt
    is cut off (a crash, the time limit) ends failed, not pending forever; the filing overwrites it."""
    row.status = InboundStatus.FAILED.value
    row.attempts += 1
    row.error = (
        f"attempt {job.attempt} of {job.max_attempts}: the earlier attempts did not finish "
        "(the worker stopped, or a time limit)"
    )


async def _read_and_parse(batch: JobBatch, mail: _Mail) -> None:
    """The raw bytes read, parsed, and the attachments' bytes stored; what fails sets mail.failure
    (the row ends failed) or fails the job to be retried (mail.item.fail)."""
    last = last_attempt(mail.job)
    try:
        async with batch.call_out():
            raw = await mail.store.read_all(mail.key)
    except BlobNotFound:
        mail.failure = f"the raw mail is missing from storage (key {mail.key})"
        return
    except Exception as exc:
        _retry_or_fail(mail, _words("reading the raw mail", exc), exc, last)
        return
    try:
        mail.parsed = await asyncio.wait_for(asyncio.to_thread(parse, raw), PARSE_SECONDS)
    except TimeoutError:
        mail.failure = f"parsing: took longer than {PARSE_SECONDS:g} s"
        return
    except Exception as exc:
        log.warning("inbound mail %s: the parser failed", mail.payload.inbound_mail_id, exc_info=True)
        mail.failure = _words("parsing", exc)
        return
    try:
        async with batch.call_out():
            mail.blobs = await _store_attachments(mail.job, mail.store, mail.parsed)
    except Exception as exc:
        _retry_or_fail(mail, _words("storing its attachments", exc), exc, last)


def _retry_or_fail(mail: _Mail, words: str, exc: Exception, last: bool) -> None:
    if last:
        mail.failure = words
    else:
        mail.item.fail(RetryableJobError(words))


async def _file_all(batch: JobBatch, mails: list[_Mail]) -> None:
    """Every parsed mail filed in ONE write transaction, each in a savepoint of its own: a mail
    that fails to file is rolled back alone (its row ends failed, or its job retries), the others
    commit together. A failure of the transaction itself (the commit) fails the whole batch, to be
    retried."""
    todo = [m for m in mails if m.parsed is not None and m.failure is None and m.item.error is None]
    if not todo:
        return
    async with batch.db() as ctx:
        ids = [m.payload.inbound_mail_id for m in todo]
        stmt = select(InboundMail).where(InboundMail.inbound_mail_id.in_(ids))
        rows = {row.inbound_mail_id: row for row in (await ctx.db.scalars(stmt)).all()}
        channels: dict[int, Channel | None] = {}
        lookups = Lookups()
        await lookups.prefetch(ctx, [m.parsed for m in todo if m.parsed is not None])
        for mail in todo:
            row = rows.get(mail.payload.inbound_mail_id)
            await _file_one(ctx, mail, row, channels, lookups)


async def _file_one(
    ctx: Ctx,
    mail: _Mail,
    row: InboundMail | None,
    channels: dict[int, Channel | None],
    lookups: Lookups,
) -> None:
    assert mail.parsed is not None
    if row is not None and row.status == InboundStatus.STORED.value:
        return  # an attempt whose lease had lapsed filed it meanwhile
    known = set(ctx.db.identity_map.keys())
    try:
        if row is None:
            raise _Unfileable("its row was deleted")
        channel_id = row.channel_id
        if channel_id is not None and channel_id not in channels:
            channels[channel_id] = await ctx.db.get(Channel, channel_id)
        channel = channels.get(channel_id) if channel_id is not None else None
        if channel is None:
            raise _Unfileable("its channel was deleted")
        async with ctx.db.begin_nested():
            await filing.file_mail(
                ctx,
                mail.store,
                row,
                channel,
                mail.parsed,
                mail.blobs,
                lookups=lookups,
                # The last attempt counted itself when it began.
                count_attempt=not last_attempt(mail.job),
            )
    except Exception as exc:
        # What the savepoint took back is no longer in the database: nor in the session (rows
        # written past the unit of work are not expunged by the rollback itself).
        for key in set(ctx.db.identity_map.keys()) - known:
            ctx.db.expunge(ctx.db.identity_map[key])
        lookups.forget(mail.parsed.message_id)
        transient = isinstance(exc, SQLAlchemyError) and not isinstance(exc, IntegrityError)
        words = _words("filing", exc)
        if transient and not last_attempt(mail.job):
            mail.item.fail(RetryableJobError(words))
        else:
            log.warning("inbound mail %s: filing failed", mail.payload.inbound_mail_id, exc_info=True)
            mail.failure = words


async def _fail_all(batch: JobBatch, failed: list[_Mail]) -> None:
    """The rows of the mails that failed marked failed with their errors, in one transaction."""
    if not failed:
        return
    async with batch.db() as ctx:
        ids = [m.payload.inbound_mail_id for m in failed]
        stmt = select(InboundMail).where(InboundMail.inbound_mail_id.in_(ids))
        rows = {row.inbound_mail_id: row for row in (await ctx.db.scalars(stmt)).all()}
        now = utcnow()
        for mail in failed:
            row = rows.get(mail.payload.inbound_mail_id)
            if row is None:
                continue
            if not last_attempt(mail.job):  # the last attempt counted itself when it began
                row.attempts += 1
            row.status, row.error, row.processed_at = InboundStatus.FAILED.value, mail.failure, now
            if mail.parsed is not None:
                row.kind = mail.parsed.kind.value
            log.warning("inbound mail %s failed: %s", mail.payload.inbound_mail_id, mail.failure)


async def _drop_unfiled(batch: JobBatch, mails: list[_Mail]) -> None:
    async with batch.call_out():
        for mail in mails:
            await _drop(mail.store, mail.blobs)
            mail.blobs = []


@batch_job(
    RECEIVE_KIND,
    payload=ReceiveMail,
    max_batch=BATCH,
    max_attempts=MAX_ATTEMPTS,
    backoff_seconds=10.0,
    timeout_seconds=TIME_LIMIT_SECONDS,
)
async def receive_mails(batch: JobBatch) -> None:
    """Up to BATCH recorded mails of one customer: their rows read in one transaction, each read
    and parsed (no transaction), all filed in one transaction with a savepoint per mail, and the
    failures' rows written in one more. Each job keeps its own outcome."""
    mails = await _begin_all(batch)
    deadline = asyncio.get_running_loop().time() + PARSE_BUDGET_SECONDS
    for mail in mails:
        if asyncio.get_running_loop().time() < deadline:
            await _read_and_parse(batch, mail)
        else:
            mail.item.fail(RetryableJobError("not parsed within the batch's time", retry_after=0))
    try:
        await _file_all(batch, mails)
    except BaseException:
        # The transaction went back as a whole: no attachment of this batch is referenced.
        await _drop_unfiled(batch, [m for m in mails if m.parsed is not None])
        raise
    unfiled = [m for m in mails if m.failure is not None or m.item.error is not None]
    await _drop_unfiled(batch, unfiled)
    await _fail_all(batch, [m for m in mails if m.failure is not None])
