"""The read projection: a ticket as the read DTO shows it, read as plain rows in one statement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, ColumnElement, Select, and_, bindparam, func, select, type_coerce

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.core.errors import NotFound
from deskpal.core.schemas import built
from deskpal.core.tenancy import TENANT_PARAM, read_bound, tenant_bound
from deskpal.customers.models import CustomerRep
from deskpal.endusers.models import EndUser
from deskpal.endusers.schemas import EndUserDTO
from deskpal.tickets.models import Ticket, TicketEndUser, TicketTopic
from deskpal.tickets.schemas import TicketReadDTO, TicketWriteDTO
from deskpal.tickets.visibility import Seen, seen_by, seen_clause
from deskpal.topics.models import Topic

_COLUMNS = frozenset(Ticket.__table__.columns.keys())
# The read DTO's fields named as a ticket column show the column; the rest are labels, lists and
# the three below. Of them, those the write document (JSON Patch) carries too are STORED_COLUMNS
# (customFieldsData is copied, not shared).
READ_COLUMNS = tuple(name for name in TicketReadDTO.model_fields if name in _COLUMNS)
STORED_COLUMNS = tuple(
    name for name in READ_COLUMNS if name in TicketWriteDTO.model_fields and name != "custom_fields_data"
)


def stored_fields(ticket: Any) -> dict[str, Any]:
    fields = {name: getattr(ticket, name) for name in STORED_COLUMNS}
    fields["custom_fields_data"] = dict(ticket.custom_fields_data or {})
    return fields


@dataclass(slots=True)
class TicketView:
    """A ticket as the read DTO shows it: one row of view_select."""

    row: Any

    @property
    def ticket_id(self) -> int:
        return int(self.row.ticket_id)


def to_dto(view: TicketView) -> TicketReadDTO:
    # Built from stored, typed columns without re-validating them (the input validators are for
    # what clients send), which was most of the cost of a page of 25.
    t = view.row
    end_users = [
        built(
            EndUserDTO,
            {
                "end_user_id": u[0],
                "uid": u[1],
                "name": u[2],
                "email": u[3],
                "phone": u[4],
                "date_created": _json_time(u[5]),
            },
        )
        for u in sorted(t.end_users or (), key=itemgetter(0))
    ]
    fields = dict(zip(READ_COLUMNS, _read_columns(t._fields)(t), strict=True))
    fields.update(
        custom_fields_data=dict(t.custom_fields_data or {}),
        date_created=t.created_at,
        channel_name=t.channel_name,
        customer_rep_name=t.customer_rep_name,
        end_user_id=end_users[0].end_user_id if end_users else None,
        ai_feedback_comments=list(t.ai_feedback_comments or ()),
        end_users=end_users,
        topics=sorted(t.topics or ()),
        has_recording=t.recording_key is not None,
    )
    return built(TicketReadDTO, fields)


@cache
def _read_columns(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """READ_COLUMNS of a row with these column names, by position: a row's attribute lookup by
    name, 25 columns a ticket and 25 tickets a page, was the largest part of building a page."""
    getter = itemgetter(*(names.index(name) for name in READ_COLUMNS))
    return getter if len(READ_COLUMNS) > 1 else lambda row: (getter(row),)


def _json_time(value: str) -> datetime:
    # SQLite's stored text (naive UTC) or PostgreSQL's JSON rendering of a timestamptz.
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Reads for the client are one statement of plain rows, not ORM entities with collections: the
# per-statement and identity-map work was most of a GET's and a list page's Python time. The end
# users and topics come as JSON arrays from correlated subqueries (ticket_end_user and ticket_topic
# are keyed by ticket). Writes load entities (get_ticket).
_VIEW_COLUMNS = (*READ_COLUMNS, "created_at", "recording_key")


def _json_array(dialect: str, values: Any) -> Any:
    """One row's values as a JSON array (an element of the aggregate below)."""
    return func.json_build_array(*values) if dialect == "postgresql" else func.json_array(*values)


def _json_agg(dialect: str, value: Any) -> Any:
    return func.json_agg(value) if dialect == "postgresql" else func.json_group_array(value)


def own(entity: Any) -> ColumnElement[bool]:
    return entity.customer_id == bindparam(TENANT_PARAM)  # type: ignore[no-any-return]


@cache  # built once per dialect: callers add to it (a Select is immutable), never change it
def view_select(dialect: str) -> Select[Any]:
    end_user_cols = (
        EndUser.end_user_id,
        EndUser.uid,
        EndUser.name,
        EndUser.email,
        EndUser.phone,
        EndUser.created_at,
    )
    end_users = (
        select(_json_agg(dialect, _json_array(dialect, end_user_cols)))
        .select_from(TicketEndUser)
        .join(EndUser, and_(EndUser.end_user_id == TicketEndUser.end_user_id, own(EndUser)))
        .where(TicketEndUser.ticket_id == Ticket.ticket_id, own(TicketEndUser))
        .correlate(Ticket)
        .scalar_subquery()
    )
    topics = (
        select(_json_agg(dialect, Topic.name))
        .select_from(TicketTopic)
        .join(Topic, and_(Topic.topic_id == TicketTopic.topic_id, own(Topic)))
        .where(TicketTopic.ticket_id == Ticket.ticket_id, own(TicketTopic))
        .correlate(Ticket)
        .scalar_subquery()
    )
    return (
        select(
            *(getattr(Ticket, name).label(name) for name in _VIEW_COLUMNS),
            Channel.name.label("channel_name"),
            CustomerRep.name.label("customer_rep_name"),
            type_coerce(end_users, JSON).label("end_users"),
            type_coerce(topics, JSON).label("topics"),
        )
        .select_from(Ticket)
        .outerjoin(Channel, and_(Channel.channel_id == Ticket.channel_id, own(Channel)))
        .outerjoin(CustomerRep, and_(CustomerRep.customer_rep_id == Ticket.customer_rep_id, own(CustomerRep)))
        .where(own(Ticket))
    )


@cache
def _one_view(dialect: str, seen: Seen) -> Select[Any]:
    one = view_select(dialect).where(Ticket.ticket_id == bindparam("ticket_id"), seen_clause(seen))
    return tenant_bound(one)


@cache
def views_by_id(dialect: str) -> Select[Any]:
    return tenant_bound(view_select(dialect).where(Ticket.ticket_id.in_(bindparam("ids", expanding=True))))


async def read_views(ctx: Ctx, stmt: Select[Any], params: dict[str, Any]) -> list[TicketView]:
    return [TicketView(row) for row in await read_bound(ctx.db, stmt, params)]


def dialect_of(ctx: Ctx) -> str:
    return ctx.db.get_bind().dialect.name


async def read_ticket(ctx: Ctx, ticket_id: int) -> TicketView:
    """The ticket as the client sees it, if the actor may see it; else NotFound."""
    seen, params = seen_by(ctx.actor)
    views = await read_views(ctx, _one_view(dialect_of(ctx), seen), {**params, "ticket_id": ticket_id})
    if not views:
        raise NotFound(f"ticket {ticket_id} not found")
    return views[0]
