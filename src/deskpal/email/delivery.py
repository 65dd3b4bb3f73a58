"""A message's way out by mail: which channel sends it, its delivery states, and its send job.

The request that sends a message writes it `queued` with its Message-ID fixed and its send job, in
one transaction (conversations.send / send_draft); the worker (email/outbox.py) moves it through
`sending` to `sent`, `deferred` (a 4xx or an unreachable server, retried with backoff), `failed`
(a 5xx, or retries exhausted) or `suppressed` (its job-ad recipient unsubscribed); a bounce report
received later makes it `bounced`. docs/mail.md.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select

from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.email import compose
from deskpal.email.smtp_channel import SmtpNotConfigured
from deskpal.messages.models import TicketMessage

SEND_KIND = "email.send"


class DeliveryStatus(CaseInsensitiveEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    # A delivery-status report came back for it (email/inbound/bounce_marks.py): not delivered after all.
    BOUNCED = "bounced"


# States a send can still leave by itself (the job will run again).
IN_FLIGHT = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED})
# States after which the message was delivered, or will be: sending it again would send it twice.
TAKEN = IN_FLIGHT | {DeliveryStatus.SENT}


class SendMail(BaseModel):
    message_id: int
    # The store its attachments are read from (storage_for), and whether oversized ones go as links.
    storage: str | None = None
    attachments_as_links: bool = False


def sends_by_mail(channel_type: str | None) -> bool:
    """Messages of Email tickets, and of tickets with no channel, leave as mail; the other
    channels have their own networks (a chat reply is read by the widget)."""
    return channel_type in (None, ChannelType.EMAIL.value)


def can_send(channel: Channel) -> bool:
    return channel.channel_type == ChannelType.EMAIL.value and bool((channel.settings or {}).get("smtpHost"))


async def mail_channel(ctx: Ctx, channel_id: int | None) -> Channel:
    """The Email channel a message leaves through: its own when it can send, else the customer's
    first Email channel with SMTP settings; SmtpNotConfigured when there is none."""
    if channel_id is not None:
        own = await ctx.db.get(Channel, channel_id)
        if own is not None and can_send(own):
            return own
    stmt = select(Channel).where(Channel.channel_type == ChannelType.EMAIL.value).order_by(Channel.channel_id)
    for channel in (await ctx.db.scalars(stmt)).all():
        if can_send(channel):
            return channel
    raise SmtpNotConfigured(
        "no Email channel has SMTP settings (smtpHost): configure one under /api/Channels",
        errors=[{"field": "settings.smtpHost", "message": "is not set on any Email channel"}],
    )


def sender_address(channel: Channel) -> str:
    settings = channel.settings or {}
    return str(settings.get("fromAddress") or settings.get("smtpUser") or "")


async def prepare(ctx: Ctx, msg: TicketMessage) -> None:
    """Before the message is written: the channel that sends it (SmtpNotConfigured when none can),
    its sender when it names none, its Message-ID fixed before the first attempt, `queued`."""
    channel = await mail_channel(ctx, msg.channel_id)
    if not msg.from_address:
        msg.from_address = sender_address(channel)
        msg.from_name = msg.from_name or (channel.settings or {}).get("fromName")
    if msg.message_identifier is None:
        msg.message_identifier = compose.new_message_id(msg.from_address or sender_address(channel))
    msg.delivery_status, msg.delivery_error, msg.delivery_response = DeliveryStatus.QUEUED.value, None, None


async def enqueue(ctx: Ctx, msg: TicketMessage, *, storage: str | None, as_links: bool = False) -> None:
    """Write the prepared message's send job, in the caller's transaction (the message is written:
    it has its id). The job's key names this request of the send (its send_requested_at): a retried
    request is one job, a failed message sent again another."""
    await ctx.enqueue(
        SEND_KIND,
        SendMail(message_id=msg.message_id, storage=storage, attachments_as_links=as_links),
        idempotency_key=f"send:{msg.message_id}:{(msg.send_requested_at or msg.created_at).isoformat()}",
    )
