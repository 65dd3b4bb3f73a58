"""The bare stack deskpal is measured against: FastAPI + SQLAlchemy doing the same reads, with no
auth, tenancy hooks, policies or DTO layers. Run by bench/tickets.py under uvicorn."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select, true

import deskpal.models  # noqa: F401 - configures every mapper
from deskpal.core.db import Database
from deskpal.tickets.models import Ticket

db = Database(os.environ["DESKPAL_DATABASE_URL"])
app = FastAPI()


def _row(t: Ticket) -> dict[str, Any]:
    return {"ticketID": t.ticket_id, "status": t.status, "subject": t.subject, "dateCreated": t.created_at}


@app.get("/tickets/{ticket_id}")
async def one(ticket_id: int) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(Ticket).where(Ticket.ticket_id == ticket_id))).first()
    return {"ticketID": row.ticket_id, "status": row.status, "subject": row.subject} if row else {}


@app.get("/tickets")
async def page(customer_id: int, status: str = "Open") -> list[dict[str, Any]]:
    stmt = (
        select(Ticket.ticket_id, Ticket.status, Ticket.subject, Ticket.created_at)
        .where(Ticket.customer_id == customer_id, Ticket.is_processed == true(), Ticket.status == status)
        .order_by(Ticket.created_at.desc(), Ticket.ticket_id.desc())
        .limit(25)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [{"ticketID": r[0], "status": r[1], "subject": r[2], "dateCreated": r[3]} for r in rows]
