"""A new message's row: its content sanitised and checked, its author stamped.

The row is written, and its ticket kept current, by deskpal.conversations (intake and send): the one
path every new message takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import ValidationFailed
from deskpal.messages.content import Content, derive_content
from deskpal.messages.html import has_visible_content
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets.models import Ticket


@dataclass(slots=True)
class NewMessage:
    """What a new message carries besides its ticket; new_row sanitises the content."""

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
    attachment_refs: list[dict[str, Any]] = field(default_factory=list)
    custom_fields_data: dict[str, Any] = field(default_factory=dict)


def refuse_meaningless(new: NewMessage, content: Content, *, html_field: str) -> None:
    """A message that could never be shown is refused rather than stored (html_field: the request
    field the HTML body came in, for the error when nothing of it is left)."""
    if new.html_body and not (new.text_body or new.message) and not has_visible_content(content.html_body):
        raise ValidationFailed.field(html_field, "is empty once scripts and unsafe markup are removed")


def new_row(ctx: Ctx, ticket: Ticket, new: NewMessage, *, html_field: str = "htmlBody") -> TicketMessage:
    """The message's row in a visible ticket, not yet written: content derived (a meaningless one
    refused), the acting rep stamped as its author, the ticket's channel unless it names one. No
    pending send: conversations.send records that."""
    content = derive_content(html_body=new.html_body, text_body=new.text_body, message=new.message)
    refuse_meaningless(new, content, html_field=html_field)
    now = utcnow()
    is_rep = new.sender_type is SenderType.CUSTOMER_REP
    return TicketMessage(
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
        send_pending=False,
        send_requested_at=None,
        is_opened=False,
        is_bounced=False,
        is_escalated=False,
        attachment_refs=list(new.attachment_refs),
        custom_fields_data=dict(new.custom_fields_data),
    )
