"""Which messages an actor may see: the one rule every message and attachment route uses."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false

from deskpal.core.context import Actor
from deskpal.messages.models import TicketMessage
from deskpal.tickets.visibility import visible as ticket_visible


def visible(actor: Actor) -> ColumnElement[bool]:
    """The messages this actor may see, for a statement that joins Ticket; list, get, update and
    delete all use it. Phone auth: only its own channel's messages, and never internal notes."""
    cond = ticket_visible(actor)
    if actor.is_phone:
        cond = and_(
            cond,
            TicketMessage.channel_id == actor.channel_id,
            TicketMessage.is_internal_note == false(),
        )
    return cond
