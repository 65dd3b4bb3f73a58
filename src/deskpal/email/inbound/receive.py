"""Taking a mail in: its raw bytes durable first, then its row and its job — before any parsing.

`stage` streams the bytes to storage (hashing them and reading the header block on the way) with
no transaction; `record` writes the InboundMail row and its `email.receive` job in the caller's
transaction, or, for a mail that came before, a row saying `duplicate` and no job. `receive` does
both for a mail already in memory (IMAP, the import command). "Never lost": once `record` commits,
the mail is in storage and in the table, whatever the parser later makes of it.

Where the caller holds a job's or a request's transaction open, S3 must not be called inside it
(STYLE: no network inside a transaction): such a caller runs `stage` outside and `record` inside.
"""

from __future__ import annotations

import email.policy
import functools
import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import Unprocessable
from deskpal.core.tenancy import get_now, tenant_insert, write_bound
from deskpal.email.inbound.models import ORIGINALS_WHERE, InboundMail, InboundSource, InboundStatus
from deskpal.email.runtime import runtime
from deskpal.storage import Storage, storage_for
from deskpal.storage import jobs as blobs

AREA = "inbound"  # storage keys: inbound/<customer id>/<uuid>
RECEIVE_KIND = "email.receive"
# The header block is read from the first bytes only; a mail whose headers are longer still goes
# in (deduplicated by its bytes' hash) and the parser reads all of it later.
_HEAD_BYTES = 256 * 1024
_MSG_ID = re.compile(r"<[^<>\s]{1,990}>")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


class NotAnEmailChannel(Unprocessable):
    code, title = "NOT_AN_EMAIL_CHANNEL", "Mail comes in through Email channels only"


class ReceiveMail(BaseModel):
    """The email.receive job's payload: the row, and the store its raw bytes are in."""

    inbound_mail_id: int
    storage: str


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What the header block says before the mail is parsed: enough to deduplicate and to list."""

    message_id: str | None = None
    subject: str | None = None
    from_address: str | None = None
    # The first Message-ID of its thread as the header names it (References' first, else
    # In-Reply-To, else its own): mails of one thread are filed one at a time, in order.
    thread_root: str | None = None


@dataclass(frozen=True, slots=True)
class StagedMail:
    key: str
    size: int
    sha256: str
    header: HeaderFacts

    @property
    def ordering_key(self) -> str | None:
        """Its thread's: a reply is filed after the mail it answers (which it threads by), and two
        copies of one mail (two channels) one after the other, never side by side."""
        root = self.header.thread_root
        return "thread:" + hashlib.sha256(root.encode("utf-8", "replace")).hexdigest() if root else None

    @property
    def dedupe_key(self) -> str:
        # Hashed: a Message-ID may be 998 characters, an index key should not be.
        if self.header.message_id:
            return "mid:" + hashlib.sha256(self.header.message_id.encode("utf-8", "replace")).hexdigest()
        return "raw:" + self.sha256


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(value.replace("\x00", "").split())
    value = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from bad bytes
    return value[:limit] or None


def header_facts(head: bytes) -> HeaderFacts:
    """The Message-ID (`<id>`), Subject and From of a header block; None for what is missing or
    unreadable (a broken header must not stop the mail from being recorded)."""
    try:
        message = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    except Exception:
        return HeaderFacts()

    def value(name: str) -> str | None:
        try:
            found = message.get(name)
        except Exception:  # the policy's header classes raise on some malformed values
            found = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
        return None if found is None else str(found)

    raw_id = value("Message-ID")
    message_id = None
    if raw_id:
        match = _MSG_ID.search(raw_id)
        bare = raw_id.strip()
        # `Message-ID: abc@host` without brackets: still the mail's id, as clients read it.
        message_id = match.group(0) if match else (f"<{bare}>" if bare and " " not in bare else None)
    sender = None
    try:
        addresses = message["From"].addresses if message["From"] is not None else ()
        sender = addresses[0].addr_spec.lower() if addresses else None
    except Exception:
        sender = value("From")
    root = next(
        (ids[0] for ids in (_MSG_ID.findall(value(h) or "") for h in ("References", "In-Reply-To")) if ids),
        message_id,
    )
    return HeaderFacts(
        message_id=_clip(message_id, 998),
        subject=_clip(value("Subject"), 998),
        from_address=_clip(sender, 320) if sender and "@" in sender else None,
        thread_root=root,
    )


async def stage(
    storage: Storage, customer_id: int, chunks: AsyncIterable[bytes], *, max_bytes: int
) -> StagedMail:
    """Stream a raw mail into storage (no transaction needed). Over max_bytes: PayloadTooLarge
    (413) while it streams, and nothing is kept."""
    digest = hashlib.sha256()
    head = bytearray()

    async def hashed() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            digest.update(chunk)
            if len(head) < _HEAD_BYTES:
                head.extend(chunk[: _HEAD_BYTES - len(head)])
            yield chunk

    blob = await storage.put(blobs.prefix_of(AREA, customer_id), hashed(), max_bytes=max_bytes)
    end = _BLANK_LINE.search(head)
    facts = header_facts(bytes(head[: end.end()] if end else head))
    return StagedMail(blob.key, blob.size, digest.hexdigest(), facts)


def check_channel(channel: Channel) -> None:
    if channel.channel_type != ChannelType.EMAIL.value:
        raise NotAnEmailChannel(
            f"channel {channel.channel_id} is a {channel.channel_type} channel: mail comes in through "
            "Email channels",
            errors=[{"field": "id", "message": "is not an Email channel"}],
        )


@functools.cache
def _insert_original(dialect: str) -> Any:
    # ON CONFLICT DO NOTHING on the originals' partial index rather than catching IntegrityError:
    # the transaction stays usable, and on PostgreSQL a concurrent arrival of the same mail waits
    # for the first to commit or roll back, then finds its row or writes its own (as
    # core/jobs.py _enqueue_once does).
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        dialect_insert(InboundMail)
        .on_conflict_do_nothing(
            index_elements=["customer_id", "channel_id", "dedupe_key"], index_where=ORIGINALS_WHERE
        )
        .returning(InboundMail.inbound_mail_id)
    )
    return tenant_insert(stmt)


async def record(
    ctx: Ctx, storage: Storage, channel: Channel, staged: StagedMail, *, source: str
) -> InboundMail:
    """The row of a staged mail and its job, in the caller's transaction; a mail already recorded
    on this channel (same Message-ID, or same bytes when it has none) gets a `duplicate` row
    pointing at the first, and no job. A duplicate whose bytes are the original's shares its
    blob (the new copy is removed after the commit)."""
    check_channel(channel)
    values: dict[str, Any] = {
        "channel_id": channel.channel_id,
        "source": InboundSource(source).value,
        "header_message_id": staged.header.message_id,
        "subject": staged.header.subject,
        "from_address": staged.header.from_address,
        "sha256": staged.sha256,
        "dedupe_key": staged.dedupe_key,
        "size": staged.size,
        "storage_key": staged.key,
        "received_at": utcnow(),
        "status": InboundStatus.PENDING.value,
        "attempts": 0,
        "duplicate_of": None,
    }
    inserted = await write_bound(ctx.db, _insert_original(ctx.db.get_bind().dialect.name), values)
    new_id = inserted.scalar()
    await blobs.ensure_sweep(ctx, storage)
    if new_id is not None:
        row = await get_now(ctx.db, InboundMail, int(new_id))
        assert row is not None
        await ctx.enqueue(
            RECEIVE_KIND,
            ReceiveMail(inbound_mail_id=row.inbound_mail_id, storage=storage.locator),
            idempotency_key=job_key(row),
            ordering_key=staged.ordering_key,
        )
        return row
    original = await _original(ctx, channel.channel_id, staged.dedupe_key)
    if original.sha256 == staged.sha256:
        values["storage_key"] = original.storage_key
        await blobs.drop_blobs(ctx, storage, [staged.key])
    duplicate = InboundMail(
        **{
            **values,
            "status": InboundStatus.DUPLICATE.value,
            "duplicate_of": original.inbound_mail_id,
            "outcome": f"the same mail as inbound mail {original.inbound_mail_id}: not filed again",
            "processed_at": values["received_at"],
        }
    )
    ctx.db.add(duplicate)
    await ctx.db.flush()
    return duplicate


def job_key(row: InboundMail) -> str:
    """One job per row and run: a retry (attempts > 0) is a new job, a repeated enqueue is not."""
    return f"inbound:{row.inbound_mail_id}:{row.attempts}"


async def _original(ctx: Ctx, channel_id: int, dedupe_key: str) -> InboundMail:
    stmt = select(InboundMail).where(
        InboundMail.channel_id == channel_id, InboundMail.dedupe_key == dedupe_key, ORIGINALS_WHERE
    )
    return (await ctx.db.scalars(stmt)).one()


def default_storage() -> Storage:
    locator = runtime().storage_locator
    if locator is None:
        raise RuntimeError("no storage is configured in this process (email runtime): pass storage=")
    return storage_for(locator)


async def _once(raw: bytes) -> AsyncIterator[bytes]:
    yield raw


async def receive(
    ctx: Ctx, channel: Channel, raw: bytes, *, source: str, storage: Storage | None = None
) -> InboundMail:
    """Take in one raw RFC 5322 mail: the bytes written to storage first, then its row and its job
    (or its duplicate row) in the caller's transaction. Returns the row (`status` says which)."""
    check_channel(channel)
    store = storage or default_storage()
    staged = await stage(store, ctx.customer_id, _once(raw), max_bytes=max(len(raw), 1))
    return await record(ctx, store, channel, staged, source=source)


@blobs.area(AREA)
async def _referenced(ctx: Ctx, keys: Sequence[str]) -> set[str]:
    stmt = select(InboundMail.storage_key).where(InboundMail.storage_key.in_(keys))
    return set((await ctx.db.scalars(stmt)).all())
