"""Changing and deleting messages; the ticket follows."""

from __future__ import annotations

from sqlalchemy import delete

from deskpal.attachments import service as attachments
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.errors import ValidationFailed
from deskpal.core.tenancy import update_now
from deskpal.customfields.models import EntityType
from deskpal.customfields.service import validate_custom_fields
from deskpal.messages import latest
from deskpal.messages.html import preview_of
from deskpal.messages.models import TicketMessage
from deskpal.messages.queries import get_message
from deskpal.messages.schemas import TicketMessageUpdateDTO
from deskpal.storage import Storage
from deskpal.tickets import queries as ticket_queries


async def update_message(ctx: Ctx, message_id: int, data: TicketMessageUpdateDTO) -> TicketMessage:
    """Change the fields the body names; publishing a draft (isDraft false) advances the ticket."""
    msg = await get_message(ctx, message_id)  # 404 first: a mismatch must not tell that the id exists
    if data.message_id != message_id:
        raise ValidationFailed.field("messageID", f"must equal the route id {message_id}")
    given = data.model_fields_set
    if "custom_fields_data" in given:
        merged = {**(msg.custom_fields_data or {}), **(data.custom_fields_data or {})}
        msg.custom_fields_data = await validate_custom_fields(ctx, EntityType.TICKET_MESSAGE, merged)
    for name in (
        "ai_modified_response",
        "additional_info",
        "subject",
        "to_address",
        "cc_address",
        "bcc_address",
        "uid",
    ):
        if name in given:
            setattr(msg, name, getattr(data, name))
    was_public, shown = latest.is_public(msg), msg.body_preview
    if "message" in given:
        msg.message = data.message
        if msg.html_body is None:
            msg.text_body = data.message
            msg.body_preview = preview_of(data.message) if data.message else None
    if "is_draft" in given and data.is_draft is not None:
        msg.is_draft = data.is_draft
    publishing = latest.is_public(msg) and not was_public
    if publishing and msg.message_date is None:
        # Published now: it joins the conversation now, after what came while it was a draft.
        msg.message_date = utcnow()
    await ctx.db.flush()
    if publishing:
        ticket = await ticket_queries.get_ticket_row(ctx, msg.ticket_id)
        await update_now(ctx.db, ticket, await latest.became_public(ctx, ticket, msg))
    elif was_public and (not latest.is_public(msg) or msg.body_preview != shown):
        await latest.refresh_ticket(ctx, msg.ticket_id)  # back to a draft, or its preview changed
    return await get_message(ctx, message_id)


async def delete_message(ctx: Ctx, message_id: int, *, storage: Storage | None = None) -> None:
    """Delete the message; its attachment rows and topic links go by cascade, its attachment bytes
    by a job once this commits (without a storage, the storage sweeper removes them later)."""
    msg = await get_message(ctx, message_id)
    ticket_id, was_public = msg.ticket_id, latest.is_public(msg)
    if storage is not None:
        await attachments.drop_message_blobs(ctx, storage, [message_id])
    await ctx.db.execute(
        delete(TicketMessage)
        .where(TicketMessage.message_id == message_id)
        .execution_options(synchronize_session=False)
    )
    ctx.db.expunge(msg)
    if was_public:
        await latest.refresh_ticket(ctx, ticket_id)
