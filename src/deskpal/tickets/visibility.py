"""Which tickets an actor sees: the one rule that lists, reads, writes and the list's totals share."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import ColumnElement, bindparam, false, or_, true
from sqlalchemy.sql.elements import BindParameter

from deskpal.core.context import Actor, ActorKind, Role
from deskpal.tickets.models import Ticket


class Seen(enum.Enum):
    """The rule's shape for an actor; its parameters (actor_rep_id, actor_channel_id) come from them."""

    ALL = "all"
    MINE_OR_UNASSIGNED = "mine-or-unassigned"
    MINE = "mine"
    CHANNEL = "channel"
    NOTHING = "nothing"


_CHANNEL_BOUND = frozenset({ActorKind.PHONE, ActorKind.VISITOR, ActorKind.WEBHOOK})


def seen_by(actor: Actor) -> tuple[Seen, dict[str, Any]]:
    """The tickets this actor may see; list, get, update, delete, bulk and assign all use it.

    Admins, the command line, the worker and viewers see every ticket of the customer (viewers
    cannot write: their role lacks tickets:write). Agents see tickets assigned to them or to
    nobody; restricted reps only tickets assigned to them; phone auth, chat visitors and webhooks
    only tickets of their own channel; a file link no ticket.
    """
    if actor.kind in _CHANNEL_BOUND:
        if actor.channel_id is None:
            return Seen.NOTHING, {}
        return Seen.CHANNEL, {"actor_channel_id": actor.channel_id}
    if actor.is_admin or actor.role is Role.VIEWER:
        return Seen.ALL, {}
    if actor.role is Role.AGENT:
        return Seen.MINE_OR_UNASSIGNED, {"actor_rep_id": actor.rep_id}
    if actor.role is Role.RESTRICTED:
        return Seen.MINE, {"actor_rep_id": actor.rep_id}
    return Seen.NOTHING, {}


def seen_clause(
    seen: Seen,
    values: dict[str, Any] | None = None,
    *,
    rep: Any = Ticket.customer_rep_id,
    channel: Any = Ticket.channel_id,
    unassigned: ColumnElement[bool] | None = None,
) -> ColumnElement[bool]:
    """The rule as SQL over `rep` and `channel` (a ticket's by default; `unassigned` says what
    "assigned to nobody" is when it is not a NULL rep), its parameters left to bind when the
    statement runs, or bound to `values` now."""

    def param(key: str) -> BindParameter[Any]:
        return bindparam(key) if values is None else bindparam(key, values[key], unique=True)

    if seen is Seen.ALL:
        return true()
    if seen is Seen.MINE_OR_UNASSIGNED:
        return or_(rep == param("actor_rep_id"), rep.is_(None) if unassigned is None else unassigned)
    if seen is Seen.MINE:
        return rep == param("actor_rep_id")  # type: ignore[no-any-return]
    if seen is Seen.CHANNEL:
        return channel == param("actor_channel_id")  # type: ignore[no-any-return]
    return false()


def visible(actor: Actor) -> ColumnElement[bool]:
    """seen_by as one SQL condition over Ticket with the actor's values bound (ORM statements)."""
    seen, values = seen_by(actor)
    return seen_clause(seen, values)
