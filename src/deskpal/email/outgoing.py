"""An outgoing message as the mail it becomes: what preview shows and the send job sends.

`assemble` reads what the mail is made of (the message, its ticket, channel, template, thread and
attachments) in the caller's transaction and returns plain data; `compose.build` turns it into
MIME. Both the preview endpoint and the worker call it, so the preview is the mail.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from typing import Any

from sqlalchemy import false, select

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.customers.models import Customer, CustomerRep
from deskpal.email import compose, templates, tracking
from deskpal.email.delivery import mail_channel, sender_address
from deskpal.email.models import EmailTemplate
from deskpal.email.runtime import runtime
from deskpal.email.service import template_for
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets.models import Ticket

DEFAULT_MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AttachmentSource:
    """An attachment the mail carries: its metadata, and where its bytes are."""

    attachment_id: int
    message_id: int
    file_name: str
    content_type: str
    size: int
    content_id: str | None
    storage_key: str
    access_token: str


@dataclass(slots=True, kw_only=True)
class Assembled:
    mail: compose.Mail  # attachments not yet read: see `attachments`
    attachments: list[AttachmentSource] = field(default_factory=list)
    channel: Channel
    job_ad_id: str | None = None
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES

    @property
    def attachment_bytes(self) -> int:
        return sum(a.size for a in self.attachments)

    def oversized(self) -> bool:
        return self.attachment_bytes > self.max_attachment_bytes


def channel_limit(channel: Channel) -> int:
    value = (channel.settings or {}).get("maxAttachmentBytes")
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_ATTACHMENT_BYTES


def ticket_tag(channel: Channel) -> str:
    tag = (channel.settings or {}).get("ticketTag")
    return tag if isinstance(tag, str) and "{ticketID}" in tag else compose.DEFAULT_TAG


@dataclass(slots=True)
class AssemblyCache:
    """What the mails of one batch share or read together in its transaction: the templates they
    name, the customer, and (after `prefetch`) their tickets and attachments."""

    templates: dict[int | None, EmailTemplate | None] = field(default_factory=dict)
    customer: Customer | None = None
    tickets: dict[int, Ticket] = field(default_factory=dict)
    attachments: dict[int, list[AttachmentSource]] | None = None  # by message id, once prefetched
    threads: dict[int, list[TicketMessage]] = field(default_factory=dict)  # by ticket id

    async def template(self, ctx: Ctx, email_template_id: int | None) -> EmailTemplate | None:
        if email_template_id not in self.templates:
            self.templates[email_template_id] = await template_for(ctx, email_template_id)
        return self.templates[email_template_id]

    async def customer_of(self, ctx: Ctx) -> Customer | None:
        if self.customer is None:
            self.customer = await ctx.db.get(Customer, ctx.customer_id)
        return self.customer

    async def ticket(self, ctx: Ctx, ticket_id: int) -> Ticket | None:
        if ticket_id not in self.tickets:
            found = await ctx.db.get(Ticket, ticket_id)
            if found is None:
                return None
            self.tickets[ticket_id] = found
        return self.tickets[ticket_id]

    async def thread(self, ctx: Ctx, ticket_id: int) -> list[TicketMessage]:
        if ticket_id not in self.threads:
            self.threads[ticket_id] = list((await ctx.db.scalars(_thread_statement([ticket_id]))).all())
        return self.threads[ticket_id]

    async def prefetch(self, ctx: Ctx, messages: Sequence[TicketMessage]) -> None:
        """The messages' tickets and threads, and the attachments of the messages and of those
        they forward, each in one statement (kept here: the session's identity map holds objects
        weakly)."""
        ticket_ids = sorted({m.ticket_id for m in messages})
        if ticket_ids:
            stmt = select(Ticket).where(Ticket.ticket_id.in_(ticket_ids))
            self.tickets.update((t.ticket_id, t) for t in (await ctx.db.scalars(stmt)).all())
            self.threads.update((i, []) for i in ticket_ids)
            for m in (await ctx.db.scalars(_thread_statement(ticket_ids))).all():
                self.threads[m.ticket_id].append(m)
        ids = {m.message_id for m in messages} | {
            m.forward_from_message_id for m in messages if m.forward_from_message_id is not None
        }
        self.attachments = {i: [] for i in ids}
        for source in await attachments_of(ctx, sorted(ids)):
            self.attachments[source.message_id].append(source)

    async def attachments_of(self, ctx: Ctx, message_ids: Sequence[int]) -> list[AttachmentSource]:
        known = self.attachments
        if known is None or any(i not in known for i in message_ids):
            return await attachments_of(ctx, message_ids)
        return sorted((a for i in message_ids for a in known[i]), key=lambda a: a.attachment_id)


async def assemble(
    ctx: Ctx, msg: TicketMessage, *, when: datetime | None = None, cache: AssemblyCache | None = None
) -> Assembled:
    """The mail `msg` (an outgoing message, sent or to be sent) becomes (`cache`: shared by the
    mails of one transaction)."""
    cache = cache or AssemblyCache()
    channel = await mail_channel(ctx, msg.channel_id)
    ticket = await cache.ticket(ctx, msg.ticket_id)
    assert ticket is not None  # the message's ticket goes with it (ON DELETE CASCADE)
    from_address = msg.from_address or sender_address(channel)
    tag = ticket_tag(channel)
    parent, chain = await _thread(ctx, msg, cache)
    forwarded = await _message(ctx, msg.forward_from_message_id) if msg.forward_from_message_id else None
    subject = _subject(msg, ticket, parent, forwarded, tag)
    text, html = msg.text_body or msg.message, msg.html_body
    if forwarded is not None:
        text, html = _with_forwarded(text, html, forwarded)
    template = await cache.template(ctx, msg.email_template_id)
    wrapped = templates.wrap(
        template,
        await _context(ctx, msg, ticket, channel, await cache.customer_of(ctx)),
        text=text,
        html=html,
    )
    base = runtime().public_url
    job_ad = tracking.job_ad_of(msg)
    channel_from = sender_address(channel)
    mail = compose.Mail(
        from_address=from_address,
        from_name=msg.from_name or (channel.settings or {}).get("fromName"),
        to=_split(msg.to_address),
        cc=_split(msg.cc_address),
        bcc=_split(msg.bcc_address),
        reply_to=channel_from if channel_from and channel_from.lower() != from_address.lower() else None,
        subject=subject,
        text=wrapped.text,
        html=wrapped.html,
        message_id=msg.message_identifier or compose.new_message_id(from_address),
        in_reply_to=parent.message_identifier if parent is not None else None,
        references=compose.thread_references(chain, None) if parent is not None else [],
        date=when or utcnow(),
        auto_submitted=msg.sender_type in (SenderType.AI.value, SenderType.SYSTEM.value),
        list_unsubscribe_url=tracking.unsubscribe_url(base, msg),
        pixel_url=tracking.pixel_url(base, msg),
        headers={"X-Deskpal-Ticket-ID": str(ticket.ticket_id)},
    )
    carried = [msg.message_id] + ([forwarded.message_id] if forwarded else [])
    sources = await cache.attachments_of(ctx, carried)
    return Assembled(
        mail=mail,
        attachments=sources,
        channel=channel,
        job_ad_id=job_ad,
        max_attachment_bytes=channel_limit(channel),
    )


def _split(addresses: str | None) -> list[str]:
    """Stored address lists are comma- or semicolon-separated; commas inside quoted names stay.
    Names stay as written (compose encodes them): `Zoë <zoe@x>`, never an encoded word."""
    if not addresses:
        return []
    pairs = email.utils.getaddresses([addresses.replace(";", ",")])
    return [str(Address(display_name=name, addr_spec=addr)) if name else addr for name, addr in pairs if addr]


async def _message(ctx: Ctx, message_id: int | None) -> TicketMessage | None:
    if message_id is None:
        return None
    return await ctx.db.get(TicketMessage, message_id)


def _thread_statement(ticket_ids: Sequence[int]) -> Any:
    """The public mails of the tickets that carry a Message-ID, oldest first."""
    return (
        select(TicketMessage)
        .where(
            TicketMessage.ticket_id.in_(ticket_ids),
            TicketMessage.is_draft == false(),
            TicketMessage.is_internal_note == false(),
            TicketMessage.message_identifier.is_not(None),
        )
        .order_by(TicketMessage.created_at, TicketMessage.message_id)
    )


async def _thread(
    ctx: Ctx, msg: TicketMessage, cache: AssemblyCache
) -> tuple[TicketMessage | None, list[str]]:
    """The message this one answers (its reply_to, else the ticket's newest public mail before it;
    none for a new mail or a forward), and the thread's Message-IDs up to it, oldest first."""
    if msg.forward_from_message_id is not None:
        return None, []
    thread = await cache.thread(ctx, msg.ticket_id)
    earlier = [m for m in thread if m.message_id < msg.message_id]
    parent = None
    if msg.reply_to_message_id is not None:
        parent = next((m for m in earlier if m.message_id == msg.reply_to_message_id), None)
    elif msg.is_forward is False and msg.subject is None and earlier:
        parent = earlier[-1]  # a reply written without naming what it answers
    if parent is None:
        return None, []
    chain = [
        m.message_identifier for m in earlier if m.message_id <= parent.message_id and m.message_identifier
    ]
    return parent, chain


def _subject(
    msg: TicketMessage,
    ticket: Ticket,
    parent: TicketMessage | None,
    forwarded: TicketMessage | None,
    tag: str,
) -> str:
    if forwarded is not None:
        return compose.forward_subject(
            msg.subject or forwarded.subject or ticket.subject, ticket.ticket_id, tag
        )
    if msg.subject:
        return compose.tagged_subject(msg.subject, ticket.ticket_id, tag)
    return compose.reply_subject(
        (parent.subject if parent is not None else None) or ticket.subject, ticket.ticket_id, tag
    )


def _with_forwarded(text: str | None, html: str | None, original: TicketMessage) -> tuple[str, str]:
    from html import escape

    when = (original.message_date or original.created_at).strftime("%a, %d %b %Y %H:%M UTC")
    sender = original.from_address or ""
    if original.from_name:
        sender = f"{original.from_name} <{sender}>"
    lines = [
        "---------- Forwarded message ---------",
        f"From: {sender}",
        f"Date: {when}",
        f"Subject: {original.subject or ''}",
        f"To: {original.to_address or ''}",
    ]
    original_text = original.text_body or original.message or ""
    out_text = "\n".join([text or "", "", *lines, "", original_text]).strip("\n")
    head = "<br>".join(escape(line) for line in lines)
    body = original.html_body or "<p>" + escape(original_text).replace("\n", "<br>") + "</p>"
    mine = html or ("<p>" + escape(text or "").replace("\n", "<br>") + "</p>" if text else "")
    return out_text, f'{mine}<div class="forwarded"><p>{head}</p><blockquote>{body}</blockquote></div>'


async def _context(
    ctx: Ctx, msg: TicketMessage, ticket: Ticket, channel: Channel, customer: Customer | None
) -> dict[str, Any]:
    """What a template may show: plain values only (the sandbox sees nothing else)."""
    rep = await ctx.db.get(CustomerRep, msg.customer_rep_id) if msg.customer_rep_id else None
    to = _split(msg.to_address)
    end_name, end_email = email.utils.parseaddr(to[0]) if to else ("", "")
    return {
        "ticket": {"id": ticket.ticket_id, "subject": ticket.subject or ""},
        "end_user": {"name": end_name or "", "email": end_email or ""},
        "rep": {
            "name": (rep.name if rep else msg.customer_rep_name) or "",
            "email": (rep.email if rep else "") or "",
        },
        "channel": {"name": channel.name},
        "customer": {"name": customer.name if customer else ""},
        "message": {"subject": msg.subject or ticket.subject or ""},
        "now": utcnow().isoformat(),
    }


async def attachments_of(ctx: Ctx, message_ids: Sequence[int]) -> list[AttachmentSource]:
    stmt = (
        select(TicketMessageAttachment)
        .where(TicketMessageAttachment.message_id.in_(message_ids))
        .order_by(TicketMessageAttachment.ticket_message_attachment_id)
    )
    return [
        AttachmentSource(
            attachment_id=a.ticket_message_attachment_id,
            message_id=a.message_id,
            file_name=a.file_name,
            content_type=a.content_type,
            size=a.file_size_bytes,
            content_id=a.content_id,
            storage_key=a.storage_key,
            access_token=a.access_token,
        )
        for a in (await ctx.db.scalars(stmt)).all()
    ]
