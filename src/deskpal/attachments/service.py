"""Attachments of ticket messages: stored bytes first, then the row; blobs removed by jobs."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence

from sqlalchemy import select

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.attachments.schemas import TicketMessageAttachmentDTO
from deskpal.core.context import ActorKind, Ctx
from deskpal.core.errors import NotFound
from deskpal.messages.models import TicketMessage
from deskpal.messages.visibility import visible
from deskpal.storage import Storage
from deskpal.storage import jobs as blobs
from deskpal.storage.base import StoredBlob
from deskpal.storage.http import clean_content_type, clean_file_name
from deskpal.tickets.models import Ticket

AREA = "attachments"


def to_dto(row: TicketMessageAttachment) -> TicketMessageAttachmentDTO:
    return TicketMessageAttachmentDTO(
        ticket_message_attachment_id=row.ticket_message_attachment_id,
        message_id=row.message_id,
        file_name=row.file_name,
        content_type=row.content_type,
        file_size_bytes=row.file_size_bytes,
        created_date_time=row.created_at,
        is_end_user_provided=row.is_end_user_provided,
        is_customer_rep_provided=row.is_customer_rep_provided,
        converted_from_attachment_id=row.converted_from_attachment_id,
        content_id=row.content_id,
        access_token=row.access_token,
    )


async def get_message(ctx: Ctx, message_id: int) -> TicketMessage:
    """The message, if the actor may see it (the messages' own rule); else NotFound."""
    stmt = (
        select(TicketMessage)
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(TicketMessage.message_id == message_id, visible(ctx.actor))
    )
    message = (await ctx.db.scalars(stmt)).first()
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return message


async def list_attachments(ctx: Ctx, message_id: int) -> list[TicketMessageAttachment]:
    await get_message(ctx, message_id)
    stmt = (
        select(TicketMessageAttachment)
        .where(TicketMessageAttachment.message_id == message_id)
        .order_by(TicketMessageAttachment.ticket_message_attachment_id)
    )
    return list((await ctx.db.scalars(stmt)).all())


async def get_attachment(ctx: Ctx, message_id: int, attachment_id: int) -> TicketMessageAttachment:
    await get_message(ctx, message_id)
    stmt = select(TicketMessageAttachment).where(
        TicketMessageAttachment.ticket_message_attachment_id == attachment_id,
        TicketMessageAttachment.message_id == message_id,
    )
    row = (await ctx.db.scalars(stmt)).first()
    if row is None:
        raise NotFound(f"attachment {attachment_id} of message {message_id} not found")
    return row


async def add_attachment(
    ctx: Ctx,
    storage: Storage,
    message_id: int,
    *,
    file_name: str | None,
    content_type: str | None,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
    is_end_user_provided: bool | None = None,
    content_id: str | None = None,
    converted_from_attachment_id: int | None = None,
) -> TicketMessageAttachment:
    """Stream the file to storage, then record it, in the caller's transaction (see store_blob)."""
    blob = await store_blob(ctx, storage, message_id, chunks, max_bytes=max_bytes)
    return await record_attachment(
        ctx,
        storage,
        message_id,
        blob,
        file_name=file_name,
        content_type=content_type,
        is_end_user_provided=is_end_user_provided,
        content_id=content_id,
        converted_from_attachment_id=converted_from_attachment_id,
    )


async def store_blob(
    ctx: Ctx, storage: Storage, message_id: int, chunks: AsyncIterable[bytes], *, max_bytes: int
) -> StoredBlob:
    """Stream a file to storage for this message (404 first, so nothing is stored for a message the
    actor cannot see). Over max_bytes: 413 and nothing is kept.

    The blob is written before its row (record_attachment): if that transaction then fails, the
    blob is an orphan that the sweeper removes after the grace period; a row never points at
    missing bytes.
    """
    await get_message(ctx, message_id)
    return await storage.put(blobs.prefix_of(AREA, ctx.customer_id), chunks, max_bytes=max_bytes)


async def record_attachment(
    ctx: Ctx,
    storage: Storage,
    message_id: int,
    blob: StoredBlob,
    *,
    file_name: str | None,
    content_type: str | None,
    is_end_user_provided: bool | None = None,
    content_id: str | None = None,
    converted_from_attachment_id: int | None = None,
) -> TicketMessageAttachment:
    """The row of a stored blob; the message is checked again (it may have gone meanwhile)."""
    await get_message(ctx, message_id)
    if converted_from_attachment_id is not None:
        await get_attachment(ctx, message_id, converted_from_attachment_id)
    by_rep = ctx.actor.kind is ActorKind.REP
    row = TicketMessageAttachment(
        message_id=message_id,
        file_name=clean_file_name(file_name),
        content_type=clean_content_type(content_type),
        file_size_bytes=blob.size,
        is_end_user_provided=(not by_rep) if is_end_user_provided is None else is_end_user_provided,
        is_customer_rep_provided=by_rep,
        converted_from_attachment_id=converted_from_attachment_id,
        content_id=content_id,
        storage_key=blob.key,
    )
    ctx.db.add(row)
    await ctx.db.flush()
    await blobs.ensure_sweep(ctx, storage)
    return row


async def delete_attachment(ctx: Ctx, storage: Storage, message_id: int, attachment_id: int) -> None:
    """Delete the row now and the bytes once this transaction commits (by a job in it)."""
    row = await get_attachment(ctx, message_id, attachment_id)
    await blobs.drop_blobs(ctx, storage, [row.storage_key])
    await ctx.db.delete(row)
    await ctx.db.flush()


async def drop_message_blobs(ctx: Ctx, storage: Storage, message_ids: Sequence[int]) -> None:
    """Call before deleting messages: their attachment rows go by cascade, their bytes by this job."""
    stmt = select(TicketMessageAttachment.storage_key).where(
        TicketMessageAttachment.message_id.in_(list(message_ids))
    )
    await blobs.drop_blobs(ctx, storage, (await ctx.db.scalars(stmt)).all())


async def storage_keys_of_tickets(ctx: Ctx, ticket_ids: Sequence[int]) -> list[str]:
    """The stored files of these tickets' messages (for a delete that drops the tickets)."""
    stmt = (
        select(TicketMessageAttachment.storage_key)
        .join(TicketMessage, TicketMessage.message_id == TicketMessageAttachment.message_id)
        .where(TicketMessage.ticket_id.in_(list(ticket_ids)))
    )
    return list((await ctx.db.scalars(stmt)).all())


async def find_attachment(ctx: Ctx, attachment_id: int) -> TicketMessageAttachment | None:
    """The customer's attachment by id, whoever may see its ticket (a signed link names it)."""
    return await ctx.db.get(TicketMessageAttachment, attachment_id)


async def find_by_token(ctx: Ctx, access_token: str) -> TicketMessageAttachment | None:
    stmt = select(TicketMessageAttachment).where(TicketMessageAttachment.access_token == access_token)
    return (await ctx.db.scalars(stmt)).first()


@blobs.area(AREA)
async def _referenced(ctx: Ctx, keys: Sequence[str]) -> set[str]:
    stmt = select(TicketMessageAttachment.storage_key).where(TicketMessageAttachment.storage_key.in_(keys))
    return set((await ctx.db.scalars(stmt)).all())
