"""The bare stack deskpal is measured against: FastAPI + SQLAlchemy doing the same reads, with no
auth, tenancy hooks, policies or DTO layers. Run by bench/tickets.py under the same uvicorn settings.

It reads what deskpal's ticket DTO is made of, the same way a plain FastAPI + SQLAlchemy app would:
an ORM session (a plain one: no tenancy hooks) on the same engine settings and pool size, the whole
ticket row, returned as a JSON object. The list has deskpal's filter (the customer, processed, the
status, no future follow-up) and sort (dateCreated desc, ticketID desc), 25 rows; it neither
authenticates, checks visibility, counts, nor loads the ticket's channel, rep, end users or topics.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import or_, select, true
from sqlalchemy.ext.asyncio import async_sessionmaker

import deskpal.models  # noqa: F401 - configures every mapper
from deskpal.core.db import make_engine
from deskpal.tickets.models import Ticket

POOL_SIZE = int(os.environ.get("DESKPAL_DB_POOL_SIZE", 10))
engine = make_engine(os.environ["DESKPAL_DATABASE_URL"], pool_size=POOL_SIZE)
sessions = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI()
COLUMNS = [c.key for c in Ticket.__mapper__.column_attrs]


def _row(t: Ticket) -> dict[str, Any]:
    return {k: getattr(t, k) for k in COLUMNS}


@app.get("/tickets/{ticket_id}")
async def one(ticket_id: int) -> dict[str, Any]:
    async with sessions() as s:
        t = await s.get(Ticket, ticket_id)
    return _row(t) if t else {}


@app.get("/tickets")
async def page(customer_id: int, status: str = "Open", page: int = 1) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    stmt = (
        select(Ticket)
        .where(
            Ticket.customer_id == customer_id,
            Ticket.is_processed == true(),
            Ticket.status == status,
            or_(Ticket.follow_up_date.is_(None), Ticket.follow_up_date <= now),
        )
        .order_by(Ticket.created_at.desc(), Ticket.ticket_id.desc())
        .limit(25)
        .offset((page - 1) * 25)
    )
    async with sessions() as s:
        rows = (await s.scalars(stmt)).all()
    return [_row(t) for t in rows]
