"""A message's topics: the links, and a rep's correction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import joinedload

from deskpal.core.context import Actor, Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import Conflict, NotFound, ValidationFailed
from deskpal.messages.models import TicketMessage, TicketMessageTopic, TopicsStatus
from deskpal.messages.queries import get_message
from deskpal.messages.schemas import TicketMessageTopicWriteDTO
from deskpal.messages.visibility import visible
from deskpal.tickets.models import Ticket
from deskpal.topics.models import Topic
from deskpal.topics.service import require_topic_ids


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
