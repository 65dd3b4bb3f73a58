"""Ticket messages: adding them (keeping the ticket current), reading, editing, topics.

Row visibility: a message is visible when its ticket is (`deskpal.tickets.visibility.visible`); phone
auth further sees only messages of its own channel, and never internal notes (`visible`, below).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, false, func, select, true
from sqlalchemy.orm import joinedload, selectinload

from deskpal.attachments import service as attachments
from deskpal.channels.models import Channel
from deskpal.core.addresses import has_address, single_address_of
from deskpal.core.context import Actor, Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from deskpal.core.schemas import PageParams, PageResult, built
from deskpal.core.tenancy import get_now, insert_now, update_now
from deskpal.customfields.models import EntityType
from deskpal.customfields.schemas import CustomFieldDefinitionDTO
from deskpal.customfields.service import definitions_for, validate_custom_fields
from deskpal.messages import latest
from deskpal.messages.html import has_visible_content, html_to_text, preview_of, sanitize_html
from deskpal.messages.models import SenderType, TicketMessage, TicketMessageTopic, TopicsStatus
from deskpal.messages.schemas import (
    MessageSortBy,
    MessageSortOrder,
    TicketMessageCreateDTO,
    TicketMessageDetailDTO,
    TicketMessageSummaryDTO,
    TicketMessageTopicDTO,
    TicketMessageTopicWriteDTO,
    TicketMessageUpdateDTO,
)
from deskpal.messages.visibility import visible
from deskpal.storage import Storage
from deskpal.tickets import queries as ticket_queries
from deskpal.tickets import writes as ticket_writes
from deskpal.tickets.derived import OPEN, channel_type_in, closed_state, subject_from
from deskpal.tickets.models import Ticket
from deskpal.tickets.schemas import TicketWriteDTO
from deskpal.topics.models import Topic
from deskpal.topics.service import require_topic_ids

# --- visibility ------------------------------------------------------------------------------------


def _select_visible(actor: Actor) -> Select[TicketMessage]:
    return (
        select(TicketMessage).join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id).where(visible(actor))
    )


def _with_details(stmt: Select[TicketMessage]) -> Select[TicketMessage]:
    return stmt.options(
        joinedload(TicketMessage.customer_rep),
        joinedload(TicketMessage.channel),
        selectinload(TicketMessage.topic_links).joinedload(TicketMessageTopic.topic),
    )


# --- content ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Content:
    """A message's bodies: HTML sanitised, plain text derived from it when missing."""

    html_body: str | None
    text_body: str | None
    body_preview: str | None


def derive_content(*, html_body: str | None, text_body: str | None, message: str | None) -> Content:
    clean = sanitize_html(html_body) if html_body else None
    text = text_body or (html_to_text(clean) if clean else None) or message
    return Content(clean or None, text, preview_of(text) if text else None)


# --- adding ----------------------------------------------------------------------------------------


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
    changes = await _ticket_follows(ctx, ticket, msg, reopen=new.reopen) if latest.is_public(msg) else {}
    if new.uid and not ticket.uid:
        changes["uid"] = new.uid
    name, email, phone = _end_user_contact(new)
    uid = changes.get("uid", ticket.uid)
    await ticket_writes.link_uid(ctx, ticket.ticket_id, uid, name=name, email=email, phone=phone)
    if changes:
        # Last: on PostgreSQL the ticket's row stays locked from this UPDATE to the commit, and
        # every message into the same ticket waits for it.
        await update_now(ctx.db, ticket, changes)
    return msg


def _end_user_contact(new: NewMessage) -> tuple[str | None, str | None, str | None]:
    """(name, email, phone) of the end user a message is from (incoming) or to (outgoing)."""
    if new.incoming:
        name, email, phone = new.from_name, new.from_address, new.from_number
    else:
        # Several recipients name no single end user.
        name, email, phone = None, single_address_of(new.to_address), new.to_number
    return name, email, phone


async def _ticket_follows(
    ctx: Ctx, ticket: Ticket, msg: TicketMessage, *, reopen: bool = True
) -> dict[str, Any]:
    """A message became part of the public conversation: what changes on its ticket."""
    changes = await latest.follow(ctx, ticket, msg)
    if msg.incoming and reopen:
        changes["is_read"] = False
        if ticket.is_closed:
            # The end user wrote again: the conversation is open again.
            changes.update(closed_state(ticket, {"is_closed": False}, msg.created_at))
    return changes


async def _refresh_ticket(ctx: Ctx, ticket_id: int) -> None:
    """A message left the public conversation or changed: the ticket's last-message fields again."""
    ticket = await ctx.db.get(Ticket, ticket_id)
    if ticket is None:
        return
    for name, value in (await latest.follow(ctx, ticket)).items():
        setattr(ticket, name, value)
    await ctx.db.flush()


# --- reads -----------------------------------------------------------------------------------------

_SORT = {
    MessageSortBy.DATE_CREATED: TicketMessage.created_at,
    MessageSortBy.MESSAGE_ID: TicketMessage.message_id,
    MessageSortBy.MESSAGE_DATE: TicketMessage.message_date,
}


async def list_messages(
    ctx: Ctx,
    ticket_id: int,
    params: PageParams,
    *,
    sort_by: MessageSortBy = MessageSortBy.DATE_CREATED,
    sort_order: MessageSortOrder = MessageSortOrder.ASC,
    include_internal: bool = True,
) -> PageResult[TicketMessage]:
    """One visible ticket's messages (404 for a ticket the caller cannot see), paged."""
    await ticket_queries.get_ticket_row(ctx, ticket_id)
    where: list[ColumnElement[bool]] = [TicketMessage.ticket_id == ticket_id, visible(ctx.actor)]
    if not include_internal:
        where.append(TicketMessage.is_internal_note == false())
    desc = sort_order is MessageSortOrder.DESC
    key = _SORT[sort_by]
    stmt = (
        select(TicketMessage)
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(*where)
        .order_by(key.desc() if desc else key.asc())
        .order_by(TicketMessage.message_id.desc() if desc else TicketMessage.message_id.asc())
    )
    count = (
        select(func.count(TicketMessage.message_id))
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(*where)
    )
    total = int(await ctx.db.scalar(count) or 0)
    if total == 0 or params.offset >= total:
        return PageResult([], total, params)
    rows = (await ctx.db.scalars(_with_details(stmt.limit(params.page_size).offset(params.offset)))).all()
    return PageResult(list(rows), total, params)


async def get_message(ctx: Ctx, message_id: int) -> TicketMessage:
    """The message with its rep, channel and topics, if the actor may see it; else NotFound."""
    stmt = _with_details(_select_visible(ctx.actor).where(TicketMessage.message_id == message_id))
    msg = (await ctx.db.scalars(stmt.execution_options(populate_existing=True))).unique().first()
    if msg is None:
        raise NotFound(f"message {message_id} not found")
    return msg


async def find_draft(ctx: Ctx, message_id: int) -> TicketMessage:
    """The current (newest) draft replying to this message, or NotFound."""
    await get_message(ctx, message_id)
    stmt = (
        _select_visible(ctx.actor)
        .where(TicketMessage.reply_to_message_id == message_id, TicketMessage.is_draft == true())
        .order_by(TicketMessage.created_at.desc(), TicketMessage.message_id.desc())
        .limit(1)
    )
    draft = (await ctx.db.scalars(stmt)).first()
    if draft is None:
        raise NotFound(f"message {message_id} has no draft reply", code="NO_DRAFT")
    return await get_message(ctx, draft.message_id)


# --- DTOs ------------------------------------------------------------------------------------------


def topic_dto(link: TicketMessageTopic) -> TicketMessageTopicDTO:
    return built(
        TicketMessageTopicDTO,
        {
            "ticket_message_topic_id": link.ticket_message_topic_id,
            "message_id": link.message_id,
            "topic_id": link.topic_id,
            "topic_name": link.topic.name,
            "corrected": link.corrected,
            "correction_date": link.correction_date,
            "corrected_by_customer_rep_id": link.corrected_by_customer_rep_id,
            "corrected_by_customer_rep_name": link.corrected_by_customer_rep_name,
        },
    )


@dataclass(frozen=True, slots=True)
class Labels:
    """What a message's DTO shows of its relationships, when the caller knows it already."""

    customer_rep_name: str | None
    channel_name: str | None


def _summary_fields(msg: TicketMessage, labels: Labels | None = None) -> dict[str, Any]:
    if labels is None:
        labels = Labels(
            # The rep's current name while the rep exists; the kept one once it is deleted.
            customer_rep_name=msg.customer_rep.name if msg.customer_rep else msg.customer_rep_name,
            channel_name=msg.channel.name if msg.channel else None,
        )
        topics = [topic_dto(link) for link in msg.topic_links]
    else:
        topics = []  # a message just written has no topic links yet
    return {
        "message_id": msg.message_id,
        "ticket_id": msg.ticket_id,
        "date_created": msg.created_at,
        "date_updated": msg.updated_at,
        "message_date": msg.message_date,
        "customer_id": msg.customer_id,
        "sender_type": msg.sender_type,
        "customer_rep_id": msg.customer_rep_id,
        "customer_rep_name": labels.customer_rep_name,
        "channel": msg.channel_type,
        "channel_id": msg.channel_id,
        "channel_name": labels.channel_name,
        "incoming": msg.incoming,
        "is_draft": msg.is_draft,
        "is_internal_note": msg.is_internal_note,
        "message": msg.message,
        "subject": msg.subject,
        "html_body": msg.html_body,
        "text_body": msg.text_body,
        "body_preview": msg.body_preview,
        "from_address": msg.from_address,
        "from_name": msg.from_name,
        "to_address": msg.to_address,
        "cc_address": msg.cc_address,
        "bcc_address": msg.bcc_address,
        "from_number": msg.from_number,
        "to_number": msg.to_number,
        "uid": msg.uid,
        "is_opened": msg.is_opened,
        "is_bounced": msg.is_bounced,
        "last_open_date": msg.last_open_date,
        "message_identifier": msg.message_identifier,
        "send_pending": msg.send_pending,
        "sent_at": msg.sent_at,
        "ai_spam_status": msg.ai_spam_status,
        "ai_topics_status": msg.ai_topics_status,
        "ai_reply_status": msg.ai_reply_status,
        "is_escalated": msg.is_escalated,
        "reply_to_message_id": msg.reply_to_message_id,
        "forward_from_message_id": msg.forward_from_message_id,
        "topics": topics,
        "actions": [],
        "custom_fields_data": dict(msg.custom_fields_data or {}),
    }


def to_summary(msg: TicketMessage) -> TicketMessageSummaryDTO:
    return built(TicketMessageSummaryDTO, _summary_fields(msg))


async def to_detail(ctx: Ctx, msg: TicketMessage, labels: Labels | None = None) -> TicketMessageDetailDTO:
    definitions = await definitions_for(ctx, EntityType.TICKET_MESSAGE)
    fields = _summary_fields(msg, labels)
    fields.update(
        headers=msg.headers,
        ai_generated_response=msg.ai_generated_response,
        ai_modified_response=msg.ai_modified_response,
        ai_prompt=msg.ai_prompt,
        page_screenshot=msg.page_screenshot,
        page_url=msg.page_url,
        additional_info=msg.additional_info,
        email_template_id=msg.email_template_id,
        send_requested_at=msg.send_requested_at,
        custom_field_definitions=[CustomFieldDefinitionDTO.model_validate(d) for d in definitions],
    )
    return built(TicketMessageDetailDTO, fields)


# --- create ----------------------------------------------------------------------------------------


async def created_detail(ctx: Ctx, msg: TicketMessage) -> TicketMessageDetailDTO:
    """A message this request inserted, shown without reading it back: its rep is the caller (or
    nobody), whose name it carries, its channel is in the session already, and it has no topics yet."""
    channel = await ctx.db.get(Channel, msg.channel_id) if msg.channel_id is not None else None
    labels = Labels(customer_rep_name=msg.customer_rep_name, channel_name=channel.name if channel else None)
    return await to_detail(ctx, msg, labels)


async def _linked_message(ctx: Ctx, message_id: int, field_name: str) -> TicketMessage:
    msg = (
        await ctx.db.scalars(_select_visible(ctx.actor).where(TicketMessage.message_id == message_id))
    ).first()
    if msg is None:
        raise ValidationFailed.field(field_name, f"no message {message_id}")
    return msg


async def _check_channel(ctx: Ctx, data: TicketMessageCreateDTO, ticket: Ticket | None) -> Channel | None:
    """The message's channel: the one it names (phone auth: its own, named or not), else its
    ticket's. A `channel` type other than that channel's is a 400 naming `channel`."""
    channel_id = data.channel_id
    if ctx.actor.is_phone:
        if channel_id is not None and channel_id != ctx.actor.channel_id:
            raise Forbidden("phone auth acts on its own channel only", code="CHANNEL_NOT_ALLOWED")
        channel_id = ctx.actor.channel_id
    channel = None
    if channel_id is not None:
        channel = await get_now(ctx.db, Channel, channel_id)
        if channel is None:
            raise ValidationFailed.field("channelID", f"no channel {channel_id}")
    elif ticket is not None and ticket.channel_id is not None:
        channel = await get_now(ctx.db, Channel, ticket.channel_id)
    channel_type_in(channel, data.channel.value if data.channel else None, field="channel")
    return channel


def _in_channel(new: NewMessage, channel: Channel | None) -> None:
    # A message in a channel has that channel's type (deskpal.tickets.derived.channel_type_in).
    if channel is not None:
        new.channel_id, new.channel_type = channel.channel_id, channel.channel_type


def _sender(ctx: Ctx, data: TicketMessageCreateDTO) -> SenderType:
    if data.sender_type is not None:
        return data.sender_type
    if data.incoming:
        return SenderType.END_USER
    return SenderType.CUSTOMER_REP if ctx.actor.rep_id is not None else SenderType.SYSTEM


def _new_message(ctx: Ctx, data: TicketMessageCreateDTO, custom: dict[str, Any]) -> NewMessage:
    return NewMessage(
        message=data.message,
        subject=data.subject,
        html_body=data.html_body,
        text_body=data.text_body,
        incoming=data.incoming,
        sender_type=_sender(ctx, data),
        is_draft=data.is_draft,
        is_internal_note=data.is_internal_note,
        is_forward=data.forward_from_message_id is not None,
        channel_id=data.channel_id,
        channel_type=data.channel.value if data.channel else None,
        from_address=data.from_address,
        from_name=data.from_name,
        to_address=data.to_address,
        cc_address=data.cc_address,
        bcc_address=data.bcc_address,
        from_number=data.from_number,
        to_number=data.to_number,
        uid=data.uid,
        message_date=data.message_date,
        headers=data.headers,
        message_identifier=data.message_identifier,
        page_screenshot=data.page_screenshot,
        page_url=data.page_url,
        additional_info=data.additional_info,
        ai_prompt=data.ai_prompt,
        email_template_id=data.email_template_id,
        reply_to_message_id=data.reply_to_message_id,
        forward_from_message_id=data.forward_from_message_id,
        custom_fields_data=custom,
    )


def _check_note(ctx: Ctx, data: TicketMessageCreateDTO) -> None:
    if data.is_internal_note and ctx.actor.rep_id is None and not ctx.actor.is_admin:
        raise Forbidden("only representatives write internal notes", code="INTERNAL_NOTE_REPS_ONLY")


async def create_raw(ctx: Ctx, data: TicketMessageCreateDTO) -> TicketMessageDetailDTO:
    """POST /api/TicketMessages: the message as given, in an existing ticket (ticketID required)."""
    if data.ticket_id is None:
        raise ValidationFailed.field("ticketID", "is required")
    _check_note(ctx, data)
    ticket = await ticket_queries.get_ticket_row(ctx, data.ticket_id)
    channel = await _check_channel(ctx, data, ticket)
    for field_name, ref in (
        ("replyToMessageID", data.reply_to_message_id),
        ("forwardFromMessageID", data.forward_from_message_id),
    ):
        if ref is not None:
            await _linked_message(ctx, ref, field_name)
    custom = await validate_custom_fields(ctx, EntityType.TICKET_MESSAGE, data.custom_fields_data)
    new = _new_message(ctx, data, custom)
    _in_channel(new, channel)
    msg = await insert(ctx, ticket, new)
    return await created_detail(ctx, msg)


async def create_new(ctx: Ctx, data: TicketMessageCreateDTO) -> TicketMessageDetailDTO:
    """POST create-new: a message, creating its ticket and end user when no ticket is named.

    The ticket is ticketID's, else the replied-to or forwarded message's, else a new one. A forward
    draft carries no reply linkage.
    """
    _check_note(ctx, data)
    reply_to = forward_from = None
    if data.forward_from_message_id is not None:
        forward_from = await _linked_message(ctx, data.forward_from_message_id, "forwardFromMessageID")
    reply_to_id = data.reply_to_message_id
    if forward_from is not None and data.is_draft:
        reply_to_id = None  # a forward draft is a new outbound mail, not a reply in the thread
    if reply_to_id is not None:
        reply_to = await _linked_message(ctx, reply_to_id, "replyToMessageID")
    custom = await validate_custom_fields(ctx, EntityType.TICKET_MESSAGE, data.custom_fields_data)

    ticket_id = data.ticket_id
    if ticket_id is None:
        source = reply_to or forward_from
        ticket_id = source.ticket_id if source is not None else None
    elif reply_to is not None and reply_to.ticket_id != ticket_id:
        raise ValidationFailed.field("replyToMessageID", "is a message of another ticket")

    new = _new_message(ctx, data, custom)
    new.reply_to_message_id = reply_to_id
    ticket = await ticket_queries.get_ticket_row(ctx, ticket_id) if ticket_id is not None else None
    channel = await _check_channel(ctx, data, ticket)
    _in_channel(new, channel)
    if ticket is None:
        ticket = await _new_ticket(ctx, data, channel, new)
    if new.uid is None and ticket.uid is not None:
        new.uid = ticket.uid
    msg = await insert(ctx, ticket, new)  # links the end user the ticket's uid names
    return await created_detail(ctx, msg)


async def _new_ticket(
    ctx: Ctx, data: TicketMessageCreateDTO, channel: Channel | None, new: NewMessage
) -> Ticket:
    channel_type = new.channel_type  # the channel's type (phone auth: always its Phone channel)
    if channel_type is None:
        raise ValidationFailed.field("channel", "is required when the message opens a new ticket")
    text = (
        data.subject
        or data.text_body
        or data.message
        or (html_to_text(data.html_body) if data.html_body else "")
    )
    _, email, phone = _end_user_contact(new)
    uid = data.uid or (email.strip().lower() if email else None) or phone
    return await ticket_writes.insert_ticket(
        ctx,
        TicketWriteDTO(
            status=OPEN,
            subject=subject_from(text) if text.strip() else "(no subject)",
            channel_type=channel_type,
            channel_id=channel.channel_id if channel else None,
            uid=uid,
            from_number=data.from_number,
            to_number=data.to_number,
        ),
        link=False,
    )


# --- update and delete -----------------------------------------------------------------------------


async def update_message(ctx: Ctx, message_id: int, data: TicketMessageUpdateDTO) -> TicketMessage:
    """Change the fields the body names; publishing a draft (isDraft false) advances the ticket."""
    msg = await get_message(ctx, message_id)  # 404 first: a mismatch must not tell that the id exists
    if data.message_id != message_id:
        raise ValidationFailed.field("messageID", f"must equal the route id {message_id}")
    given = data.model_fields_set
    if "custom_fields_data" in given:
        merged = {**(msg.custom_fields_data or {}), **(data.custom_fields_data or {})}
        msg.custom_fields_data = await validate_custom_fields(ctx, EntityType.TICKET_MESSAGE, merged)
    for name in (
        "ai_modified_response",
        "additional_info",
        "subject",
        "to_address",
        "cc_address",
        "bcc_address",
        "uid",
    ):
        if name in given:
            setattr(msg, name, getattr(data, name))
    was_public, shown = latest.is_public(msg), msg.body_preview
    if "message" in given:
        msg.message = data.message
        if msg.html_body is None:
            msg.text_body = data.message
            msg.body_preview = preview_of(data.message) if data.message else None
    if "is_draft" in given and data.is_draft is not None:
        msg.is_draft = data.is_draft
    publishing = latest.is_public(msg) and not was_public
    if publishing and msg.message_date is None:
        # Published now: it joins the conversation now, after what came while it was a draft.
        msg.message_date = utcnow()
    await ctx.db.flush()
    if publishing:
        ticket = await ticket_queries.get_ticket_row(ctx, msg.ticket_id)
        await update_now(ctx.db, ticket, await _ticket_follows(ctx, ticket, msg))
    elif was_public and (not latest.is_public(msg) or msg.body_preview != shown):
        await _refresh_ticket(ctx, msg.ticket_id)  # back to a draft, or its preview changed
    return await get_message(ctx, message_id)


async def delete_message(ctx: Ctx, message_id: int, *, storage: Storage | None = None) -> None:
    """Delete the message; its attachment rows and topic links go by cascade, its attachment bytes
    by a job once this commits (without a storage, the storage sweeper removes them later)."""
    msg = await get_message(ctx, message_id)
    ticket_id, was_public = msg.ticket_id, latest.is_public(msg)
    if storage is not None:
        await attachments.drop_message_blobs(ctx, storage, [message_id])
    await ctx.db.execute(
        delete(TicketMessage)
        .where(TicketMessage.message_id == message_id)
        .execution_options(synchronize_session=False)
    )
    ctx.db.expunge(msg)
    if was_public:
        await _refresh_ticket(ctx, ticket_id)


# --- topics ----------------------------------------------------------------------------------------


async def _topic(ctx: Ctx, topic_id: int) -> Topic:
    topic = await ctx.db.get(Topic, topic_id)
    if topic is None:
        raise ValidationFailed.field("topicID", f"no topic {topic_id}")
    return topic


def _select_links(actor: Actor) -> Select[TicketMessageTopic]:
    return (
        select(TicketMessageTopic)
        .join(TicketMessage, TicketMessage.message_id == TicketMessageTopic.message_id)
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(visible(actor))
        .options(joinedload(TicketMessageTopic.topic))
    )


async def list_topic_links(ctx: Ctx, message_id: int) -> Sequence[TicketMessageTopic]:
    await get_message(ctx, message_id)
    stmt = _select_links(ctx.actor).where(TicketMessageTopic.message_id == message_id)
    return (await ctx.db.scalars(stmt.order_by(TicketMessageTopic.ticket_message_topic_id))).all()


async def get_topic_link(ctx: Ctx, link_id: int) -> TicketMessageTopic:
    stmt = _select_links(ctx.actor).where(TicketMessageTopic.ticket_message_topic_id == link_id)
    link = (await ctx.db.scalars(stmt.execution_options(populate_existing=True))).first()
    if link is None:
        raise NotFound(f"message topic {link_id} not found")
    return link


async def _ensure_unlinked(ctx: Ctx, message_id: int, topic_id: int, except_id: int | None = None) -> None:
    stmt = select(TicketMessageTopic.ticket_message_topic_id).where(
        TicketMessageTopic.message_id == message_id, TicketMessageTopic.topic_id == topic_id
    )
    if except_id is not None:
        stmt = stmt.where(TicketMessageTopic.ticket_message_topic_id != except_id)
    if (await ctx.db.scalars(stmt)).first() is not None:
        raise Conflict(
            f"topic {topic_id} is already linked to message {message_id}", code="TOPIC_ALREADY_LINKED"
        )


async def create_topic_link(ctx: Ctx, data: TicketMessageTopicWriteDTO) -> TicketMessageTopic:
    await get_message(ctx, data.message_id)
    await _topic(ctx, data.topic_id)
    await _ensure_unlinked(ctx, data.message_id, data.topic_id)
    link = TicketMessageTopic(
        message_id=data.message_id, topic_id=data.topic_id, created_at=utcnow(), corrected=False
    )
    ctx.db.add(link)
    await ctx.db.flush()
    return await get_topic_link(ctx, link.ticket_message_topic_id)


async def update_topic_link(ctx: Ctx, link_id: int, data: TicketMessageTopicWriteDTO) -> TicketMessageTopic:
    link = await get_topic_link(ctx, link_id)
    if data.message_id != link.message_id:
        await get_message(ctx, data.message_id)
    await _topic(ctx, data.topic_id)
    await _ensure_unlinked(ctx, data.message_id, data.topic_id, except_id=link_id)
    link.message_id, link.topic_id = data.message_id, data.topic_id
    await ctx.db.flush()
    return await get_topic_link(ctx, link_id)


async def delete_topic_link(ctx: Ctx, link_id: int) -> None:
    link = await get_topic_link(ctx, link_id)
    await ctx.db.delete(link)
    await ctx.db.flush()


async def correct_topics(ctx: Ctx, message_id: int, topic_ids: Sequence[int]) -> None:
    """Replace the message's topics with a rep's choice, recorded as a correction (one transaction)."""
    msg = await get_message(ctx, message_id)
    wanted = await require_topic_ids(ctx, topic_ids)
    await ctx.db.execute(
        delete(TicketMessageTopic)
        .where(TicketMessageTopic.message_id == message_id)
        .execution_options(synchronize_session=False)
    )
    for old in msg.topic_links:
        ctx.db.expunge(old)  # gone from the table; SQLite may hand their ids to the new rows
    now = utcnow()
    ctx.db.add_all(
        [
            TicketMessageTopic(
                message_id=message_id,
                topic_id=topic_id,
                created_at=now,
                corrected=True,
                correction_date=now,
                corrected_by_customer_rep_id=ctx.actor.rep_id,
                corrected_by_customer_rep_name=ctx.actor.name or None,
            )
            for topic_id in wanted
        ]
    )
    msg.ai_topics_status = TopicsStatus.CORRECTED.value
    await ctx.db.flush()
