"""Escalation: a message marked for a human's attention, its ticket with it, and a notice mailed.

`POST /api/TicketMessages/{ticketToken}/escalate` (an end user, by the ticket's public token)
escalates the ticket's newest message; `POST .../{messageId}/escalate-by-id` (a rep or phone auth)
one message. Both mark the message and the ticket, keep the comment in the ticket's
aiFeedbackComments, and enqueue `email.escalation_notice` in the same transaction when there is an
address to notify: the body's `email`, else the Email channel's `escalationAddress`, else nobody.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlalchemy import desc, false, select

from deskpal.channels.models import Channel, ChannelType
from deskpal.channels.service import secret_settings
from deskpal.core.addresses import EmailAddress
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import NotFound
from deskpal.core.jobs import PermanentJobError, RetryableJobError
from deskpal.core.schemas import ApiModel, CleanStr
from deskpal.email.delivery import mail_channel, sender_address
from deskpal.email.runtime import runtime
from deskpal.email.smtp_channel import SmtpNotConfigured
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket

NOTICE_JOB = "email.escalation_notice"
MAX_COMMENT = 4000


class EscalateRequest(ApiModel):
    """The body of both escalation routes (the older Tickets page's example)."""

    feedback_comment: Annotated[CleanStr, Field(max_length=MAX_COMMENT)] | None = Field(
        default=None, description="Why: kept in the ticket's aiFeedbackComments and sent in the notice."
    )
    email: EmailAddress | None = Field(
        default=None, description="Who to notify; default: the channel's escalationAddress, else nobody."
    )


class EscalatedDTO(ApiModel):
    message: str = "Ticket escalated"


class EscalationNotice(BaseModel):
    """The notice job's payload: the escalated message, and the address to tell."""

    message_id: int
    address: str


async def newest_message(ctx: Ctx, ticket_id: int) -> TicketMessage:
    """The ticket's newest message that its end user could have seen (drafts and notes excluded)."""
    stmt = (
        select(TicketMessage)
        .where(
            TicketMessage.ticket_id == ticket_id,
            TicketMessage.is_draft == false(),
            TicketMessage.is_internal_note == false(),
        )
        .order_by(desc(TicketMessage.created_at), desc(TicketMessage.message_id))
        .limit(1)
    )
    message = (await ctx.db.scalars(stmt)).first()
    if message is None:
        raise NotFound("the ticket has no message to escalate")
    return message


async def escalate(ctx: Ctx, message: TicketMessage, body: EscalateRequest) -> None:
    """Escalate a message the caller may act on (loaded in ctx's session), and its ticket.

    Escalating again with another comment appends it and notifies again. The same comment on a
    message already escalated with it is a repeat (a double click, a client retrying a request that
    did commit): nothing changes, and the notice's idempotency key, made from the escalation's
    time and the address, is the one already used, so nobody is mailed twice.
    """
    comment = (body.feedback_comment or "").strip() or None
    # FOR UPDATE (PostgreSQL): two escalations of one ticket at once must both keep their comment.
    ticket_stmt = select(Ticket).where(Ticket.ticket_id == message.ticket_id).with_for_update()
    ticket = (await ctx.db.scalars(ticket_stmt)).one()
    repeat = (
        message.is_escalated and message.escalated_at is not None and message.escalation_comment == comment
    )
    if not repeat:
        message.is_escalated = True
        message.escalation_comment = comment
        message.escalated_at = utcnow()
        if comment:
            # A new list: the JSON column sees a changed value only when the attribute is assigned.
            ticket.ai_feedback_comments = [*(ticket.ai_feedback_comments or ()), comment]
    ticket.escalated = True
    await ctx.db.flush()
    address = body.email or await _channel_address(ctx, message.channel_id or ticket.channel_id)
    if address is None or message.escalated_at is None:
        return
    stamp = int(message.escalated_at.timestamp() * 1_000_000)
    who = hashlib.sha256(address.encode()).hexdigest()[:16]
    await ctx.enqueue(
        NOTICE_JOB,
        EscalationNotice(message_id=message.message_id, address=address),
        idempotency_key=f"escalation:{message.message_id}:{stamp}:{who}",
    )


async def _channel_address(ctx: Ctx, channel_id: int | None) -> str | None:
    channel = await ctx.db.get(Channel, channel_id) if channel_id is not None else None
    if channel is None or channel.channel_type != ChannelType.EMAIL.value:
        return None
    value = (channel.settings or {}).get("escalationAddress")
    return value if isinstance(value, str) and value else None


# --- the notice ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """What the notice mail needs, read in one short transaction before any network step."""

    address: str
    subject: str
    text: str
    from_address: str
    from_name: str | None
    smtp_settings: dict[str, Any]  # the sending channel's settings, secrets opened


async def load_notice(ctx: Ctx, p: EscalationNotice) -> Notice | None:
    """The notice of an escalated message; None when the message is gone (nothing to tell).
    PermanentJobError when no Email channel of the ticket can send it."""
    message = await ctx.db.get(TicketMessage, p.message_id)
    if message is None:
        return None
    ticket = await ctx.db.get(Ticket, message.ticket_id)
    if ticket is None:
        return None
    try:
        # The channel the ticket's mail leaves through (email/delivery.py), as for replies.
        channel = await mail_channel(ctx, message.channel_id or ticket.channel_id)
    except SmtpNotConfigured as exc:
        raise PermanentJobError(f"no Email channel can send the escalation notice: {exc.detail}") from exc
    settings = secret_settings(channel)
    from_address = sender_address(channel)
    subject = f"Escalated: {ticket.subject or f'ticket #{ticket.ticket_id}'}"
    lines = [
        f"Ticket #{ticket.ticket_id} ({ticket.subject or 'no subject'}) was escalated.",
        "",
        f"Comment: {message.escalation_comment or '(none)'}",
        "",
        f"Message #{message.message_id} from {message.from_address or message.from_name or 'unknown'}:",
        message.text_body or message.message or message.body_preview or "",
    ]
    return Notice(
        address=p.address,
        subject=subject[:998],
        text="\n".join(lines),
        from_address=str(from_address),
        from_name=settings.get("fromName"),
        smtp_settings=settings,
    )


async def deliver_notice(notice: Notice) -> None:
    """Send the notice over the channel's SMTP (compose and smtp arrive with the send path)."""
    from deskpal.email import compose, smtp

    mail = compose.Mail(
        from_address=notice.from_address,
        from_name=notice.from_name,
        to=[notice.address],
        subject=notice.subject,
        text=notice.text,
        html=None,
        message_id=compose.new_message_id(notice.from_address),
        date=utcnow(),
        auto_submitted=True,
    )
    config = smtp.config_of(
        notice.smtp_settings, ca_file=runtime().smtp_ca_file, timeout=runtime().smtp_timeout
    )
    if config is None:
        raise PermanentJobError("the channel has no SMTP settings")
    try:
        await smtp.deliver(
            config, compose.build(mail), sender=notice.from_address, recipients=compose.recipients(mail)
        )
    except smtp.SmtpFailure as exc:
        if exc.transient:
            raise RetryableJobError(str(exc)) from exc
        raise PermanentJobError(str(exc)) from exc
