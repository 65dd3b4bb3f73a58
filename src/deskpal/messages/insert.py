"""Inserting a message into a ticket, keeping the ticket current."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deskpal.core.addresses import has_address, single_address_of
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import Unprocessable, ValidationFailed
from deskpal.core.tenancy import insert_now, update_now
from deskpal.messages import latest
from deskpal.messages.content import Content, derive_content
from deskpal.messages.html import has_visible_content
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets import queries as ticket_queries
from deskpal.tickets import writes as ticket_writes
from deskpal.tickets.models import Ticket


class NoRecipient(Unprocessable):
    code, title = "NO_RECIPIENT", "The message has nobody to be sent to"


def _refuse_meaningless(new: NewMessage, content: Content) -> None:
    """A message that could never be shown or sent is refused rather than stored."""
    if new.html_body and not (new.text_body or new.message) and not has_visible_content(content.html_body):
        raise ValidationFailed.field(new.html_field, "is empty once scripts and unsafe markup are removed")
    sending = new.send_pending and not (new.is_internal_note or new.is_draft)
    if sending and not has_address(new.to_address):
        raise NoRecipient(
            "the ticket's end user has no email address: name recipients, or do not send (send_email: false)"
        )


@dataclass(slots=True)
class NewMessage:
    """What a new message carries besides its ticket; the content is sanitised by add_message."""

    message: str | None = None
    subject: str | None = None
    html_body: str | None = None
    text_body: str | None = None
    incoming: bool = True
    sender_type: SenderType = SenderType.END_USER
    is_draft: bool = False
    is_internal_note: bool = False
    is_forward: bool = False
    channel_id: int | None = None
    channel_type: str | None = None
    from_address: str | None = None
    from_name: str | None = None
    to_address: str | None = None
    cc_address: str | None = None
    bcc_address: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    uid: str | None = None
    message_date: datetime | None = None
    headers: str | None = None
    message_identifier: str | None = None
    page_screenshot: str | None = None
    page_url: str | None = None
    additional_info: str | None = None
    ai_prompt: str | None = None
    email_template_id: int | None = None
    reply_to_message_id: int | None = None
    forward_from_message_id: int | None = None
    send_pending: bool = False
    # The request field the HTML body came in, for the error when nothing of it is left.
    html_field: str = "htmlBody"
    # An incoming message reopens a closed ticket and marks it unread (the API paths); seeding and
    # imports through add_message leave the ticket's state alone.
    reopen: bool = True
    attachment_refs: list[dict[str, Any]] = field(default_factory=list)
    custom_fields_data: dict[str, Any] = field(default_factory=dict)


async def add_message(
    ctx: Ctx,
    ticket_id: int,
    *,
    message: str | None = None,
    subject: str | None = None,
    html_body: str | None = None,
    text_body: str | None = None,
    incoming: bool = True,
    sender_type: SenderType = SenderType.END_USER,
    is_draft: bool = False,
    is_internal_note: bool = False,
    from_address: str | None = None,
    from_name: str | None = None,
    to_address: str | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    uid: str | None = None,
    message_date: datetime | None = None,
) -> TicketMessage:
    """Insert a message and keep its ticket current, in the caller's transaction (see insert).

    Unlike the API paths, this does not reopen a closed ticket (data seeding, chat intake).
    """
    new = NewMessage(
        message=message,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        incoming=incoming,
        sender_type=sender_type,
        is_draft=is_draft,
        is_internal_note=is_internal_note,
        from_address=from_address,
        from_name=from_name,
        to_address=to_address,
        from_number=from_number,
        to_number=to_number,
        uid=uid,
        message_date=message_date,
        reopen=False,
    )
    return await insert(ctx, await ticket_queries.get_ticket_row(ctx, ticket_id), new)


async def insert(ctx: Ctx, ticket: Ticket, new: NewMessage) -> TicketMessage:
    """Insert a message into a visible ticket and keep the ticket current.

    The full-text index follows in the same transaction (the database maintains it). Unless the
    message is a draft or an internal note, the ticket's lastMessageDate and preview move to it,
    lastEndUserMessageID too when it is an incoming end-user message, and an incoming message
    reopens a closed ticket and marks it unread. The end user named by the uid is linked.
    """
    content = derive_content(html_body=new.html_body, text_body=new.text_body, message=new.message)
    _refuse_meaningless(new, content)
    now = utcnow()
    is_rep = new.sender_type is SenderType.CUSTOMER_REP
    msg = TicketMessage(
        ticket_id=ticket.ticket_id,
        created_at=now,
        message_date=new.message_date,
        incoming=new.incoming,
        sender_type=new.sender_type.value,
        customer_rep_id=ctx.actor.rep_id if is_rep else None,
        created_by_rep_id=ctx.actor.rep_id,
        customer_rep_name=ctx.actor.name if is_rep and ctx.actor.rep_id is not None else None,
        created_by_rep_name=ctx.actor.name if ctx.actor.rep_id is not None else None,
        channel_id=new.channel_id if new.channel_id is not None else ticket.channel_id,
        channel_type=new.channel_type or ticket.channel_type,
        is_draft=new.is_draft,
        is_internal_note=new.is_internal_note,
        is_forward=new.is_forward,
        subject=new.subject,
        message=new.message,
        text_body=content.text_body,
        html_body=content.html_body,
        body_preview=content.body_preview,
        from_address=new.from_address,
        from_name=new.from_name,
        to_address=new.to_address,
        cc_address=new.cc_address,
        bcc_address=new.bcc_address,
        from_number=new.from_number,
        to_number=new.to_number,
        uid=new.uid,
        headers=new.headers,
        message_identifier=new.message_identifier,
        page_screenshot=new.page_screenshot,
        page_url=new.page_url,
        additional_info=new.additional_info,
        ai_prompt=new.ai_prompt,
        email_template_id=new.email_template_id,
        reply_to_message_id=new.reply_to_message_id,
        forward_from_message_id=new.forward_from_message_id,
        # Internal notes and drafts are never sent, whatever the caller asked.
        send_pending=new.send_pending and not (new.is_internal_note or new.is_draft),
        send_requested_at=now if new.send_pending and not (new.is_internal_note or new.is_draft) else None,
        is_opened=False,
        is_bounced=False,
        is_escalated=False,
        attachment_refs=list(new.attachment_refs),
        custom_fields_data=dict(new.custom_fields_data),
    )
    await insert_now(ctx.db, msg)
    changes = await latest.became_public(ctx, ticket, msg, reopen=new.reopen) if latest.is_public(msg) else {}
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


def end_user_contact(new: NewMessage) -> tuple[str | None, str | None, str | None]:
    """(name, email, phone) of the end user a message is from (incoming) or to (outgoing)."""
    if new.incoming:
        name, email, phone = new.from_name, new.from_address, new.from_number
    else:
        # Several recipients name no single end user.
        name, email, phone = None, single_address_of(new.to_address), new.to_number
    return name, email, phone
