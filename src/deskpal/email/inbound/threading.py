"""Which ticket an incoming mail joins, and why (its threadingReason).

In this order (docs/mail.md, "Inbound pipeline"):

1. `In-Reply-To`, then `References` newest first, naming the Message-ID of a message deskpal sent
   or received for this customer → that message's ticket ("In-Reply-To: <id>", "References: <id>").
2. The ticket tag in the subject (the channel's `ticketTag`, `[#123]` by default), wherever the
   sender's client put it ("AW: [#12] …", "Re: Fwd: … [#12]"), when the sender is the ticket's end
   user or a known participant (an address on its messages) → that ticket ("Subject: [#12]"). A
   tag from anyone else is not trusted: guessing a number must not put mail into a stranger's
   ticket.
3. Else a new ticket ("new").

A mail a person wrote answering a closed ticket reopens it, or, with the channel setting
`closedTicketReply: "newTicket"`, opens a follow-up ticket ("follow-up of #12 (In-Reply-To: …)").
Automatic mail joins a closed ticket without reopening it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.email import compose
from deskpal.email.inbound.parsed import ParsedMail
from deskpal.endusers.models import EndUser
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket, TicketEndUser

NEW = "new"
_MAX_IDS = 50  # a References header may list hundreds; the newest are the ones that match
_ADDRESS = re.compile(r"[^\s<>,;:\"'()\[\]]+@[^\s<>,;:\"'()\[\]]+")


@dataclass(frozen=True, slots=True)
class Threaded:
    ticket: Ticket | None  # None: the mail opens a new ticket
    reason: str
    follow_up_of: int | None = None  # the closed ticket a follow-up ticket continues


def header_ids(mail: ParsedMail) -> list[tuple[str, str]]:
    """(header, id) in the order they are tried: In-Reply-To, then References from the newest."""
    found: dict[str, str] = {}
    for header, ids in (("In-Reply-To", mail.in_reply_to), ("References", list(reversed(mail.references)))):
        for mid in ids:
            if mid and mid != mail.message_id:
                found.setdefault(mid, header)
    return [(header, mid) for mid, header in list(found.items())[:_MAX_IDS]]


async def _by_headers(ctx: Ctx, mail: ParsedMail) -> tuple[Ticket, str] | None:
    wanted = header_ids(mail)
    if not wanted:
        return None
    # The newest message of an id wins (one moved to another ticket takes its replies along).
    stmt = (
        select(TicketMessage.message_identifier, TicketMessage.ticket_id)
        .where(TicketMessage.message_identifier.in_([mid for _, mid in wanted]))
        .order_by(TicketMessage.message_id.desc())
    )
    tickets: dict[str | None, int] = {}
    for identifier, ticket_id in (await ctx.db.execute(stmt)).all():
        tickets.setdefault(identifier, ticket_id)
    for header, mid in wanted:
        if mid in tickets:
            ticket = await ctx.db.get(Ticket, tickets[mid])
            if ticket is not None:
                return ticket, f"{header}: {mid}"
    return None


def ticket_tag(channel: Channel) -> str:
    return str((channel.settings or {}).get("ticketTag") or compose.DEFAULT_TAG)


async def participants(ctx: Ctx, ticket: Ticket) -> set[str]:
    """Every address the ticket's conversation has seen (senders, recipients, reply-to) and its end
    users', lower-cased."""
    stmt = select(
        TicketMessage.from_address,
        TicketMessage.to_address,
        TicketMessage.cc_address,
        TicketMessage.reply_to_address,
    ).where(TicketMessage.ticket_id == ticket.ticket_id)
    found: set[str] = set()
    for row in (await ctx.db.execute(stmt)).all():
        for value in row:
            found.update(a.lower() for a in _ADDRESS.findall(value or ""))
    users = (
        select(EndUser.email, EndUser.uid)
        .join(TicketEndUser, TicketEndUser.end_user_id == EndUser.end_user_id)
        .where(TicketEndUser.ticket_id == ticket.ticket_id)
    )
    for email, uid in (await ctx.db.execute(users)).all():
        found.update(a.lower() for a in (email, uid) if a and "@" in a)
    if ticket.uid and "@" in ticket.uid:
        found.add(ticket.uid.lower())
    return found


async def _by_subject(ctx: Ctx, channel: Channel, mail: ParsedMail) -> tuple[Ticket | None, str | None]:
    """The ticket the subject's tag names and its reason; or (None, why the tag was not used)."""
    tag = ticket_tag(channel)
    ticket_id = compose.ticket_id_in_subject(mail.subject, tag)
    if ticket_id is None:
        return None, None
    shown = tag.replace("{ticketID}", str(ticket_id))
    ticket = await ctx.db.get(Ticket, ticket_id)
    if ticket is None:
        return None, f"Subject: {shown} names no ticket of this customer"
    sender = mail.sender.address.lower() if mail.sender else None
    if sender is None or sender not in await participants(ctx, ticket):
        who = sender or "a mail without From"
        return None, f"Subject: {shown} ignored: {who} is not a participant of ticket {ticket_id}"
    return ticket, f"Subject: {shown}"


async def thread(ctx: Ctx, channel: Channel, mail: ParsedMail) -> Threaded:
    """The ticket the mail joins (None: a new one) and why."""
    found = await _by_headers(ctx, mail)
    ignored = None
    if found is None:
        ticket, why = await _by_subject(ctx, channel, mail)
        found = (ticket, why) if ticket is not None and why else None
        ignored = None if found else why
    if found is None:
        return Threaded(None, f"{NEW} ({ignored})" if ignored else NEW)
    ticket, reason = found
    if ticket.is_closed and not mail.is_automatic and closed_reply(channel) == "newTicket":
        return Threaded(None, f"follow-up of #{ticket.ticket_id} ({reason})", follow_up_of=ticket.ticket_id)
    return Threaded(ticket, reason)


def closed_reply(channel: Channel) -> str:
    return str((channel.settings or {}).get("closedTicketReply") or "reopen")
