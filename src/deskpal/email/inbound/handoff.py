"""The one door from IMAP polling and `deskpal mail import` into the inbound pipeline (receive.py).

Both take mail in batches, in two steps. `stage` writes a mail's bytes to storage (hashing them and
reading its header block) with no transaction open, since the storage may be S3 (STYLE: no network
inside a transaction). `record` then writes its InboundMail row and parse job, or a `duplicate` row
for a mail the channel had already (same Message-ID, or same bytes), in the caller's transaction,
which also holds whatever moves with the batch (IMAP: the folder's last UID). `dropped_unless_recorded`
removes a batch's staged bytes at once when that transaction fails (the orphan sweeper would, later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.email.inbound import receive
from deskpal.email.inbound.models import InboundMail, InboundSource, InboundStatus
from deskpal.email.inbound.receive import StagedMail

log = logging.getLogger(__name__)

STAGE_AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class Stored:
    inbound_mail_id: int
    duplicate: bool  # the channel had it already: this arrival is recorded as a duplicate


async def _once(raw: bytes) -> AsyncIterator[bytes]:
    yield raw


async def stage(customer_id: int, raw: bytes) -> StagedMail:
    """Write one raw mail's bytes to this process's storage (no transaction needed)."""
    storage = receive.default_storage()
    return await receive.stage(storage, customer_id, _once(raw), max_bytes=max(len(raw), 1))


async def stage_many(customer_id: int, raws: Sequence[bytes]) -> list[StagedMail | Exception]:
    """Stage several mails, STAGE_AT_ONCE at a time (a file store's writes wait on the disk, an
    S3 store's on the network: side by side they overlap); each one's StagedMail, or the exception
    that stopped it."""
    limit = asyncio.Semaphore(STAGE_AT_ONCE)

    async def one(raw: bytes) -> StagedMail | Exception:
        async with limit:
            try:
                return await stage(customer_id, raw)
            except Exception as exc:
                return exc

    return list(await asyncio.gather(*(one(raw) for raw in raws)))


async def drop(staged: Sequence[StagedMail]) -> None:
    """Remove staged bytes no row will record (the orphan sweeper would, later)."""
    storage = receive.default_storage()
    for mail in staged:
        try:
            await storage.delete(mail.key)
        except Exception:
            log.warning("could not delete the staged mail %s", mail.key, exc_info=True)


async def record(ctx: Ctx, channel: Channel, staged: StagedMail, *, source: InboundSource) -> Stored:
    """A staged mail's row (and its parse job), in ctx's transaction."""
    row = await receive.record(ctx, receive.default_storage(), channel, staged, source=source)
    return Stored(inbound_mail_id=row.inbound_mail_id, duplicate=row.status == InboundStatus.DUPLICATE)


@contextlib.asynccontextmanager
async def dropped_unless_recorded(staged: Sequence[StagedMail]) -> AsyncIterator[None]:
    """Around the transaction that records `staged`: if it fails, their bytes go at once."""
    try:
        yield
    except BaseException:
        await drop(staged)
        raise


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Where the pipeline stands with some of its mails."""

    pending: int  # not parsed yet
    stored: int  # parsed and filed
    threaded: int  # of those, joined to (or opened) a ticket
    failed: int
    duplicate: int


async def outcomes(ctx: Ctx, inbound_mail_ids: Sequence[int]) -> Outcomes:
    """How these InboundMails fared (the import command's --wait)."""
    statuses: Counter[str] = Counter()
    threaded = 0
    ids = list(inbound_mail_ids)
    for start in range(0, len(ids), 500):  # bounded IN lists
        stmt = select(InboundMail.status, InboundMail.ticket_id).where(
            InboundMail.inbound_mail_id.in_(ids[start : start + 500])
        )
        for status, ticket_id in (await ctx.db.execute(stmt)).all():
            statuses[str(status)] += 1
            threaded += ticket_id is not None
    return Outcomes(
        pending=statuses[InboundStatus.PENDING.value],
        stored=statuses[InboundStatus.STORED.value],
        threaded=threaded,
        failed=statuses[InboundStatus.FAILED.value],
        duplicate=statuses[InboundStatus.DUPLICATE.value],
    )
