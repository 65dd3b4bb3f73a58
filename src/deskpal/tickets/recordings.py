"""Call recordings of phone tickets, kept in the app's storage (local disk or S3).

A recording is written to storage before the ticket row points at it ("blob before row"): a failed
request leaves at most an unreferenced blob, which the storage sweeper removes, never a row without
its bytes. Replaced and deleted recordings are removed by a job written in the same transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence

from sqlalchemy import select

from deskpal.channels.models import ChannelType
from deskpal.core.context import Ctx
from deskpal.core.errors import NotFound, Unprocessable
from deskpal.storage import Storage
from deskpal.storage import jobs as blobs
from deskpal.tickets.models import Ticket
from deskpal.tickets.queries import get_ticket

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
    return await store(storage, ctx.customer_id, chunks)


async def get_recording(ctx: Ctx, ticket_id: int) -> tuple[str, str, int]:
    """The stored recording's key, content type and size, or NotFound."""
    ticket = await get_ticket(ctx, ticket_id)
    if ticket.recording_key is None:
        raise NotFound(f"ticket {ticket_id} has no recording", code="NO_RECORDING")
    content_type = ticket.recording_content_type or "application/octet-stream"
    return ticket.recording_key, content_type, ticket.recording_size or 0
