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
from deskpal.email.inbound.lookups import Lookups, header_ids
from deskpal.email.inbound.parsed import ParsedMail
from deskpal.endusers.models import EndUser
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket, TicketEndUser

__all__ = ["NEW", "Threaded", "closed_reply", "header_ids", "participants", "thread", "ticket_tag"]

NEW = "new"
_ADDRESS = re.compile(r"[^\s<>,;:\"'()\[\]]+@[^\s<>,;:\"'()\[\]]+")


@dataclass(frozen=True, slots=True)
class Threaded:
    ticket: Ticket | None  # None: the mail opens a new ticket
    reason: str
    follow_up_of: int | None = None  # the closed ticket a follow-up ticket continues


async def _by_headers(ctx: Ctx, mail: ParsedMail, lookups: Lookups) -> tuple[Ticket, str] | None:
    wanted = header_ids(mail)
    if not wanted:
        return None
    # The newest message of an id wins (one moved to another ticket takes its replies along).
    found = await lookups.messages(ctx, [mid for _, mid in wanted])
    for header, mid in wanted:
        if mid in found:
            ticket = await ctx.db.get(Ticket, found[mid][-1].ticket_id)
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


async def thread(ctx: Ctx, channel: Channel, mail: ParsedMail, lookups: Lookups | None = None) -> Threaded:
    """The ticket the mail joins (None: a new one) and why (`lookups`: a batch's, read once)."""
    found = await _by_headers(ctx, mail, lookups or Lookups())
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
