"""A ticket's last-message fields, kept from its public messages: the newest message wins.

`lastMessageDate`, `preview` and `lastEndUserMessageID` describe the ticket's newest public message
(not a draft, not an internal note). "Newest" is one order, `recency`: the message's date
(`messageDate`, else its creation time), then its id. Every path that changes the public messages
(a new message, a published draft, a message back to a draft, an edit, a delete) calls `follow`,
so the fields never move backwards: a message dated before the newest one leaves them alone.
See docs/messages.md ("Tickets keep themselves current").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, select, true

from deskpal.core.context import Ctx
from deskpal.core.db import UTCDateTime
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets.derived import closed_state
from deskpal.tickets.models import Ticket

# The same order in SQL as `recency` in Python (typed, so SQLite's text comes back as aware UTC).
_WHEN = func.coalesce(TicketMessage.message_date, TicketMessage.created_at, type_=UTCDateTime())
_NEWEST_FIRST = (_WHEN.desc(), TicketMessage.message_id.desc())


def when(msg: TicketMessage) -> datetime:
    return msg.message_date or msg.created_at


def recency(msg: TicketMessage) -> tuple[datetime, int]:
    return when(msg), msg.message_id


def is_public(msg: TicketMessage) -> bool:
    return not (msg.is_draft or msg.is_internal_note)


def _from_end_user(msg: TicketMessage) -> bool:
    return bool(msg.incoming) and msg.sender_type == SenderType.END_USER.value


async def follow(ctx: Ctx, ticket: Ticket, added: TicketMessage | None = None) -> dict[str, Any]:
    """What changes on the ticket after its public messages changed.

    `added` has just become public (inserted, or a draft published). When it is the newest (the
    usual case: the ticket's lastMessageDate is not after it), it is the ticket's last message and
    nothing is read. Otherwise, or with nothing added (a message left the public ones or changed),
    the fields are read again from the public messages, in one statement.
    """
    if added is not None and (ticket.last_message_date is None or when(added) >= ticket.last_message_date):
        changes: dict[str, Any] = {"last_message_date": when(added)}
        if added.body_preview:  # a message without text leaves the last text shown
            changes["preview"] = added.body_preview
        if _from_end_user(added):
            changes["last_end_user_message_id"] = added.message_id
        return changes
    return await _read_back(ctx, ticket.ticket_id)


def _newest(column: Any, *where: ColumnElement[bool]) -> Any:
    return select(column).where(*where).order_by(*_NEWEST_FIRST).limit(1).scalar_subquery()


async def _read_back(ctx: Ctx, ticket_id: int) -> dict[str, Any]:
    public = (
        TicketMessage.ticket_id == ticket_id,
        TicketMessage.is_draft == false(),
        TicketMessage.is_internal_note == false(),
    )
    row = (
        await ctx.db.execute(
            select(
                _newest(_WHEN, *public),
                _newest(TicketMessage.body_preview, *public, TicketMessage.body_preview.is_not(None)),
                _newest(
                    TicketMessage.message_id,
                    *public,
                    TicketMessage.incoming == true(),
                    TicketMessage.sender_type == SenderType.END_USER.value,
                ),
            )
        )
    ).one()
    return {"last_message_date": row[0], "preview": row[1], "last_end_user_message_id": row[2]}


async def became_public(
    ctx: Ctx, ticket: Ticket, msg: TicketMessage, *, reopen: bool = True
) -> dict[str, Any]:
    """A message became part of the public conversation: what changes on its ticket."""
    changes = await follow(ctx, ticket, msg)
    if msg.incoming and reopen:
        changes["is_read"] = False
        if ticket.is_closed:
            # The end user wrote again: the conversation is open again.
            changes.update(closed_state(ticket, {"is_closed": False}, msg.created_at))
    return changes


async def refresh_ticket(ctx: Ctx, ticket_id: int) -> None:
    """A message left the public conversation or changed: the ticket's last-message fields again."""
    ticket = await ctx.db.get(Ticket, ticket_id)
    if ticket is None:
        return
    for name, value in (await follow(ctx, ticket)).items():
        setattr(ticket, name, value)
    await ctx.db.flush()
