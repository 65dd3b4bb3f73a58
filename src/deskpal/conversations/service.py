"""The one path in and the one path out: `intake` and `send`.

Both thread the message (or open its ticket), store it, link its end user and keep the ticket's
derived state (deskpal.messages.latest: the newest public message wins; deskpal.tickets.derived: the
closed state, the channel's type), in the caller's transaction. `send` alone records a pending send.
Hooks on new messages would be enqueued here, in the same transaction; none exist yet. Automatic
mail (InboundMessage.automatic, the message's is_auto_reply) must trigger none of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from deskpal.channels.models import Channel
from deskpal.conversations.schemas import Conversing, InboundMessage, OutgoingMessage
from deskpal.core.addresses import has_address, single_address_of
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import Unprocessable, ValidationFailed
from deskpal.core.tenancy import insert_now, update_now
from deskpal.email import delivery
from deskpal.email.runtime import runtime
from deskpal.messages import latest
from deskpal.messages import queries as message_queries
from deskpal.messages.html import html_to_text
from deskpal.messages.insert import NewMessage, new_row
from deskpal.messages.models import TicketMessage
from deskpal.tickets import queries as ticket_queries
from deskpal.tickets import writes as ticket_writes
from deskpal.tickets.derived import OPEN, subject_from
from deskpal.tickets.models import Ticket
from deskpal.tickets.schemas import TicketWriteDTO


class NoRecipient(Unprocessable):
    code, title = "NO_RECIPIENT", "The message has nobody to be sent to"


async def intake(ctx: Ctx, inbound: InboundMessage) -> TicketMessage:
    """Take in a message from the end user's side: thread it (or open its ticket), store it, link
    its end user, keep the ticket current; an incoming message reopens a closed ticket.

    A message with an external id that its channel already delivered is not stored again: the
    stored one is returned, and nothing is written (a network retrying a delivery).
    """
    if inbound.message.external_id is not None:
        return await _intake_once(ctx, inbound, inbound.message.external_id)
    return await _intake(ctx, inbound)


async def _intake(ctx: Ctx, inbound: InboundMessage) -> TicketMessage:
    if inbound.automatic:
        inbound.message.is_auto_reply = True
    ticket = await _thread(ctx, inbound)
    msg = new_row(ctx, ticket, inbound.message, html_field=inbound.html_field)
    return await _store(ctx, ticket, inbound, msg, reopen=inbound.reopen and not inbound.automatic)


async def _intake_once(ctx: Ctx, inbound: InboundMessage, external_id: str) -> TicketMessage:
    if inbound.channel is None:
        # The id is the network's: unique within one channel, meaningless without it.
        raise ValueError("a message with an external id needs the channel it came through")
    channel_id = inbound.channel.channel_id
    if not inbound.external_id_checked:
        stored = await message_queries.find_by_external_id(ctx, channel_id, external_id)
        if stored is not None:
            return stored
    known = set(ctx.db.identity_map.keys())
    try:
        # Another delivery of the same message may be on its way in another transaction (on
        # PostgreSQL; SQLite's writers take turns, and the read above finds what the last one
        # stored). The unique index lets one of them in; the other's INSERT waits for it, fails,
        # and everything it wrote (a ticket it opened) goes back to the savepoint.
        async with ctx.db.begin_nested():
            return await _intake(ctx, inbound)
    except IntegrityError:
        # Rows the savepoint took back are no longer in the database: nor in the session.
        for key in set(ctx.db.identity_map.keys()) - known:
            ctx.db.expunge(ctx.db.identity_map[key])
        stored = await message_queries.find_by_external_id(ctx, channel_id, external_id)
        if stored is None:
            raise  # another constraint: not a repeated delivery
        return stored


async def send(ctx: Ctx, outgoing: OutgoingMessage) -> TicketMessage:
    """Write a message from the support side, as intake does, and record its pending send when it
    is to be delivered (never for drafts and internal notes): with `deliver`, a message that leaves
    by mail gets its Message-ID and its send job in this transaction (email/delivery.py)."""
    new = outgoing.message
    ticket = await _thread(ctx, outgoing)
    msg = new_row(ctx, ticket, new, html_field=outgoing.html_field)
    deliver = outgoing.deliver and not (new.is_internal_note or new.is_draft)
    by_mail = deliver and delivery.sends_by_mail(msg.channel_type)
    if deliver:
        _check_recipients(msg)
        _record_pending(msg, msg.created_at)
    if by_mail:
        await delivery.prepare(ctx, msg)
    stored = await _store(ctx, ticket, outgoing, msg, reopen=True)
    if by_mail:
        await delivery.enqueue(ctx, stored, storage=runtime().storage_locator, as_links=outgoing.as_links)
    return stored


async def send_existing(ctx: Ctx, msg: TicketMessage, *, as_links: bool = False) -> TicketMessage:
    """Send an outgoing message already written (a draft, or one never sent or failed) as it is.

    A draft joins the conversation now (the ticket follows, as when a draft is published).
    """
    if msg.incoming:
        raise ValueError("an incoming message is answered, not sent")
    _check_recipients(msg)
    now = utcnow()
    if msg.is_draft:
        msg.is_draft = False
        msg.message_date = now
        await ctx.db.flush()
        ticket = await ticket_queries.get_ticket_row(ctx, msg.ticket_id)
        await update_now(ctx.db, ticket, await latest.became_public(ctx, ticket, msg, reopen=True))
    _record_pending(msg, now)
    await delivery.prepare(ctx, msg)
    await ctx.db.flush()
    await delivery.enqueue(ctx, msg, storage=runtime().storage_locator, as_links=as_links)
    return msg


def _check_recipients(msg: TicketMessage) -> None:
    if not (has_address(msg.to_address) or has_address(msg.cc_address) or has_address(msg.bcc_address)):
        raise NoRecipient(
            "the message names no recipient (toAddress, ccAddress, bccAddress) and the ticket's end user "
            "has no email address: name recipients, or do not send (send_email: false)"
        )


def _record_pending(msg: TicketMessage, at: datetime) -> None:
    # The channel's sender performs it, outside any request (STYLE: no SMTP in a transaction).
    msg.send_pending, msg.send_requested_at = True, at


def contact_uid(new: NewMessage) -> str | None:
    """The uid that names the message's end user when it names none: their address, lower-cased,
    else their number."""
    _, email, phone = end_user_contact(new)
    return (email.strip().lower() if email else None) or phone


def end_user_contact(new: NewMessage) -> tuple[str | None, str | None, str | None]:
    """(name, email, phone) of the end user a message is from (incoming) or to (outgoing)."""
    if new.incoming:
        return new.from_name, new.from_address, new.from_number
    # Several recipients name no single end user.
    return None, single_address_of(new.to_address), new.to_number


def _in_channel(new: NewMessage, channel: Channel | None) -> None:
    # A message in a channel has that channel's type (deskpal.tickets.derived.channel_type_in).
    if channel is not None:
        new.channel_id, new.channel_type = channel.channel_id, channel.channel_type


async def _thread(ctx: Ctx, step: Conversing) -> Ticket:
    """The ticket the message belongs to, by its hints; else a new one. Applies the ticket change."""
    _in_channel(step.message, step.channel)
    ticket = step.ticket
    if ticket is None and step.ticket_id is not None:
        ticket = await ticket_queries.get_ticket_row(ctx, step.ticket_id)
    if ticket is None and step.in_reply_to:
        answered = await message_queries.find_by_identifier(ctx, step.in_reply_to)
        if answered is not None:
            ticket = await ticket_queries.get_ticket_row(ctx, answered.ticket_id)
    if ticket is None:
        ticket = await open_ticket(ctx, step)
    if step.ticket_change is not None:
        ticket_writes.change_state(ticket, step.ticket_change)
    return ticket


async def open_ticket(ctx: Ctx, step: Conversing) -> Ticket:
    """A new open ticket for the message, in its channel, named by its end user's uid."""
    new = step.message
    if new.channel_type is None:
        raise ValidationFailed.field("channel", "is required when the message opens a new ticket")
    text = step.opening.subject or _text_of(new)
    return await ticket_writes.insert_ticket(
        ctx,
        TicketWriteDTO(
            status=OPEN,
            subject=(step.opening.subject or subject_from(text)) if text.strip() else "(no subject)",
            channel_type=new.channel_type,
            channel_id=new.channel_id,
            uid=new.uid or contact_uid(new),
            from_number=new.from_number,
            to_number=new.to_number,
        ),
        link=False,  # _store links the end user, knowing their name and address
        require_custom_fields=step.opening.require_custom_fields,
    )


def _text_of(new: NewMessage) -> str:
    return (
        new.subject or new.text_body or new.message or (html_to_text(new.html_body) if new.html_body else "")
    )


async def _store(
    ctx: Ctx, ticket: Ticket, step: Conversing, msg: TicketMessage, *, reopen: bool
) -> TicketMessage:
    """Write the message, link its end user and bring the ticket up to date.

    The full-text index follows in the same transaction (the database maintains it). Unless the
    message is a draft or an internal note, the ticket's lastMessageDate and preview move to it,
    lastEndUserMessageID too when it is an incoming end-user message, and an incoming message
    reopens a closed ticket and marks it unread (`reopen`). The end user named by the uid is linked.
    """
    new = step.message
    await insert_now(ctx.db, msg)
    changes: dict[str, Any] = {}
    if latest.is_public(msg):
        changes = await latest.became_public(ctx, ticket, msg, reopen=reopen)
    if new.uid and not ticket.uid:
        changes["uid"] = new.uid
    name, email, phone = end_user_contact(new)
    uid = changes.get("uid", ticket.uid)
    await ticket_writes.link_uid(ctx, ticket.ticket_id, uid, name=name, email=email, phone=phone)
    if changes:
        # Last: on PostgreSQL the ticket's row stays locked from this UPDATE to the commit, and
        # every message into the same ticket waits for it.
        await update_now(ctx.db, ticket, changes)
    return msg
