"""The one door from IMAP polling and `deskpal mail import` into the inbound pipeline.

`store()` hands one raw mail to the pipeline's `receive()` (email/inbound/receive.py), which writes
the bytes to storage and an InboundMail row with its parse job in the caller's transaction, and
tells a duplicate (same Message-ID on the channel, or same bytes) from a new mail. Whoever calls
`store()` commits; IMAP polling moves a folder's last UID in that same transaction.

TODO(wiring): receive() and InboundMail come with the inbound pipeline (branch inbound-pipeline).
Until it is merged they are looked up when first used, so that this branch imports and type-checks
without them; once merged, `_pipeline()` becomes two plain imports.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx

Source = Literal["imap", "endpoint", "import"]


@dataclass(frozen=True, slots=True)
class Stored:
    inbound_mail_id: int
    duplicate: bool  # the pipeline had it already: this arrival is recorded as a duplicate


class PipelineMissing(RuntimeError):
    """receive() is not there (a branch without the inbound pipeline)."""


def _pipeline() -> tuple[Any, Any]:
    """(receive, InboundMail)."""
    try:
        receive = importlib.import_module("deskpal.email.inbound.receive").receive
        models = importlib.import_module("deskpal.email.inbound.models")
    except ImportError as exc:  # pragma: no cover - only before the pipeline is merged
        raise PipelineMissing(
            "the inbound pipeline (deskpal.email.inbound.receive) is not installed: mail cannot be stored"
        ) from exc
    return receive, models.InboundMail


async def store(ctx: Ctx, channel: Channel, raw: bytes, *, source: Source) -> Stored:
    """Hand one raw mail to the pipeline, in ctx's transaction."""
    receive, _ = _pipeline()
    mail = await receive(ctx, channel, raw, source=source)
    return Stored(inbound_mail_id=int(mail.inbound_mail_id), duplicate=str(mail.status) == "duplicate")


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
    _, inbound_mail = _pipeline()
    statuses: Counter[str] = Counter()
    threaded = 0
    ids = list(inbound_mail_ids)
    for start in range(0, len(ids), 500):  # bounded IN lists
        stmt = select(inbound_mail.status, inbound_mail.ticket_id).where(
            inbound_mail.inbound_mail_id.in_(ids[start : start + 500])
        )
        for status, ticket_id in (await ctx.db.execute(stmt)).all():
            statuses[str(getattr(status, "value", status))] += 1
            threaded += ticket_id is not None
    return Outcomes(
        pending=statuses["pending"],
        stored=statuses["stored"],
        threaded=threaded,
        failed=statuses["failed"],
        duplicate=statuses["duplicate"],
    )
