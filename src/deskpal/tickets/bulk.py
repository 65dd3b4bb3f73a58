"""Bulk actions on tickets: one action on many, all or nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select

from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import Unprocessable, ValidationFailed
from deskpal.endusers.models import EndUser
from deskpal.storage import Storage
from deskpal.tickets.derived import closed_state
from deskpal.tickets.models import Ticket, TicketEndUser, TicketTopic
from deskpal.tickets.queries import visible_tickets
from deskpal.tickets.schemas import BulkAction, BulkUpdateRequest
from deskpal.tickets.writes import check_assignment, drop_blobs
from deskpal.topics.service import require_topic_ids

AI_ACTIONS = {BulkAction.DETECT_SPAM, BulkAction.DETECT_TOPICS, BulkAction.EXECUTE_ACTIONS}


# --- bulk ------------------------------------------------------------------------------------------


async def bulk_update(ctx: Ctx, req: BulkUpdateRequest, *, storage: Storage | None = None) -> None:
    """One action on many tickets, all or nothing: one refused ticket refuses the whole request."""
    if req.action in AI_ACTIONS:
        raise Unprocessable(f"{req.action} needs the AI features, not yet available", code="AI_NOT_AVAILABLE")
    if req.action is BulkAction.UPDATE_TOPICS and req.topic_ids is None:
        raise ValidationFailed.field("topicIds", "is required for updatetopics")
    tickets = await visible_tickets(ctx, req.ticket_ids)
    ids = [t.ticket_id for t in tickets]

    if req.customer_rep_id is not None:
        requested = req.customer_rep_id or None
        for ticket in tickets:
            await check_assignment(ctx, ticket.customer_rep_id, requested)
        for ticket in tickets:
            ticket.customer_rep_id = requested

    now = utcnow()
    action = req.action
    for ticket in tickets:
        if action is BulkAction.INVERT_STATE:
            _set_closed(ticket, not ticket.is_closed, now)
        elif action is BulkAction.CLOSE:
            _set_closed(ticket, True, now)
        elif action is BulkAction.OPEN:
            _set_closed(ticket, False, now)
        elif action in (BulkAction.SPAM, BulkAction.NOT_SPAM):
            ticket.is_spam = action is BulkAction.SPAM
        elif action is BulkAction.READ:
            ticket.is_read = True
    await ctx.db.flush()

    if action is BulkAction.UPDATE_TOPICS:
        await _replace_topics(ctx, ids, req.topic_ids or [])
    elif action in (BulkAction.DELETE, BulkAction.DELETE_CLEANUP):
        await drop_blobs(ctx, tickets, storage)
        end_user_ids = list(
            (await ctx.db.scalars(select(TicketEndUser.end_user_id).where(TicketEndUser.ticket_id.in_(ids))))
            .unique()
            .all()
        )
        await ctx.db.execute(
            delete(Ticket).where(Ticket.ticket_id.in_(ids)).execution_options(synchronize_session=False)
        )
        if action is BulkAction.DELETE_CLEANUP and end_user_ids:
            # Cleanup: end users left with no ticket at all are removed too (their data goes with them).
            orphaned = ~exists().where(TicketEndUser.end_user_id == EndUser.end_user_id)
            await ctx.db.execute(
                delete(EndUser)
                .where(EndUser.end_user_id.in_(end_user_ids), orphaned)
                .execution_options(synchronize_session=False)
            )
        ctx.db.expunge_all()


def _set_closed(ticket: Ticket, closed: bool, now: datetime) -> None:
    for name, value in closed_state(ticket, {"is_closed": closed}, now).items():
        setattr(ticket, name, value)


async def _replace_topics(ctx: Ctx, ticket_ids: list[int], topic_ids: list[int]) -> None:
    wanted = await require_topic_ids(ctx, topic_ids)
    await ctx.db.execute(
        delete(TicketTopic)
        .where(TicketTopic.ticket_id.in_(ticket_ids))
        .execution_options(synchronize_session=False)
    )
    ctx.db.add_all([TicketTopic(ticket_id=t, topic_id=p) for t in ticket_ids for p in wanted])
    await ctx.db.flush()
