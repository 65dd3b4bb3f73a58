"""Reading messages: a ticket's conversation, one message, a message's draft reply.

Row visibility: a message is visible when its ticket is (`deskpal.tickets.visibility.visible`); phone
auth further sees only messages of its own channel, and never internal notes (`messages.visibility`).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, false, func, select, true
from sqlalchemy.orm import joinedload, selectinload

from deskpal.core.context import Actor, Ctx
from deskpal.core.errors import NotFound
from deskpal.core.schemas import PageParams, PageResult
from deskpal.messages.models import TicketMessage, TicketMessageTopic
from deskpal.messages.schemas import MessageSortBy, MessageSortOrder
from deskpal.messages.visibility import visible
from deskpal.tickets import queries as ticket_queries
from deskpal.tickets.models import Ticket


def select_visible(actor: Actor) -> Select[TicketMessage]:
    return (
        select(TicketMessage).join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id).where(visible(actor))
    )


def _with_details(stmt: Select[TicketMessage]) -> Select[TicketMessage]:
    return stmt.options(
        joinedload(TicketMessage.customer_rep),
        joinedload(TicketMessage.channel),
        selectinload(TicketMessage.topic_links).joinedload(TicketMessageTopic.topic),
    )


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
    stmt = _with_details(select_visible(ctx.actor).where(TicketMessage.message_id == message_id))
    msg = (await ctx.db.scalars(stmt.execution_options(populate_existing=True))).unique().first()
    if msg is None:
        raise NotFound(f"message {message_id} not found")
    return msg


async def find_draft(ctx: Ctx, message_id: int) -> TicketMessage | None:
    """The current (newest) visible draft replying to this message, or None."""
    stmt = (
        select_visible(ctx.actor)
        .where(TicketMessage.reply_to_message_id == message_id, TicketMessage.is_draft == true())
        .order_by(TicketMessage.created_at.desc(), TicketMessage.message_id.desc())
        .limit(1)
    )
    return (await ctx.db.scalars(stmt)).first()


async def get_draft(ctx: Ctx, message_id: int) -> TicketMessage:
    """The current (newest) draft replying to this message, or NotFound."""
    await get_message(ctx, message_id)
    draft = await find_draft(ctx, message_id)
    if draft is None:
        raise NotFound(f"message {message_id} has no draft reply", code="NO_DRAFT")
    return await get_message(ctx, draft.message_id)


async def find_by_identifier(ctx: Ctx, identifier: str) -> TicketMessage | None:
    """The newest visible message with this message identifier (a mail's Message-ID), or None."""
    stmt = (
        select_visible(ctx.actor)
        .where(TicketMessage.message_identifier == identifier)
        .order_by(TicketMessage.message_id.desc())
        .limit(1)
    )
    return (await ctx.db.scalars(stmt)).first()


async def find_by_external_id(ctx: Ctx, channel_id: int, external_id: str) -> TicketMessage | None:
    """The message the channel's network delivered under this id, or None (the tenant's, whoever
    may see it: a repeated delivery is the same message)."""
    stmt = select(TicketMessage).where(
        TicketMessage.channel_id == channel_id, TicketMessage.external_id == external_id
    )
    return (await ctx.db.scalars(stmt)).first()
