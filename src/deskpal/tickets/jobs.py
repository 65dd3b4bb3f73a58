"""Ticket job handlers."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.jobs import job
from deskpal.tickets import recordings
from deskpal.tickets.models import Ticket


class DeleteRecordings(BaseModel):
    data_dir: str
    keys: list[str]


@job("tickets.delete_recordings", payload=DeleteRecordings, max_attempts=5)
async def delete_recordings(ctx: Ctx, p: DeleteRecordings) -> None:
    """Remove recording files of deleted or re-recorded tickets (enqueued by the change that
    dropped them, so it runs only if that change committed)."""
    still_used = set(
        (await ctx.db.scalars(select(Ticket.recording_key).where(Ticket.recording_key.in_(p.keys)))).all()
    )
    for key in p.keys:
        if key not in still_used:
            recordings.path_of(Path(p.data_dir), ctx.customer_id, key).unlink(missing_ok=True)
