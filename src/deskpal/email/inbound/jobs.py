"""The email.receive job: one recorded mail parsed, threaded and filed, under a time limit.

Steps, each outside the others' transactions (core/jobs.py): claim the row (a short write), read
the raw bytes, parse them and store the attachments' bytes (no transaction: storage and CPU), then
file the mail and mark the row in one write transaction. Whatever goes wrong ends with the row
`failed` and a readable error, its raw bytes kept for GET .../raw and POST .../retry; a failing
mail never holds up the next ones (each has its own job). A storage or database hiccup is retried
(with backoff) before it counts as a failure. docs/mail.md, "Inbound pipeline".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from deskpal.channels.models import Channel
from deskpal.core.db import utcnow
from deskpal.core.jobs import JobContext, RetryableJobError, job
from deskpal.email.inbound import filing
from deskpal.email.inbound.models import InboundMail, InboundStatus
from deskpal.email.inbound.parse import parse
from deskpal.email.inbound.parsed import MailKind, ParsedMail
from deskpal.email.inbound.receive import RECEIVE_KIND, ReceiveMail
from deskpal.storage import BlobNotFound, Storage, storage_for
from deskpal.storage import jobs as blob_jobs
from deskpal.storage.base import StoredBlob

log = logging.getLogger("deskpal.email")

MAX_ATTEMPTS = 5
TIME_LIMIT_SECONDS = 180.0
# Parsing alone gets less than the job's limit, so that a mail the parser chokes on is marked
# failed by this job rather than cut off by the worker (which would retry it to no end).
PARSE_SECONDS = 60.0
_ERROR_CHARS = 2000
_ATTACHMENTS = "attachments"  # the attachments' storage area (attachments/service.py)


class _Unfileable(Exception):
    """The mail cannot be filed however often it is tried (its channel is gone)."""


def _words(step: str, exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{step}: {type(exc).__name__}{': ' + text if text else ''}"[:_ERROR_CHARS]


async def _begin(job: JobContext, p: ReceiveMail) -> str | None:
    """The raw mail's key if the row is still to be filed. The last attempt first marks the row
    failed, so that a mail whose every attempt is cut off (a crash, the time limit) ends failed,
    not pending forever; the others only read (a write transaction per mail costs a commit)."""
    last = last_attempt(job)
    async with job.db(write=last) as ctx:
        row = await ctx.db.get(InboundMail, p.inbound_mail_id)
        if row is None or row.status != InboundStatus.PENDING.value:
            return None  # filed by an earlier attempt, or not to be filed
        if last:
            row.status = InboundStatus.FAILED.value
            row.attempts += 1
            row.error = (
                f"attempt {job.attempt} of {job.max_attempts}: the earlier attempts did not finish "
                "(the worker stopped, or a time limit)"
            )
            await ctx.db.flush()
        return row.storage_key


async def _fail(job: JobContext, p: ReceiveMail, error: str, kind: MailKind | None = None) -> None:
    async with job.db() as ctx:
        row = await ctx.db.get(InboundMail, p.inbound_mail_id)
        if row is None:
            return
        if not last_attempt(job):  # the last attempt counted itself when it began
            row.attempts += 1
        row.status, row.error, row.processed_at = InboundStatus.FAILED.value, error, utcnow()
        if kind is not None:
            row.kind = kind.value
    log.warning("inbound mail %s failed: %s", p.inbound_mail_id, error)


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


@job(
    RECEIVE_KIND,
    payload=ReceiveMail,
    max_attempts=MAX_ATTEMPTS,
    backoff_seconds=10.0,
    timeout_seconds=TIME_LIMIT_SECONDS,
)
async def receive_mail(job: JobContext, p: ReceiveMail) -> None:
    key = await _begin(job, p)
    if key is None:
        return
    last = last_attempt(job)
    store = storage_for(p.storage)
    try:
        async with job.call_out():
            raw = await store.read_all(key)
    except BlobNotFound:
        await _fail(job, p, f"the raw mail is missing from storage (key {key})")
        return
    except Exception as exc:
        if last:
            await _fail(job, p, _words("reading the raw mail", exc))
            return
        raise RetryableJobError(_words("reading the raw mail", exc)) from exc
    try:
        mail = await asyncio.wait_for(asyncio.to_thread(parse, raw), PARSE_SECONDS)
    except TimeoutError:
        await _fail(job, p, f"parsing: took longer than {PARSE_SECONDS:g} s")
        return
    except Exception as exc:
        log.warning("inbound mail %s: the parser failed", p.inbound_mail_id, exc_info=True)
        await _fail(job, p, _words("parsing", exc))
        return
    try:
        async with job.call_out():
            blobs = await _store_attachments(job, store, mail)
    except Exception as exc:
        if last:
            await _fail(job, p, _words("storing its attachments", exc), mail.kind)
            return
        raise RetryableJobError(_words("storing its attachments", exc)) from exc
    try:
        async with job.db() as ctx:
            row = await ctx.db.get(InboundMail, p.inbound_mail_id)
            if row is None:
                raise _Unfileable("its row was deleted")
            if row.status == InboundStatus.STORED.value:
                return  # an attempt whose lease had lapsed filed it meanwhile
            channel = await ctx.db.get(Channel, row.channel_id) if row.channel_id is not None else None
            if channel is None:
                raise _Unfileable("its channel was deleted")
            await filing.file_mail(ctx, store, row, channel, mail, blobs)
            if not last:  # the last attempt counted itself when it began
                row.attempts += 1  # written with the outcome, by the commit
    except Exception as exc:
        async with job.call_out():
            await _drop(store, blobs)
        transient = isinstance(exc, SQLAlchemyError) and not isinstance(exc, IntegrityError)
        if transient and not last:
            raise RetryableJobError(_words("filing", exc)) from exc
        log.warning("inbound mail %s: filing failed", p.inbound_mail_id, exc_info=True)
        await _fail(job, p, _words("filing", exc), mail.kind)
