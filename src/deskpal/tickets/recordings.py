"""Call recordings of phone tickets, kept in the app's storage (local disk or S3).

A recording is written to storage before the ticket row points at it ("blob before row"): a failed
request leaves at most an unreferenced blob, which the storage sweeper removes, never a row without
its bytes. Replaced and deleted recordings are removed by a job written in the same transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence

from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.storage import Storage
from deskpal.storage import jobs as blobs
from deskpal.tickets.models import Ticket

AREA = "recordings"
MAX_RECORDING_BYTES = 100 * 1024 * 1024


async def store(storage: Storage, customer_id: int, chunks: AsyncIterable[bytes]) -> tuple[str, int]:
    """Stream a recording to storage; returns its key and size. Over the limit: 413, nothing kept."""
    blob = await storage.put(blobs.prefix_of(AREA, customer_id), chunks, max_bytes=MAX_RECORDING_BYTES)
    return blob.key, blob.size


@blobs.area(AREA)
async def _referenced(ctx: Ctx, keys: Sequence[str]) -> set[str]:
    stmt = select(Ticket.recording_key).where(Ticket.recording_key.in_(keys))
    return {k for k in (await ctx.db.scalars(stmt)).all() if k}
