"""A new message's row: its content sanitised and checked, its author stamped.

The row is written, and its ticket kept current, by deskpal.conversations (intake and send): the one
path every new message takes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import ValidationFailed
from deskpal.messages.content import Content, derive_content
from deskpal.messages.html import has_visible_content
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets.models import Ticket


@dataclass(slots=True, kw_only=True)
class NewMessage:
    """What the writer of a new message gives: the one declaration of a message's given fields.

    Each field is the ticket_message column of the same name, and new_row copies them all; the
    TicketMessages API copies those its create DTO spells alike (conversations.ticket_messages).
    What the server decides (ids, times, the author, delivery and tracking state) is not here.
    """

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
    external_id: str | None = None  # the network's id of the message: stored once per channel
    # Inbound mail's: why it joined its ticket, whether it is automatic mail, where replies go.
    threading_reason: str | None = None
    is_auto_reply: bool = False
    reply_to_address: str | None = None
    page_screenshot: str | None = None
    page_url: str | None = None
    additional_info: str | None = None
    ai_prompt: str | None = None
    email_template_id: int | None = None
    reply_to_message_id: int | None = None
    forward_from_message_id: int | None = None
    attachment_refs: list[dict[str, Any]] = field(default_factory=list)
    custom_fields_data: dict[str, Any] = field(default_factory=dict)


GIVEN_FIELDS = tuple(f.name for f in fields(NewMessage))


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
    rep_id = ctx.actor.rep_id
    rep_name = ctx.actor.name if rep_id is not None else None
    is_rep = new.sender_type is SenderType.CUSTOMER_REP
    row: dict[str, Any] = {name: getattr(new, name) for name in GIVEN_FIELDS}
    row.update(
        # Derived from what was given.
        html_body=content.html_body,
        text_body=content.text_body,
        body_preview=content.body_preview,
        sender_type=new.sender_type.value,
        channel_id=new.channel_id if new.channel_id is not None else ticket.channel_id,
        channel_type=new.channel_type or ticket.channel_type,
        attachment_refs=list(new.attachment_refs),
        custom_fields_data=dict(new.custom_fields_data),
        # What the server decides: the ticket, the time, the author (the acting rep).
        ticket_id=ticket.ticket_id,
        created_at=now,
        customer_rep_id=rep_id if is_rep else None,
        created_by_rep_id=rep_id,
        customer_rep_name=rep_name if is_rep else None,
        created_by_rep_name=rep_name,
        # Not sent (conversations.send records a pending send), opened, bounced or escalated yet.
        send_pending=False,
        send_requested_at=None,
        is_opened=False,
        is_bounced=False,
        is_escalated=False,
        # The open-tracking pixel's credential (docs/mail.md): only what goes out can be opened.
        open_token=None if new.incoming else secrets.token_urlsafe(24),
        open_count=0,
    )
    return TicketMessage(**row)
