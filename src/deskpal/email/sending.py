"""The send endpoints: preview, send (the prepared reply), send-new, send-forward.

Each writes, in the request's transaction, the outgoing message and its send job (through
conversations.send / send_existing); the worker sends (email/outbox.py). Preview runs the same
steps in a savepoint it rolls back, and shows the mail they make (email/outgoing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from typing import Any

from sqlalchemy import false, select

from deskpal.conversations.schemas import OutgoingMessage
from deskpal.conversations.service import send, send_existing
from deskpal.core.context import Ctx
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.errors import Conflict, Unprocessable
from deskpal.email import compose
from deskpal.email.delivery import TAKEN, mail_channel
from deskpal.email.outgoing import assemble, attachments_of, channel_limit
from deskpal.messages import queries as message_queries
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import SenderType, TicketMessage


class OversizedDecision(CaseInsensitiveEnum):
    LINKS = "links"
    REFUSE = "refuse"


class AlreadySent(Conflict):
    code, title = "ALREADY_SENT", "This message has been sent already"


class NothingToSend(Unprocessable):
    code, title = "NOTHING_TO_SEND", "There is no reply to send"


class WrongKind(Unprocessable):
    code, title = "NOT_SENDABLE", "This message cannot be sent this way"


class AttachmentsTooLarge(Conflict):
    code, title = "ATTACHMENTS_TOO_LARGE", "The attachments are larger than the channel sends"


@dataclass(frozen=True, slots=True)
class Request:
    modified_answer: str | None = None
    oversized: OversizedDecision | None = None


async def _answered_by(ctx: Ctx, original: TicketMessage) -> TicketMessage | None:
    """A reply to `original` already on its way or delivered."""
    stmt = select(TicketMessage).where(
        TicketMessage.reply_to_message_id == original.message_id,
        TicketMessage.incoming == false(),
        TicketMessage.is_draft == false(),
        TicketMessage.delivery_status.in_([s.value for s in TAKEN]),
    )
    return (await ctx.db.scalars(stmt.limit(1))).first()


def _reply_text(original: TicketMessage, request: Request) -> tuple[str, SenderType] | None:
    if request.modified_answer is not None and request.modified_answer.strip():
        return request.modified_answer, SenderType.CUSTOMER_REP
    if original.ai_modified_response and original.ai_modified_response.strip():
        return original.ai_modified_response, SenderType.CUSTOMER_REP
    return None


def _reply(original: TicketMessage, text: str, sender: SenderType) -> OutgoingMessage:
    sender_address = original.from_address
    if original.reply_to_address:
        # The mail asked for answers elsewhere (its Reply-To, stored formatted): a web form's
        # mail from a no-reply sender, a colleague answering for the customer.
        sender_address = original.reply_to_address
    elif sender_address and original.from_name:
        # As written (`Zoë <zoe@x>`): the stored address shows the name; compose encodes it.
        sender_address = str(Address(display_name=original.from_name, addr_spec=sender_address))
    new = NewMessage(
        message=text,
        text_body=text,
        incoming=False,
        sender_type=sender,
        channel_id=original.channel_id,
        to_address=sender_address,
        uid=original.uid,
        reply_to_message_id=original.message_id,
        custom_fields_data=dict(original.custom_fields_data or {}),
    )
    return OutgoingMessage(message=new, ticket_id=original.ticket_id, deliver=True)


async def _prepared(ctx: Ctx, original: TicketMessage, request: Request) -> TicketMessage | OutgoingMessage:
    """What `send` sends for this message: an outgoing draft itself; for a received message, its
    reply: the modified answer given, else the stored modified AI reply, else its draft reply, else
    the generated AI reply."""
    if not original.incoming:
        if not original.is_draft and original.delivery_status in TAKEN:
            raise AlreadySent(f"message {original.message_id} is {original.delivery_status}")
        return original
    earlier = await _answered_by(ctx, original)
    if earlier is not None:
        raise AlreadySent(
            f"message {original.message_id} was answered by message {earlier.message_id} "
            f"({earlier.delivery_status}); write another reply with create-new and send-new"
        )
    chosen = _reply_text(original, request)
    if chosen is not None:
        return _reply(original, *chosen)
    draft = await message_queries.find_draft(ctx, original.message_id)
    if draft is not None:
        return draft
    if original.ai_generated_response and original.ai_generated_response.strip():
        return _reply(original, original.ai_generated_response, SenderType.AI)
    raise NothingToSend(
        f"message {original.message_id} has no modified answer, draft reply or AI reply",
        errors=[{"field": "modifiedAnswer", "message": "is required: nothing else prepared a reply"}],
    )


async def _as_links(ctx: Ctx, msg: TicketMessage, decision: OversizedDecision | None) -> bool:
    """Whether the attachments go as links; refuses oversized ones without the decision to."""
    channel = await mail_channel(ctx, msg.channel_id)
    ids = [msg.message_id] + ([msg.forward_from_message_id] if msg.forward_from_message_id else [])
    files = await attachments_of(ctx, ids)
    total, limit = sum(a.size for a in files), channel_limit(channel)
    if total <= limit:
        return False
    if decision is OversizedDecision.LINKS:
        return True
    names = ", ".join(f"{a.file_name} ({a.size} bytes)" for a in files)
    detail = f"the attachments ({total} bytes) exceed the channel's limit of {limit} bytes: {names}"
    if decision is None:
        detail += "; oversizedAttachmentDecision 'links' sends download links instead, 'refuse' sends nothing"
    raise AttachmentsTooLarge(
        detail, errors=[{"field": "oversizedAttachmentDecision", "message": f"{names} exceed {limit} bytes"}]
    )


async def _send_one(ctx: Ctx, target: TicketMessage | OutgoingMessage, request: Request) -> TicketMessage:
    if isinstance(target, OutgoingMessage):
        return await send(ctx, target)  # a new reply: it has no attachments yet
    return await send_existing(ctx, target, as_links=await _as_links(ctx, target, request.oversized))


async def send_prepared(ctx: Ctx, message_id: int, request: Request) -> TicketMessage:
    original = await message_queries.get_message(ctx, message_id)
    return await _send_one(ctx, await _prepared(ctx, original, request), request)


async def _outgoing(ctx: Ctx, message_id: int, *, forward: bool) -> TicketMessage:
    msg = await message_queries.get_message(ctx, message_id)
    what = "a forward draft (create-new with forwardFromMessageID)" if forward else "an outgoing draft"
    if msg.incoming or msg.is_internal_note or (msg.forward_from_message_id is not None) != forward:
        raise WrongKind(f"message {message_id} is not {what}")
    if not msg.is_draft and msg.delivery_status in TAKEN:
        raise AlreadySent(f"message {message_id} is {msg.delivery_status}")
    return msg


async def send_new(ctx: Ctx, message_id: int, request: Request) -> TicketMessage:
    return await _send_one(ctx, await _outgoing(ctx, message_id, forward=False), request)


async def send_forward(ctx: Ctx, message_id: int, request: Request) -> TicketMessage:
    return await _send_one(ctx, await _outgoing(ctx, message_id, forward=True), request)


async def preview(ctx: Ctx, message_id: int, request: Request) -> dict[str, Any]:
    """The mail `send` would send now, built by the same steps, none of which is kept."""
    original = await message_queries.get_message(ctx, message_id)
    savepoint = await ctx.db.begin_nested()
    try:
        target = await _prepared(ctx, original, request)
        if isinstance(target, OutgoingMessage):
            target.deliver = False  # written to be shown, never queued
            msg = await send(ctx, target)
        else:
            msg = target
        assembled = await assemble(ctx, msg)
        shown = compose.describe(assembled.mail)
        shown.update(
            attachments=[
                {
                    "fileName": a.file_name,
                    "contentType": a.content_type,
                    "fileSizeBytes": a.size,
                    "contentId": a.content_id,
                }
                for a in assembled.attachments
            ],
            attachmentBytes=assembled.attachment_bytes,
            maxAttachmentBytes=assembled.max_attachment_bytes,
            oversized=assembled.oversized(),
            messageID=None if msg is not original else msg.message_id,
        )
        return shown
    finally:
        await savepoint.rollback()
