"""A delivery-status report about mail deskpal sent: the sent message marked bounced, a note on its
ticket. A report naming nothing deskpal sent is kept with no ticket: anyone can write a "bounce",
so only one that quotes our own Message-ID is believed. Delay warnings mark nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import false, select

from deskpal.conversations.schemas import OutgoingMessage
from deskpal.conversations.service import send
from deskpal.core.context import Ctx
from deskpal.email.delivery import DeliveryStatus
from deskpal.email.inbound.parsed import Bounce, ParsedMail
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets.models import Ticket

_MAX_IDS = 50


@dataclass(frozen=True, slots=True)
class BounceOutcome:
    outcome: str
    message_id: int | None = None  # the note written on the bounced message's ticket
    ticket_id: int | None = None


def is_delay(bounce: Bounce) -> bool:
    return bounce.delay or (bounce.action or "").lower() == "delayed"


def _candidate_ids(mail: ParsedMail) -> list[str]:
    # The report's quoted original first; some non-standard reports only thread by the headers.
    ids = [*(mail.bounce.original_message_ids if mail.bounce else ()), *mail.in_reply_to, *mail.references]
    return list(dict.fromkeys(i for i in ids if i))[:_MAX_IDS]


async def _ours(ctx: Ctx, ids: list[str]) -> list[TicketMessage]:
    if not ids:
        return []
    stmt = (
        select(TicketMessage)
        .where(TicketMessage.message_identifier.in_(ids), TicketMessage.incoming == false())
        .order_by(TicketMessage.message_id)
    )
    return list((await ctx.db.scalars(stmt)).all())


def _note(bounce: Bounce, msg: TicketMessage) -> str:
    who = ", ".join(bounce.recipients) or msg.to_address or "the recipient"
    status = f" ({bounce.status})" if bounce.status else ""
    kind = "permanently" if bounce.permanent else "temporarily"
    text = f"The mail of message {msg.message_id} to {who} bounced{status}: delivery failed {kind}."
    if bounce.diagnostic:
        text += f"\nThe receiving server said: {bounce.diagnostic}"
    return text


async def file_bounce(ctx: Ctx, mail: ParsedMail) -> BounceOutcome:
    """Mark what the report is about; opens no ticket."""
    bounce = mail.bounce
    if bounce is not None and is_delay(bounce):
        return BounceOutcome("a delay warning: delivery is still being tried, nothing is marked")
    found = await _ours(ctx, _candidate_ids(mail))
    if bounce is None or not found:
        return BounceOutcome("a delivery report naming no mail deskpal sent: not trusted, no ticket")
    note: TicketMessage | None = None
    for msg in found:
        msg.is_bounced = True
        msg.bounce_status = (bounce.status or "")[:32] or None
        msg.bounce_diagnostic = bounce.diagnostic
        msg.delivery_status = DeliveryStatus.BOUNCED.value
        ticket = await ctx.db.get(Ticket, msg.ticket_id)
        if ticket is None:
            continue
        written = await send(
            ctx,
            OutgoingMessage(
                message=NewMessage(
                    message=_note(bounce, msg),
                    incoming=False,
                    sender_type=SenderType.SYSTEM,
                    is_internal_note=True,
                    channel_id=msg.channel_id,
                ),
                ticket=ticket,
            ),
        )
        note = note or written
    await ctx.db.flush()
    names = ", ".join(str(m.message_id) for m in found)
    return BounceOutcome(
        f"a bounce of message {names}: marked bounced, noted on its ticket",
        message_id=note.message_id if note else None,
        ticket_id=note.ticket_id if note else found[0].ticket_id,
    )
