"""Ticket job handlers."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from deskpal.core.db import Database
from deskpal.core.jobs import JobContext, job, upkeep
from deskpal.tickets import counts
from deskpal.tickets.models import Ticket

COMPACT_COUNTS_SECONDS = 10.0


@upkeep("tickets.compact_counts", every_seconds=COMPACT_COUNTS_SECONDS)
async def compact_counts(db: Database) -> None:
    """Keep ticket_count short: the rows appended since the last run fold into one per bucket."""
    await counts.compact(db)


class DeleteRecordings(BaseModel):
    data_dir: str
    keys: list[str]


@job("tickets.delete_recordings", payload=DeleteRecordings, max_attempts=5)
async def delete_recordings(job: JobContext, p: DeleteRecordings) -> None:
    """Jobs queued before recordings moved to the storage interface: files under
    <data dir>/recordings/<customer>/<key>. New deletions are storage.delete_blobs jobs."""
    async with job.db(write=False) as ctx:
        stmt = select(Ticket.recording_key).where(Ticket.recording_key.in_(p.keys))
        still_used = set((await ctx.db.scalars(stmt)).all())
    folder = Path(p.data_dir) / "recordings" / str(job.customer_id)
    async with job.call_out():  # a data dir may be a network mount
        for key in p.keys:
            if key not in still_used and key.isalnum():
                (folder / key).unlink(missing_ok=True)
