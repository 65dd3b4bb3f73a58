"""Ticket reads: the list (shapes, counts, search), loading rows for writes, the end-user history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, exists, false, func, or_, select, true
from sqlalchemy.orm import joinedload, selectinload

from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import NotFound, ValidationFailed
from deskpal.core.schemas import PageParams, PageResult
from deskpal.core.tenancy import read_bound, tenant_bound
from deskpal.tickets import counts, search
from deskpal.tickets.models import Ticket, TicketEndUser
from deskpal.tickets.schemas import SortBy, SortOrder, TicketQuery
from deskpal.tickets.views import TicketView, dialect_of, own, read_views, view_select, views_by_id
from deskpal.tickets.visibility import Seen, seen_by, seen_clause, visible

_SORT_KEYS: dict[SortBy, Any] = {
    SortBy.TICKET_ID: Ticket.ticket_id,
    SortBy.DATE_CREATED: Ticket.created_at,
    SortBy.LAST_MESSAGE_DATE: Ticket.last_message_date,
    SortBy.STATUS: Ticket.status,
    SortBy.SUBJECT: Ticket.subject,
    SortBy.FOLLOW_UP_DATE: Ticket.follow_up_date,
    SortBy.CLOSE_DATE: Ticket.close_date,
}


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


# --- lists ----------------------------------------------------------------------------------------


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
        params["folded"] = counts.folded(q.status)
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
    where: list[ColumnElement[bool]] = [own(Ticket), Ticket.is_processed == true(), seen_clause(shape.seen)]
    if shape.status:
        where.append(Ticket.status.in_(counts.status_spellings()))
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
                own(TicketEndUser),
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
    stmt = view_select(dialect).join(page, page.c.ticket_id == Ticket.ticket_id)
    return tenant_bound(stmt.order_by(*_order(page.c.sort_key, page.c.ticket_id, desc)))


async def list_tickets(ctx: Ctx, q: TicketQuery, params: PageParams) -> PageResult[TicketView]:
    shape, values = _shape(ctx, q, utcnow())
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
    views = await read_views(ctx, _page_and_total(dialect_of(ctx), shape, sort_by, desc), values)
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
    dialect = dialect_of(ctx)
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
        found = {v.ticket_id: v for v in await read_views(ctx, views_by_id(dialect), {"ids": ids})}
        return PageResult([found[i] for i in ids if i in found], total, params)
    values.update(ids=[i for i, _ in hits], limit=params.page_size, offset=params.offset)
    page = _paged(dialect, shape, sort_by, desc, among_ids=True)
    return PageResult(await read_views(ctx, page, values), total, params)


async def get_ticket(ctx: Ctx, ticket_id: int) -> Ticket:
    """The ticket with its labels and links, if the actor may see it; else NotFound."""
    stmt = _with_details(select(Ticket).where(Ticket.ticket_id == ticket_id, visible(ctx.actor)))
    ticket = (await ctx.db.scalars(stmt.execution_options(populate_existing=True))).first()
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


async def get_ticket_row(ctx: Ctx, ticket_id: int) -> Ticket:
    """The ticket's own row (no labels or links), if the actor may see it; else NotFound."""
    stmt = select(Ticket).where(Ticket.ticket_id == ticket_id, visible(ctx.actor))
    ticket = (await ctx.db.scalars(stmt)).first()
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


async def visible_tickets(ctx: Ctx, ticket_ids: Sequence[int]) -> list[Ticket]:
    """Every named ticket, or NotFound naming those the actor cannot see: never a silent skip."""
    wanted = list(dict.fromkeys(ticket_ids))
    stmt = select(Ticket).where(Ticket.ticket_id.in_(wanted), visible(ctx.actor))
    found = {t.ticket_id: t for t in (await ctx.db.scalars(stmt)).all()}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"tickets not found: {', '.join(map(str, missing))}")
    return [found[i] for i in wanted]


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
