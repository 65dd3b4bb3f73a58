"""Tickets: queries, lifecycle changes, assignment rules and row visibility."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import joinedload, selectinload

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx, Role
from deskpal.core.db import utcnow
from deskpal.core.errors import Forbidden, NotFound, Unprocessable, ValidationFailed, field_errors
from deskpal.core.patching import apply_json_patch
from deskpal.core.schemas import PageParams, PageResult, built
from deskpal.core.tenancy import (
    TENANT_PARAM,
    insert_now,
    read_bound,
    tenant_bound,
    tenant_insert,
    write_bound,
)
from deskpal.customers.models import CustomerRep
from deskpal.customfields.models import EntityType
from deskpal.customfields.service import validate_custom_fields
from deskpal.endusers.models import EndUser
from deskpal.endusers.schemas import EndUserDTO
from deskpal.endusers.service import upsert_lenient
from deskpal.messages.models import TicketMessage
from deskpal.storage import Storage
from deskpal.storage import jobs as blobs
from deskpal.tickets import counts, recordings, search
from deskpal.tickets import jobs as _jobs  # noqa: F401 - registers the job types enqueued here
from deskpal.tickets.derived import OPEN, channel_type_in, closed_state
from deskpal.tickets.models import Ticket, TicketEndUser, TicketTopic
from deskpal.tickets.schemas import (
    WRITE_FIELDS,
    BulkAction,
    BulkUpdateRequest,
    ChatTicketCreateDTO,
    SortBy,
    SortOrder,
    TicketQuery,
    TicketReadDTO,
    TicketWriteDTO,
)
from deskpal.tickets.visibility import Seen, seen_by, seen_clause, visible
from deskpal.topics.models import Topic
from deskpal.topics.service import require_topic_ids

AI_ACTIONS = {BulkAction.DETECT_SPAM, BulkAction.DETECT_TOPICS, BulkAction.EXECUTE_ACTIONS}

_SORT_KEYS: dict[SortBy, Any] = {
    SortBy.TICKET_ID: Ticket.ticket_id,
    SortBy.DATE_CREATED: Ticket.created_at,
    SortBy.LAST_MESSAGE_DATE: Ticket.last_message_date,
    SortBy.STATUS: Ticket.status,
    SortBy.SUBJECT: Ticket.subject,
    SortBy.FOLLOW_UP_DATE: Ticket.follow_up_date,
    SortBy.CLOSE_DATE: Ticket.close_date,
}


# --- visibility ------------------------------------------------------------------------------------


def _with_details(stmt: Select[Ticket]) -> Select[Ticket]:
    # The labels in the same query; the links in one query each, by primary key (joined, SQLite
    # would materialise the tenant's whole link table on the right of the LEFT JOIN).
    return stmt.options(
        joinedload(Ticket.channel),
        joinedload(Ticket.customer_rep),
        selectinload(Ticket.end_users),
        selectinload(Ticket.topics),
    )


def _order(key: Any, ticket_id: Any, desc: bool) -> list[Any]:
    # Ties (and the many NULL dates) break by id in the same direction, matching the index.
    return [key.desc() if desc else key.asc(), ticket_id.desc() if desc else ticket_id.asc()]


# The ticket's own columns that both the read DTO and the write document (JSON Patch) carry.
_STORED_COLUMNS = (
    "status",
    "subject",
    "channel_type",
    "channel_id",
    "customer_rep_id",
    "uid",
    "escalated",
    "is_spam",
    "is_important",
    "is_closed",
    "is_processed",
    "is_read",
    "close_date",
    "end_date",
    "follow_up_date",
    "last_message_date",
    "preview",
    "summary",
    "twilio_call_sid",
    "from_number",
    "to_number",
)


def _stored_fields(ticket: Any) -> dict[str, Any]:
    fields = {name: getattr(ticket, name) for name in _STORED_COLUMNS}
    fields["custom_fields_data"] = dict(ticket.custom_fields_data or {})
    return fields


@dataclass(slots=True)
class TicketView:
    """A ticket as the read DTO shows it: one row of _view_select."""

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
    fields = _stored_fields(t)
    fields.update(
        ticket_id=t.ticket_id,
        token=t.token,
        date_created=t.created_at,
        channel_name=t.channel_name,
        customer_rep_name=t.customer_rep_name,
        end_user_id=end_users[0].end_user_id if end_users else None,
        ai_feedback_comments=[],
        end_users=end_users,
        topics=sorted(t.topics or ()),
        has_recording=t.recording_key is not None,
        last_end_user_message_id=t.last_end_user_message_id,
    )
    return built(TicketReadDTO, fields)


def _json_time(value: str) -> datetime:
    # SQLite's stored text (naive UTC) or PostgreSQL's JSON rendering of a timestamptz.
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Reads for the client are one statement of plain rows, not ORM entities with collections: the
# per-statement and identity-map work was most of a GET's and a list page's Python time. The end
# users and topics come as JSON arrays from correlated subqueries (ticket_end_user and ticket_topic
# are keyed by ticket). Writes load entities (get_ticket).
_VIEW_COLUMNS = (
    *_STORED_COLUMNS,
    "custom_fields_data",
    "ticket_id",
    "token",
    "created_at",
    "recording_key",
    "last_end_user_message_id",
)


def _json_array(dialect: str, values: Any) -> Any:
    """One row's values as a JSON array (an element of the aggregate below)."""
    return func.json_build_array(*values) if dialect == "postgresql" else func.json_array(*values)


def _json_agg(dialect: str, value: Any) -> Any:
    return func.json_agg(value) if dialect == "postgresql" else func.json_group_array(value)


def _own(entity: Any) -> ColumnElement[bool]:
    return entity.customer_id == bindparam(TENANT_PARAM)  # type: ignore[no-any-return]


@cache  # built once per dialect: callers add to it (a Select is immutable), never change it
def _view_select(dialect: str) -> Select[Any]:
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
        .join(EndUser, and_(EndUser.end_user_id == TicketEndUser.end_user_id, _own(EndUser)))
        .where(TicketEndUser.ticket_id == Ticket.ticket_id, _own(TicketEndUser))
        .correlate(Ticket)
        .scalar_subquery()
    )
    topics = (
        select(_json_agg(dialect, Topic.name))
        .select_from(TicketTopic)
        .join(Topic, and_(Topic.topic_id == TicketTopic.topic_id, _own(Topic)))
        .where(TicketTopic.ticket_id == Ticket.ticket_id, _own(TicketTopic))
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
        .outerjoin(Channel, and_(Channel.channel_id == Ticket.channel_id, _own(Channel)))
        .outerjoin(
            CustomerRep, and_(CustomerRep.customer_rep_id == Ticket.customer_rep_id, _own(CustomerRep))
        )
        .where(_own(Ticket))
    )


@cache
def _one_view(dialect: str, seen: Seen) -> Select[Any]:
    one = _view_select(dialect).where(Ticket.ticket_id == bindparam("ticket_id"), seen_clause(seen))
    return tenant_bound(one)


@cache
def _views_by_id(dialect: str) -> Select[Any]:
    return tenant_bound(_view_select(dialect).where(Ticket.ticket_id.in_(bindparam("ids", expanding=True))))


async def _views(ctx: Ctx, stmt: Select[Any], params: dict[str, Any]) -> list[TicketView]:
    return [TicketView(row) for row in await read_bound(ctx.db, stmt, params)]


def _dialect(ctx: Ctx) -> str:
    return ctx.db.get_bind().dialect.name


async def read_ticket(ctx: Ctx, ticket_id: int) -> TicketView:
    """The ticket as the client sees it, if the actor may see it; else NotFound."""
    seen, params = seen_by(ctx.actor)
    views = await _views(ctx, _one_view(_dialect(ctx), seen), {**params, "ticket_id": ticket_id})
    if not views:
        raise NotFound(f"ticket {ticket_id} not found")
    return views[0]


# --- reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a list query filters on, without the values: the key its statements are built once
    for (values are bound when they run)."""

    seen: Seen
    status: bool = False
    channels: bool = False
    rep: str = "any"  # "any", "none" (customerRepID=0) or "one"
    channel_type: bool = False
    uid: bool = False
    end_user: bool = False
    is_spam: bool | None = None
    is_closed: bool | None = None
    include_follow_up: bool = False


def _shape(ctx: Ctx, q: TicketQuery, now: datetime) -> tuple[_Shape, dict[str, Any]]:
    seen, params = seen_by(ctx.actor)
    params["now"] = now
    if q.status:
        params["status"] = list(q.status)
    if q.channel_ids:
        params["channel_ids"] = list(q.channel_ids)
    rep = "any"
    if q.customer_rep_id is not None:
        # 0 asks for unassigned tickets, as 0 means "nobody" in bulk assignment.
        rep = "none" if q.customer_rep_id == 0 else "one"
        params["rep_id"] = q.customer_rep_id
    for key, value in (("channel_type", q.channel_type), ("uid", q.uid), ("end_user_id", q.end_user_id)):
        if value is not None:
            params[key] = value
    shape = _Shape(
        seen=seen,
        status=bool(q.status),
        channels=bool(q.channel_ids),
        rep=rep,
        channel_type=q.channel_type is not None,
        uid=q.uid is not None,
        end_user=q.end_user_id is not None,
        is_spam=q.is_spam,
        is_closed=q.is_closed,
        include_follow_up=q.include_follow_up,
    )
    return shape, params


@cache
def _where(shape: _Shape, *, follow_up: bool = True) -> tuple[ColumnElement[bool], ...]:
    # "Processed": intake is complete (see docs/tickets.md); only processed tickets are listed.
    where: list[ColumnElement[bool]] = [_own(Ticket), Ticket.is_processed == true(), seen_clause(shape.seen)]
    if shape.status:
        where.append(Ticket.status.in_(bindparam("status", expanding=True)))
    if shape.channels:
        where.append(Ticket.channel_id.in_(bindparam("channel_ids", expanding=True)))
    if shape.rep == "none":
        where.append(Ticket.customer_rep_id.is_(None))
    elif shape.rep == "one":
        where.append(Ticket.customer_rep_id == bindparam("rep_id"))
    if shape.channel_type:
        where.append(Ticket.channel_type == bindparam("channel_type"))
    if shape.uid:
        where.append(Ticket.uid == bindparam("uid"))
    if shape.end_user:
        where.append(
            exists().where(
                TicketEndUser.ticket_id == Ticket.ticket_id,
                TicketEndUser.end_user_id == bindparam("end_user_id"),
                _own(TicketEndUser),
            )
        )
    if shape.is_spam is not None:
        where.append(Ticket.is_spam == (true() if shape.is_spam else false()))
    if shape.is_closed is not None:
        where.append(Ticket.is_closed == (true() if shape.is_closed else false()))
    if follow_up and not shape.include_follow_up:
        where.append(or_(Ticket.follow_up_date.is_(None), Ticket.follow_up_date <= bindparam("now")))
    return tuple(where)


@cache
def _count(shape: _Shape) -> Select[Any]:
    everything = (
        counts.total(shape, shape.seen)
        if counts.answers(shape)
        else select(func.count(Ticket.ticket_id)).where(*_where(shape, follow_up=False))
    )
    if shape.include_follow_up:
        return tenant_bound(everything)
    # Listed: all but those with a future follow-up. Counted as all minus those, which is exact:
    # both counts read index entries only (few tickets have a follow-up, and its index finds them),
    # where a count that tests each row's follow-up date reads every row of the filter.
    hidden = select(func.count(Ticket.ticket_id)).where(
        *_where(shape, follow_up=False), Ticket.follow_up_date > bindparam("now")
    )
    return tenant_bound(select(everything.scalar_subquery() - hidden.scalar_subquery()))


@cache
def _paged(dialect: str, shape: _Shape, sort_by: SortBy, desc: bool, among_ids: bool = False) -> Select[Any]:
    """One page (:limit, :offset) of the tickets the shape selects (among :ids), in the given order,
    with their details.

    The page's ids are cut in a subquery and only its rows are joined to their labels: with the
    joins in the same SELECT, SQLite's planner gives up the sort index's order and sorts every
    match.
    """
    key = _SORT_KEYS[sort_by]
    where = list(_where(shape))
    if among_ids:
        where.append(Ticket.ticket_id.in_(bindparam("ids", expanding=True)))
    page = (
        select(Ticket.ticket_id, key.label("sort_key"))
        .where(*where)
        .order_by(*_order(key, Ticket.ticket_id, desc))
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    stmt = _view_select(dialect).join(page, page.c.ticket_id == Ticket.ticket_id)
    return tenant_bound(stmt.order_by(*_order(page.c.sort_key, page.c.ticket_id, desc)))


async def list_tickets(ctx: Ctx, q: TicketQuery, params: PageParams) -> PageResult[TicketView]:
    shape, values = _shape(ctx, q, utcnow())
    if q.status:
        values["status"] = await counts.status_spellings(ctx.db, q.status)
    words = search.terms(q.search) if q.search else []
    if q.search is not None and q.search.strip() and not words:
        raise ValidationFailed.field("search", "must contain at least one letter or digit")
    sort_by = q.sort_by or (SortBy.RELEVANCE if words else SortBy.DATE_CREATED)
    if sort_by is SortBy.RELEVANCE and not words:
        raise ValidationFailed.field("sortBy", "relevance needs a search")
    desc = q.sort_order is SortOrder.DESC

    if words:
        return await _search_page(ctx, shape, values, words, sort_by, desc, params)
    values.update(limit=params.page_size, offset=params.offset)
    views = await _views(ctx, _page_and_total(_dialect(ctx), shape, sort_by, desc), values)
    if views:
        return PageResult(views, int(views[0].row.total), params)
    # Nothing matches, or the page is past the end: the total alone.
    return PageResult([], int((await read_bound(ctx.db, _count(shape), values)).scalar() or 0), params)


@cache
def _page_and_total(dialect: str, shape: _Shape, sort_by: SortBy, desc: bool) -> Select[Any]:
    # One statement and one round trip for the page and its total (an uncorrelated subquery, which
    # both databases evaluate once), read in the same snapshot.
    total = _count(shape).scalar_subquery().label("total")
    return tenant_bound(_paged(dialect, shape, sort_by, desc).add_columns(total))


@cache
def _search(dialect: str, shape: _Shape, long_words: bool, limit: int) -> tuple[Select[Any], bool]:
    where = list(_where(shape))
    stmt, higher_is_better = search.matching_tickets(dialect, where, long_words=long_words, limit=limit)
    return tenant_bound(stmt), higher_is_better


async def _search_page(
    ctx: Ctx,
    shape: _Shape,
    values: dict[str, Any],
    words: list[str],
    sort_by: SortBy,
    desc: bool,
    params: PageParams,
) -> PageResult[TicketView]:
    # The full-text engine returns a bounded set of matching tickets (search.CANDIDATES messages'
    # worth) with their scores, already filtered: read once, it gives the count and the page.
    dialect = _dialect(ctx)
    hits_stmt, higher_is_better = _search(dialect, shape, search.has_long_words(words), search.CANDIDATES)
    values.update(search.search_params(dialect, words))
    hits = [(int(row[0]), row[1]) for row in await read_bound(ctx.db, hits_stmt, values)]
    total = len(hits)
    if total == 0 or params.offset >= total:
        return PageResult([], total, params)
    end = params.offset + params.page_size
    if sort_by is SortBy.RELEVANCE:
        ranked = sorted(hits, key=lambda h: h[0], reverse=desc)  # ties by id, in the same direction
        ranked.sort(key=lambda h: h[1], reverse=higher_is_better == desc)
        ids = [ticket_id for ticket_id, _ in ranked[params.offset : end]]
        found = {v.ticket_id: v for v in await _views(ctx, _views_by_id(dialect), {"ids": ids})}
        return PageResult([found[i] for i in ids if i in found], total, params)
    values.update(ids=[i for i, _ in hits], limit=params.page_size, offset=params.offset)
    page = _paged(dialect, shape, sort_by, desc, among_ids=True)
    return PageResult(await _views(ctx, page, values), total, params)


async def get_ticket(ctx: Ctx, ticket_id: int) -> Ticket:
    """The ticket with its labels and links, if the actor may see it; else NotFound."""
    stmt = _with_details(select(Ticket).where(Ticket.ticket_id == ticket_id, visible(ctx.actor)))
    ticket = (await ctx.db.scalars(stmt.execution_options(populate_existing=True))).first()
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


async def find_visible(ctx: Ctx, ticket_id: int) -> Ticket:
    """The ticket's own row (no labels or links), if the actor may see it; else NotFound."""
    stmt = select(Ticket).where(Ticket.ticket_id == ticket_id, visible(ctx.actor))
    ticket = (await ctx.db.scalars(stmt)).first()
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


async def find_by_token(ctx: Ctx, token: str) -> Ticket | None:
    return (await ctx.db.scalars(select(Ticket).where(Ticket.token == token))).first()


async def _visible_tickets(ctx: Ctx, ticket_ids: Sequence[int]) -> list[Ticket]:
    """Every named ticket, or NotFound naming those the actor cannot see: never a silent skip."""
    wanted = list(dict.fromkeys(ticket_ids))
    stmt = select(Ticket).where(Ticket.ticket_id.in_(wanted), visible(ctx.actor))
    found = {t.ticket_id: t for t in (await ctx.db.scalars(stmt)).all()}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"tickets not found: {', '.join(map(str, missing))}")
    return [found[i] for i in wanted]


# --- writes ----------------------------------------------------------------------------------------


async def _check_assignment(ctx: Ctx, current: int | None, requested: int | None) -> None:
    """Assignment rules by role; an unchanged assignment is always allowed."""
    if requested == current:
        return
    actor = ctx.actor
    if requested is not None:
        rep = await ctx.db.get(CustomerRep, requested)
        if rep is None or not rep.is_active:
            raise ValidationFailed.field("customerRepID", f"no active representative {requested}")
    if actor.is_admin or actor.is_phone:
        return
    if actor.role is Role.AGENT and requested in (actor.rep_id, None):
        return
    if actor.role is Role.RESTRICTED and requested == actor.rep_id:
        return
    who = "agents may assign only to themselves or nobody"
    if actor.role is Role.RESTRICTED:
        who = "restricted representatives may assign only to themselves"
    raise Forbidden(who, code="ASSIGNMENT_NOT_ALLOWED")


async def _check_channel(ctx: Ctx, channel_id: int | None, current: int | None) -> Channel | None:
    """The channel the ticket is to be in (phone auth: only its own), or 400 naming channelID."""
    if ctx.actor.is_phone and channel_id != ctx.actor.channel_id:
        raise Forbidden("phone auth cannot change the ticket's channel", code="CHANNEL_CHANGE_NOT_ALLOWED")
    if channel_id is None:
        return None
    channel = await ctx.db.get(Channel, channel_id)  # the ticket's own channel is loaded with it
    if channel is None:
        raise ValidationFailed.field("channelID", f"no channel {channel_id}")
    return channel


async def link_end_user(ctx: Ctx, ticket_id: int, end_user_id: int) -> None:
    """Link an end user to a ticket once (a no-op when linked): one INSERT ... ON CONFLICT DO NOTHING.

    Both ids are the caller's, already checked against the bound tenant; the row gets that tenant.
    """
    values = {"ticket_id": ticket_id, "end_user_id": end_user_id}
    await write_bound(ctx.db, _link_once(_dialect(ctx)), values)


@cache
def _link_once(dialect: str) -> Any:
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return tenant_insert(dialect_insert(TicketEndUser).on_conflict_do_nothing())


async def link_uid(
    ctx: Ctx,
    ticket_id: int,
    uid: str | None,
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> None:
    """Link the end user the ticket's uid names, creating them when new."""
    if not uid:
        return
    end_user_id = await upsert_lenient(ctx, uid=uid, name=name, email=email, phone=phone)
    if end_user_id is not None:
        await link_end_user(ctx, ticket_id, end_user_id)


# What PUT replaces (a field it leaves out takes the DTO's default): state only clients write. With
# them status and channelType (required), and customFieldsData; isClosed and closeDate follow status.
_REPLACED = ("subject", "escalated", "is_spam", "is_important", "end_date", "follow_up_date", "summary")
# Written only when the body names them, so a PUT that leaves them out keeps them: the server or an
# integration writes them too (messages set uid and mark unread, intake sets isProcessed, the phone
# integration the call fields). customerRepID and channelID are the same, with their own rules.
_KEPT_UNLESS_NAMED = ("uid", "is_read", "is_processed", "twilio_call_sid", "from_number", "to_number")
# Never written through the Tickets API: kept from the ticket's messages (deskpal.messages.latest).
# POST and PUT ignore them, like the read-only fields; a PATCH that changes them is refused.
SERVER_MAINTAINED = ("last_message_date", "preview")
_CLOSED_COLUMNS = ("status", "is_closed", "close_date")


async def _apply(
    ctx: Ctx,
    ticket: Ticket,
    data: TicketWriteDTO,
    *,
    creating: bool,
    given: frozenset[str] | None = None,
    link: bool = True,
) -> None:
    """Write a TicketWriteDTO onto a ticket. `given`: the fields the client wrote (by name); None
    means every field the DTO was given."""
    given = frozenset(data.model_fields_set) if given is None else given

    def named(name: str) -> bool:
        return creating or name in given

    requested_rep = data.customer_rep_id if named("customer_rep_id") else ticket.customer_rep_id
    if creating and ctx.actor.role is Role.RESTRICTED and requested_rep is None:
        # A restricted rep sees only their own tickets: what they create is theirs.
        requested_rep = ctx.actor.rep_id
    await _check_assignment(ctx, None if creating else ticket.customer_rep_id, requested_rep)
    channel_id = data.channel_id if named("channel_id") else ticket.channel_id
    if ctx.actor.is_phone and channel_id is None and creating:
        channel_id = ctx.actor.channel_id
    channel = await _check_channel(ctx, channel_id, None if creating else ticket.channel_id)
    # The channel's type; a type the client changed must be it (a stale one sent back is not a change).
    retyped = creating or data.channel_type != ticket.channel_type
    channel_type = channel_type_in(channel, data.channel_type if retyped else None, field="channelType")
    if data.end_user_id is not None and await ctx.db.get(EndUser, data.end_user_id) is None:
        raise ValidationFailed.field("endUserID", f"no end user {data.end_user_id}")
    custom = await validate_custom_fields(ctx, EntityType.TICKET, data.custom_fields_data)
    written = {name: getattr(data, name) for name in _CLOSED_COLUMNS if name in given or name == "status"}
    closed = closed_state(None if creating else ticket, written, utcnow())

    for name in _REPLACED:
        setattr(ticket, name, getattr(data, name))
    for name in _KEPT_UNLESS_NAMED:
        if named(name):
            setattr(ticket, name, getattr(data, name))
    for name, value in closed.items():
        setattr(ticket, name, value)
    ticket.customer_rep_id, ticket.channel_id = requested_rep, channel_id
    ticket.channel_type = channel_type or data.channel_type
    ticket.custom_fields_data = custom
    if creating:
        await insert_now(ctx.db, ticket)
    else:
        await ctx.db.flush()
    if data.end_user_id is not None:
        await link_end_user(ctx, ticket.ticket_id, data.end_user_id)
    if link:
        await link_uid(ctx, ticket.ticket_id, ticket.uid)


async def create_ticket(ctx: Ctx, data: TicketWriteDTO) -> Ticket:
    """A new ticket, linked to the end user its uid names (read_ticket shows it)."""
    return await insert_ticket(ctx, data, link=True)


async def insert_ticket(ctx: Ctx, data: TicketWriteDTO, *, link: bool) -> Ticket:
    """A new ticket (link=False: the caller links the uid's end user itself, knowing more of them)."""
    ticket = Ticket()
    await _apply(ctx, ticket, data, creating=True, link=link)
    return ticket


async def replace_ticket(ctx: Ctx, ticket_id: int, data: TicketWriteDTO) -> Ticket:
    ticket = await get_ticket(ctx, ticket_id)
    await _apply(ctx, ticket, data, creating=False)
    return ticket


_WRITE_ALIASES = {
    name: f.alias or name for name, f in TicketWriteDTO.model_fields.items() if name != "end_user_id"
}


def _write_document(ticket: Ticket) -> dict[str, Any]:
    """The ticket as TicketWriteDTO JSON: what a JSON Patch applies to."""
    data = TicketWriteDTO.model_construct(**_stored_fields(ticket), end_user_id=None)
    return data.model_dump(mode="json", by_alias=True)


async def patch_ticket(ctx: Ctx, ticket_id: int, operations: list[dict[str, Any]]) -> Ticket:
    """Apply an RFC 6902 patch to the ticket's write fields; any failure changes nothing."""
    ticket = await get_ticket(ctx, ticket_id)
    document = _write_document(ticket)
    patched = apply_json_patch(document, operations)
    if not isinstance(patched, dict):
        raise ValidationFailed.field("body", "the patched ticket must be an object")
    unknown = sorted(set(patched) - WRITE_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"not writable: {', '.join(unknown)}",
            errors=[{"field": k, "message": "is not a writable ticket field"} for k in unknown],
        )
    try:
        data = TicketWriteDTO.model_validate(patched)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(detail, errors=errors) from exc
    # What the patch changed is what the client wrote; the rest of the document is as it was.
    patched_doc = data.model_dump(mode="json", by_alias=True)
    given = frozenset(name for name, alias in _WRITE_ALIASES.items() if patched_doc[alias] != document[alias])
    refused = [_WRITE_ALIASES[name] for name in SERVER_MAINTAINED if name in given]
    if refused:
        message = "is kept from the ticket's messages; it is not written through the Tickets API"
        raise ValidationFailed(
            f"not writable: {', '.join(refused)}", errors=[{"field": f, "message": message} for f in refused]
        )
    await _apply(ctx, ticket, data, creating=False, given=given)
    return ticket


async def delete_ticket(ctx: Ctx, ticket_id: int, *, storage: Storage | None = None) -> None:
    """Delete the ticket; its messages, attachments and links go with it (foreign-key cascades),
    its recording and attachment bytes after the commit."""
    ticket = await get_ticket(ctx, ticket_id)
    await _drop_blobs(ctx, [ticket], storage)
    await ctx.db.execute(
        delete(Ticket).where(Ticket.ticket_id == ticket_id).execution_options(synchronize_session=False)
    )
    ctx.db.expunge_all()


async def assign_to_me(ctx: Ctx, ticket_id: int, forward_number: str | None) -> Ticket:
    """Assign to the calling rep; for phone tickets, record where the call is forwarded."""
    ticket = await get_ticket(ctx, ticket_id)
    if ctx.actor.rep_id is None:
        raise Forbidden("only a representative can take a ticket", code="REP_REQUIRED")
    ticket.customer_rep_id = ctx.actor.rep_id
    if ticket.channel_type == ChannelType.PHONE.value:
        number = forward_number
        if number is None and ticket.channel is not None:
            number = ticket.channel.settings.get("forwardNumber")
        if number:
            # The call itself is forwarded by the phone integration; deskpal records the decision.
            ticket.forwarded_to_number, ticket.forwarded_at = number, utcnow()
    await ctx.db.flush()
    return ticket


async def _drop_blobs(ctx: Ctx, tickets: Sequence[Ticket], storage: Storage | None) -> None:
    """Remove the recordings and attachment bytes of these tickets once this transaction commits
    (by a job in it). Without a storage (service callers that keep no files) the sweeper does it."""
    if storage is None or not tickets:
        return
    attachment_keys = await ctx.db.scalars(
        select(TicketMessageAttachment.storage_key)
        .join(TicketMessage, TicketMessage.message_id == TicketMessageAttachment.message_id)
        .where(TicketMessage.ticket_id.in_([t.ticket_id for t in tickets]))
    )
    await blobs.drop_blobs(ctx, storage, [*(t.recording_key for t in tickets), *attachment_keys.all()])


# --- bulk ------------------------------------------------------------------------------------------


async def bulk_update(ctx: Ctx, req: BulkUpdateRequest, *, storage: Storage | None = None) -> None:
    """One action on many tickets, all or nothing: one refused ticket refuses the whole request."""
    if req.action in AI_ACTIONS:
        raise Unprocessable(f"{req.action} needs the AI features, not yet available", code="AI_NOT_AVAILABLE")
    if req.action is BulkAction.UPDATE_TOPICS and req.topic_ids is None:
        raise ValidationFailed.field("topicIds", "is required for updatetopics")
    tickets = await _visible_tickets(ctx, req.ticket_ids)
    ids = [t.ticket_id for t in tickets]

    if req.customer_rep_id is not None:
        requested = req.customer_rep_id or None
        for ticket in tickets:
            await _check_assignment(ctx, ticket.customer_rep_id, requested)
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
        await _drop_blobs(ctx, tickets, storage)
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


# --- history ---------------------------------------------------------------------------------------

HISTORY_LIMIT = 20


async def history_summary(ctx: Ctx, ticket_id: int) -> str:
    """The end user's earlier tickets (same uid), newest first, as plain text."""
    ticket = await get_ticket(ctx, ticket_id)
    if not ticket.uid:
        return "No end-user history: this ticket has no uid."
    where = (Ticket.uid == ticket.uid, Ticket.ticket_id != ticket.ticket_id, visible(ctx.actor))
    total = int(await ctx.db.scalar(select(func.count(Ticket.ticket_id)).where(*where)) or 0)
    if total == 0:
        return f"No earlier tickets for {ticket.uid}."
    rows = (
        await ctx.db.scalars(
            select(Ticket)
            .where(*where)
            .order_by(Ticket.created_at.desc(), Ticket.ticket_id.desc())
            .limit(HISTORY_LIMIT)
        )
    ).all()
    open_count = int(
        await ctx.db.scalar(select(func.count(Ticket.ticket_id)).where(*where, Ticket.is_closed == false()))
        or 0
    )
    lines = [
        f"{total} earlier ticket{'s' if total != 1 else ''} for {ticket.uid} "
        f"({open_count} open, {total - open_count} closed)"
        + (f"; the latest {HISTORY_LIMIT}:" if total > HISTORY_LIMIT else ":")
    ]
    for row in rows:
        line = f"- #{row.ticket_id} {row.created_at:%Y-%m-%d} [{row.status}] {row.subject}"
        if row.preview:
            line += f" — {row.preview[:120]}"
        lines.append(line)
    return "\n".join(lines)


# --- recordings ------------------------------------------------------------------------------------


async def check_can_record(ctx: Ctx, ticket_id: int) -> None:
    """404 for a ticket the actor cannot see, 422 for one that is not a phone ticket."""
    ticket = await get_ticket(ctx, ticket_id)
    if ticket.channel_type != ChannelType.PHONE.value:
        raise Unprocessable("only phone tickets have call recordings", code="NOT_A_PHONE_TICKET")


async def set_recording(
    ctx: Ctx, ticket_id: int, *, key: str, content_type: str, size: int, storage: Storage | None = None
) -> Ticket:
    """Point the ticket at a stored recording; the one it replaces goes after the commit."""
    await check_can_record(ctx, ticket_id)
    ticket = await get_ticket(ctx, ticket_id)
    if storage is not None:
        if ticket.recording_key:
            await blobs.drop_blobs(ctx, storage, [ticket.recording_key])
        await blobs.ensure_sweep(ctx, storage)
    ticket.recording_key, ticket.recording_content_type, ticket.recording_size = key, content_type, size
    await ctx.db.flush()
    return ticket


async def store_recording_blob(
    ctx: Ctx, storage: Storage, ticket_id: int, chunks: AsyncIterable[bytes]
) -> tuple[str, int]:
    """Stream the audio to storage (checks first, so nothing is stored for a refused ticket); its
    key and size, for set_recording in the write transaction that follows."""
    await check_can_record(ctx, ticket_id)
    return await recordings.store(storage, ctx.customer_id, chunks)


async def get_recording(ctx: Ctx, ticket_id: int) -> tuple[str, str, int]:
    """The stored recording's key, content type and size, or NotFound."""
    ticket = await get_ticket(ctx, ticket_id)
    if ticket.recording_key is None:
        raise NotFound(f"ticket {ticket_id} has no recording", code="NO_RECORDING")
    content_type = ticket.recording_content_type or "application/octet-stream"
    return ticket.recording_key, content_type, ticket.recording_size or 0


# --- webchat ---------------------------------------------------------------------------------------


def hostname_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Exact names match themselves; "*.example.com" matches its subdomains, not example.com."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    for pattern in allowed:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


async def create_chat_ticket(ctx: Ctx, channel: Channel, data: ChatTicketCreateDTO) -> Ticket:
    """A new Chat ticket with the visitor's first message, for the anonymous chat widget."""
    from deskpal.messages.service import add_message  # messages build on tickets, not the reverse

    uid = data.uid or data.email or f"chat-{uuid.uuid4().hex}"
    ticket = Ticket(
        status=OPEN,
        subject=data.subject or subject_from(data.message),
        channel_type=ChannelType.CHAT.value,
        channel_id=channel.channel_id,
        uid=uid,
        custom_fields_data={},
    )
    ctx.db.add(ticket)
    await ctx.db.flush()
    await link_uid(ctx, ticket.ticket_id, ticket.uid, name=data.name, email=data.email)
    await add_message(
        ctx,
        ticket.ticket_id,
        message=data.message,
        subject=data.subject,
        incoming=True,
        from_address=data.email,
        from_name=data.name,
        uid=uid,
    )
    return ticket


def subject_from(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
