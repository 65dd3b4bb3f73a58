"""What threading asks the database about a batch of mails, asked once for the whole batch.

Filing a mail asks twice by Message-ID: is this mail already a message (its own Message-ID), and
which ticket holds the mails it answers (In-Reply-To, References). For a batch of mails
(email/inbound/jobs.py) both are one statement: every Message-ID the batch names, read before the
first mail is filed, and each mail filed adds its own, so that a later mail of the batch answering
it finds it as it would have found it in the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.email.inbound.parsed import ParsedMail
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket

MAX_IDS = 50  # a References header may list hundreds; the newest are the ones that match
_CHUNK = 500  # ids per IN list: well inside both databases' parameter limits


def header_ids(mail: ParsedMail) -> list[tuple[str, str]]:
    """(header, id) in the order they are tried: In-Reply-To, then References from the newest."""
    found: dict[str, str] = {}
    for header, ids in (("In-Reply-To", mail.in_reply_to), ("References", list(reversed(mail.references)))):
        for mid in ids:
            if mid and mid != mail.message_id:
                found.setdefault(mid, header)
    return [(header, mid) for mid, header in list(found.items())[:MAX_IDS]]


@dataclass(frozen=True, slots=True)
class Known:
    message_id: int
    ticket_id: int


@dataclass(slots=True)
class Lookups:
    """Message-ID → the messages carrying it (oldest first), for the ids asked for."""

    _asked: set[str] = field(default_factory=set)
    _messages: dict[str, list[Known]] = field(default_factory=dict)
    # (channel id, external id) of the messages whose external id is one the batch's mails carry;
    # None: not read (intake reads it itself).
    _external: set[tuple[int | None, str]] | None = None

    async def prefetch(self, ctx: Ctx, batch: Iterable[ParsedMail]) -> None:
        mails = list(batch)
        wanted: list[str] = []
        for mail in mails:
            ids = [mid for _, mid in header_ids(mail)]
            if mail.message_id:
                ids.append(mail.message_id)
            wanted += [mid for mid in ids if mid not in self._asked]
        await self._load(ctx, list(dict.fromkeys(wanted)))
        own = list(dict.fromkeys(m.message_id for m in mails if m.message_id))
        self._external = set()
        for start in range(0, len(own), _CHUNK):
            stmt = select(TicketMessage.channel_id, TicketMessage.external_id).where(
                TicketMessage.external_id.in_(own[start : start + _CHUNK])
            )
            self._external.update((c, e) for c, e in (await ctx.db.execute(stmt)).all() if e)
        # The tickets replies join, in the session: threading's get() of each finds it there.
        tickets = list({k.ticket_id for known in self._messages.values() for k in known})
        for start in range(0, len(tickets), _CHUNK):
            await ctx.db.scalars(select(Ticket).where(Ticket.ticket_id.in_(tickets[start : start + _CHUNK])))

    async def _load(self, ctx: Ctx, ids: list[str]) -> None:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            stmt = (
                select(TicketMessage.message_identifier, TicketMessage.message_id, TicketMessage.ticket_id)
                .where(TicketMessage.message_identifier.in_(chunk))
                .order_by(TicketMessage.message_id)
            )
            for identifier, message_id, ticket_id in (await ctx.db.execute(stmt)).all():
                if identifier is None:
                    continue
                self._messages.setdefault(identifier, []).append(Known(message_id, ticket_id))
            self._asked.update(chunk)

    async def messages(self, ctx: Ctx, ids: list[str]) -> dict[str, list[Known]]:
        """The messages carrying each id (oldest first); ids not prefetched are read now."""
        missing = [mid for mid in dict.fromkeys(ids) if mid not in self._asked]
        if missing:
            await self._load(ctx, missing)
        return {mid: self._messages[mid] for mid in ids if self._messages.get(mid)}

    def external_id_free(self, channel_id: int, external_id: str | None) -> bool:
        """True when the prefetch read that the channel has no message under this external id (and
        none was filed under it since)."""
        return (
            self._external is not None
            and external_id is not None
            and ((channel_id, external_id) not in self._external)
        )

    def filed(
        self, identifier: str | None, message_id: int | None, ticket_id: int | None, channel_id: int | None
    ) -> None:
        """A message just filed under `identifier`: later mails of the batch see it."""
        if not identifier or message_id is None or ticket_id is None:
            return
        if self._external is not None:
            self._external.add((channel_id, identifier))
        if identifier not in self._asked:
            return
        known = self._messages.setdefault(identifier, [])
        if all(k.message_id != message_id for k in known):
            known.append(Known(message_id, ticket_id))

    def forget(self, identifier: str | None) -> None:
        """A savepoint that filed under `identifier` was rolled back: ask the database again."""
        if identifier:
            self._asked.discard(identifier)
            self._messages.pop(identifier, None)
            self._external = None  # not known any more which channel it was filed on
