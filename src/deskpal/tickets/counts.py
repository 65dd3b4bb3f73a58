"""A ticket list's exact total from ticket_count instead of one index entry per ticket.

ticket_count (migration 0007) holds signed counts per bucket: the ticket columns a list filters on
(models.COUNT_BUCKET). Triggers on ticket append +1 / -1 rows in the transaction that writes the
ticket, so a total read from it is exactly as current as a count of the tickets themselves; the
worker folds each bucket's rows into one (compact), which keeps the sum short. compact and rebuild
work on every customer's rows at once, in raw SQL: they are the reviewed users of
core.maintenance.all_tenants_maintenance.

A filter on anything else (uid, endUserID) counts tickets as before. Tickets with a future
follow-up are subtracted by the caller from the follow-up index, as before: their number changes
with the clock, not with writes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, bindparam, false, func, select, text, true

from deskpal.core.db import Database
from deskpal.core.maintenance import all_tenants_maintenance
from deskpal.core.tenancy import TENANT_PARAM
from deskpal.tickets.models import COUNT_BUCKET, TicketCount
from deskpal.tickets.visibility import Seen, seen_clause

log = logging.getLogger(__name__)

_BUCKET = ", ".join(("customer_id", *COUNT_BUCKET))
_COLUMNS = f"{_BUCKET}, n"
_MULTI = f"SELECT {_BUCKET} FROM ticket_count GROUP BY {_BUCKET} HAVING count(*) > 1"
# One statement on PostgreSQL: exactly the rows it deletes are summed back (a concurrent writer's
# uncommitted rows are neither), and one compactor at a time (a transaction-scoped advisory lock).
_COMPACT_POSTGRESQL = f"""
WITH gone AS (
    DELETE FROM ticket_count WHERE ({_BUCKET}) IN ({_MULTI})
    RETURNING {_COLUMNS}
)
INSERT INTO ticket_count ({_COLUMNS})
SELECT {_BUCKET}, sum(n) FROM gone GROUP BY {_BUCKET} HAVING sum(n) <> 0
"""
_ADVISORY_KEY = 0x646B70_0001  # "dkp" 1: deskpal's ticket_count compactor


class Shape(Protocol):
    """The parts of a list query's shape (tickets.queries._Shape) a bucket can answer."""

    @property
    def status(self) -> bool: ...
    @property
    def channels(self) -> bool: ...
    @property
    def rep(self) -> str: ...
    @property
    def channel_type(self) -> bool: ...
    @property
    def uid(self) -> bool: ...
    @property
    def end_user(self) -> bool: ...
    @property
    def is_spam(self) -> bool | None: ...
    @property
    def is_closed(self) -> bool | None: ...


def answers(shape: Shape) -> bool:
    """Whether the buckets hold this filter's total (uid and end user are not bucket columns)."""
    return not (shape.uid or shape.end_user)


def total(shape: Shape, seen: Seen) -> Select[Any]:
    """SUM(n) of the buckets the filter selects, with the same bound parameters as the list's
    filter (tenant_id, folded, channel_ids, rep_id, channel_type, actor_rep_id, actor_channel_id)."""
    c = TicketCount
    where: list[ColumnElement[bool]] = [
        c.customer_id == bindparam(TENANT_PARAM),
        c.is_processed == true(),
        # Rep 0 is "nobody" in a bucket (NULL would not compare equal).
        seen_clause(seen, rep=c.customer_rep_id, channel=c.channel_id, unassigned=c.customer_rep_id == 0),
    ]
    if shape.status:  # buckets of every spelling (status_spellings)
        where.append(func.lower(c.status).in_(bindparam("folded", expanding=True)))
    if shape.channels:
        where.append(c.channel_id.in_(bindparam("channel_ids", expanding=True)))
    if shape.rep == "none":
        where.append(c.customer_rep_id == 0)
    elif shape.rep == "one":
        where.append(c.customer_rep_id == bindparam("rep_id"))
    if shape.channel_type:
        where.append(c.channel_type == bindparam("channel_type"))
    if shape.is_spam is not None:
        where.append(c.is_spam == (true() if shape.is_spam else false()))
    if shape.is_closed is not None:
        where.append(c.is_closed == (true() if shape.is_closed else false()))
    return select(func.coalesce(func.sum(c.n), 0)).where(*where)


def status_spellings() -> Select[Any]:
    """Every spelling of the :folded statuses (lower-cased) that the tenant's tickets use, as a
    subquery of the list's own statement: `?status=pending` finds Pending tickets while the list
    still compares status exactly, and so keeps its indexes (ticket_count has a row for every
    status a ticket has). In the statement rather than read before it: a round trip less."""
    return (
        select(TicketCount.status)
        .distinct()
        .where(
            TicketCount.customer_id == bindparam(TENANT_PARAM),
            func.lower(TicketCount.status).in_(bindparam("folded", expanding=True)),
        )
    )


def folded(statuses: Sequence[str]) -> list[str]:
    """The :folded parameter of status_spellings."""
    return sorted({s.lower() for s in statuses})


async def compact(db: Database) -> int:
    """Fold every bucket's rows into one (dropping buckets that add up to nothing); the number of
    rows folded. Run by the worker; safe beside writers and other workers."""
    async with all_tenants_maintenance(db, "fold every customer's ticket_count rows") as session:
        if db.dialect == "postgresql":
            locked = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY}
            )
            if not locked:
                return 0
            result = await session.execute(text(_COMPACT_POSTGRESQL))
            return int(getattr(result, "rowcount", 0) or 0)
        # SQLite: this transaction is the only writer, so three statements see the same rows.
        last = await session.scalar(text("SELECT max(count_id) FROM ticket_count"))
        if last is None:
            return 0
        params = {"last": last}
        upto = "FROM ticket_count WHERE count_id <= :last"
        multi = f"SELECT {_BUCKET} {upto} GROUP BY {_BUCKET} HAVING count(*) > 1"
        folded = f"SELECT {_BUCKET}, sum(n) {upto} GROUP BY {_BUCKET} HAVING count(*) > 1"
        await session.execute(text(f"INSERT INTO ticket_count ({_COLUMNS}) {folded}"), params)
        result = await session.execute(
            text(f"DELETE FROM ticket_count WHERE count_id <= :last AND ({_BUCKET}) IN ({multi})"), params
        )
        await session.execute(text("DELETE FROM ticket_count WHERE n = 0"))
        return int(getattr(result, "rowcount", 0) or 0)


async def rebuild(db: Database) -> None:
    """Recount every bucket from the tickets (after a bulk load that bypassed the triggers)."""
    async with all_tenants_maintenance(db, "recount every customer's ticket_count") as session:
        await session.execute(text("DELETE FROM ticket_count"))
        await session.execute(
            text(
                f"INSERT INTO ticket_count ({_COLUMNS}) SELECT customer_id, is_processed, status, "
                "coalesce(channel_id, 0), coalesce(customer_rep_id, 0), channel_type, is_spam, is_closed, "
                f"count(*) FROM ticket GROUP BY {_BUCKET}"
            )
        )
