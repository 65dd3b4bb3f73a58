"""Adding messages to tickets (issue 5 builds the TicketMessages API on this)."""

from __future__ import annotations

import html
import re
from datetime import datetime

from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.tickets import service as tickets

PREVIEW_CHARS = 200
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def plain_text(html_body: str) -> str:
    """Rough text of an HTML body (issue 5 replaces this with its sanitiser's text)."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", html_body))).strip()


def preview_of(text: str) -> str:
    flat = _SPACE.sub(" ", text).strip()
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1].rstrip() + "…"


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
    """Insert a message and keep its ticket current, in the caller's transaction.

    The full-text index follows in the same transaction (the database maintains it). The ticket's
    lastMessageDate, preview and lastEndUserMessageID move to this message unless it is a draft or
    an internal note; the end user named by the uid is linked.
    """
    ticket = await tickets.get_ticket(ctx, ticket_id)
    body = text_body or message or (plain_text(html_body) if html_body else None)
    msg = TicketMessage(
        ticket_id=ticket.ticket_id,
        created_at=utcnow(),
        message_date=message_date,
        incoming=incoming,
        sender_type=sender_type.value,
        customer_rep_id=ctx.actor.rep_id if sender_type is SenderType.CUSTOMER_REP else None,
        is_draft=is_draft,
        is_internal_note=is_internal_note,
        subject=subject,
        message=message,
        text_body=body,
        html_body=html_body,
        body_preview=preview_of(body) if body else None,
        from_address=from_address,
        from_name=from_name,
        to_address=to_address,
        from_number=from_number,
        to_number=to_number,
        uid=uid,
        custom_fields_data={},
    )
    ctx.db.add(msg)
    await ctx.db.flush()
    if not (is_draft or is_internal_note):
        ticket.last_message_date = message_date or msg.created_at
        if msg.body_preview:
            ticket.preview = msg.body_preview
        if incoming and sender_type is SenderType.END_USER:
            ticket.last_end_user_message_id = msg.message_id
    if uid and not ticket.uid:
        ticket.uid = uid
    await ctx.db.flush()
    await tickets.link_uid(ctx, ticket, name=from_name, email=from_address)
    return msg
