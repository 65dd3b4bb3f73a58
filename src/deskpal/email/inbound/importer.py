"""`deskpal mail import`: mail kept elsewhere (an .eml file, a folder of them, an mbox, a Maildir)
taken in through the same door as IMAP (handoff.py: staged, then recorded; source "import").

The files are read with the standard library's `mailbox` module, one mail at a time (a 10,000-mail
mbox is never in memory at once). Mails are staged to storage a batch at a time, then recorded in
one transaction a batch; inside it every mail has a savepoint of its own, so one the pipeline
refuses is counted as failed and the rest of its batch is kept. Running the same import again
stores nothing twice: the pipeline recognises each mail (Message-ID, or its bytes) and counts it as
a duplicate.
"""

from __future__ import annotations

import asyncio
import mailbox
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

from deskpal.channels import service as channels
from deskpal.channels.models import ChannelType
from deskpal.core.context import Ctx
from deskpal.core.db import Database, transaction
from deskpal.core.errors import Unprocessable
from deskpal.email.inbound import handoff, receive
from deskpal.email.inbound.models import InboundSource
from deskpal.email.inbound.receive import StagedMail

Kind = Literal["eml", "folder", "mbox", "maildir"]
BATCH_MAILS = 100  # mails per transaction
MAX_FAILURES_LISTED = 50


class NotAMailSource(Unprocessable):
    code, title = "NOT_A_MAIL_SOURCE", "The path is no mail deskpal can import"


@dataclass(frozen=True)
class MailSource:
    kind: Kind
    path: Path
    count: int
    mails: Iterable[tuple[str, bytes]]  # (where it came from, its raw bytes), in order


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    # An mbox starts with its first message's "From " separator line; an .eml with a header.
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def open_source(path: Path) -> MailSource:
    """What `path` holds: a Maildir (cur/ and new/), a folder of .eml files (searched recursively,
    in name order), an mbox (a file starting "From "), or one .eml file."""
    if path.is_dir():
        if _is_maildir(path):
            return _maildir(path)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".eml")
        if not files:
            raise NotAMailSource(
                f"{path} holds no .eml files and is no Maildir (no cur/ and new/ folders)",
                errors=[{"field": "path", "message": "no .eml files and no Maildir"}],
            )
        return MailSource(
            "folder", path, len(files), ((str(p.relative_to(path)), p.read_bytes()) for p in files)
        )
    if path.is_file():
        if _is_mbox(path):
            return _mbox(path)
        return MailSource("eml", path, 1, [(path.name, path.read_bytes())])
    raise NotAMailSource(
        f"{path}: no such file or folder", errors=[{"field": "path", "message": "not found"}]
    )


def _mbox(path: Path) -> MailSource:
    box = mailbox.mbox(path, create=False)
    keys = box.keys()  # one pass over the file finds where each message starts

    def mails() -> Iterator[tuple[str, bytes]]:
        try:
            for number, key in enumerate(keys, 1):
                yield f"{path.name} #{number}", box.get_bytes(key)
        finally:
            box.close()

    return MailSource("mbox", path, len(keys), mails())


def _maildir(path: Path) -> MailSource:
    box = mailbox.Maildir(path, factory=None, create=False)
    # A Maildir's keys (its file names) start with the delivery time: in key order is arrival order.
    keys = sorted(box.keys())

    def mails() -> Iterator[tuple[str, bytes]]:
        for key in keys:
            yield key, box.get_bytes(key)

    return MailSource("maildir", path, len(keys), mails())


@dataclass
class ImportSummary:
    mails: int = 0
    stored: int = 0  # new to the pipeline: parsed, threaded and filed by its job
    duplicates: int = 0  # the pipeline had them already
    failed: int = 0  # refused at the door (the pipeline's error is in failures)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (mail, error), the first ones
    inbound_mail_ids: list[int] = field(default_factory=list)  # of the stored ones
    seconds: float = 0.0


def _chunks(items: Iterable[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


Staged = list[tuple[str, StagedMail | Exception]]


def _stage_next(customer_id: int, batches: Iterator[list[tuple[str, bytes]]]) -> asyncio.Task[Staged | None]:
    async def stage() -> Staged | None:
        batch = next(batches, None)
        if batch is None:
            return None
        results = await handoff.stage_many(customer_id, [raw for _, raw in batch])
        return [(label, result) for (label, _), result in zip(batch, results, strict=True)]

    return asyncio.create_task(stage())


async def _abandon(ahead: asyncio.Task[Staged | None]) -> None:
    """The import stops: the batch staged ahead is not recorded, its bytes go."""
    ahead.cancel()
    try:
        staged = await ahead
    except BaseException:
        return
    await handoff.drop([s for _, s in staged or [] if not isinstance(s, Exception)])


async def _record_batch(
    db: Database, customer_id: int, channel_id: int, staged: Staged, summary: ImportSummary
) -> None:
    """One transaction for the batch, a savepoint for each mail in it."""
    for label, result in staged:
        if isinstance(result, Exception):
            _failed(summary, label, result)
    kept = [s for _, s in staged if not isinstance(s, Exception)]
    async with (
        handoff.dropped_unless_recorded(kept),
        transaction(db, customer_id=customer_id) as session,
    ):
        ctx = Ctx.system(session, customer_id)
        channel = await channels.get_channel(ctx, channel_id)
        for label, mail in staged:
            if isinstance(mail, Exception):
                continue
            try:
                async with session.begin_nested():
                    stored = await handoff.record(ctx, channel, mail, source=InboundSource.IMPORT)
            except Exception as exc:  # this mail only: its savepoint is rolled back, the batch goes on
                _failed(summary, label, exc)
                continue
            if stored.duplicate:
                summary.duplicates += 1
            else:
                summary.stored += 1
                summary.inbound_mail_ids.append(stored.inbound_mail_id)
    summary.mails += len(staged)


def _failed(summary: ImportSummary, label: str, exc: Exception) -> None:
    summary.failed += 1
    if len(summary.failures) < MAX_FAILURES_LISTED:
        summary.failures.append((label, f"{type(exc).__name__}: {exc}"[:500]))


async def check_channel(db: Database, customer_id: int, channel_id: int) -> None:
    """404 for an unknown channel; 422 NOT_AN_EMAIL_CHANNEL for another type."""
    async with transaction(db, write=False, customer_id=customer_id) as session:
        channel = await channels.get_channel(Ctx.system(session, customer_id), channel_id)
        if channel.channel_type != ChannelType.EMAIL.value:
            raise receive.NotAnEmailChannel(
                f"channel {channel_id} is a {channel.channel_type} channel: import into an Email channel",
                errors=[{"field": "channel-id", "message": "not an Email channel"}],
            )


async def import_mail(
    db: Database,
    *,
    customer_id: int,
    channel_id: int,
    source: MailSource,
    batch_size: int = BATCH_MAILS,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Hand every mail of `source` to the pipeline, `batch_size` per transaction."""
    await check_channel(db, customer_id, channel_id)
    summary = ImportSummary()
    started = time.perf_counter()
    batches = _chunks(source.mails, batch_size)
    # The next batch is read and staged while this one is recorded: the file reads and storage
    # writes of one overlap the database work of the other.
    ahead = _stage_next(customer_id, batches)
    try:
        while (current := await ahead) is not None:
            ahead = _stage_next(customer_id, batches)
            await _record_batch(db, customer_id, channel_id, current, summary)
            if progress is not None:
                progress(len(current))
    except BaseException:
        await _abandon(ahead)
        raise
    summary.seconds = time.perf_counter() - started
    return summary


async def wait_for_pipeline(
    db: Database,
    *,
    customer_id: int,
    inbound_mail_ids: list[int],
    within_seconds: float,
    progress: Callable[[int], None] | None = None,
) -> handoff.Outcomes:
    """Until the workers have parsed and threaded these mails (none pending), for at most
    `within_seconds` (the outcome then still counts some as pending)."""
    deadline = time.monotonic() + within_seconds
    while True:
        async with transaction(db, write=False, customer_id=customer_id) as session:
            outcomes = await handoff.outcomes(Ctx.system(session, customer_id), inbound_mail_ids)
        if progress is not None:
            progress(len(inbound_mail_ids) - outcomes.pending)
        if not outcomes.pending or time.monotonic() >= deadline:
            return outcomes
        await asyncio.sleep(0.5)
