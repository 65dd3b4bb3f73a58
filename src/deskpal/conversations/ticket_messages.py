"""The TicketMessages API's two create routes as intake and send: POST /api/TicketMessages (raw, into
a named ticket) and POST /api/TicketMessages/create-new (the ticket found from the message, or new).

They check what the API lets a client name (links to other messages, the channel, internal notes,
custom fields, an email template) and hand the message on: an incoming one to `intake`, any other
to `send`, which records no pending send for this API (its messages are recorded, not delivered).
"""

from __future__ import annotations

from typing import Any

from deskpal.channels.models import Channel
from deskpal.conversations.schemas import InboundMessage, OutgoingMessage
from deskpal.conversations.service import contact_uid, intake, send
from deskpal.core.context import Ctx
from deskpal.core.errors import Forbidden, ValidationFailed
from deskpal.core.tenancy import get_now
from deskpal.customfields.models import EntityType
from deskpal.customfields.service import validate_custom_fields
from deskpal.email.service import require_template_id
from deskpal.messages.dtos import created_detail
from deskpal.messages.insert import GIVEN_FIELDS, NewMessage
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.messages.queries import select_visible
from deskpal.messages.schemas import TicketMessageCreateDTO, TicketMessageDetailDTO
from deskpal.tickets import queries as ticket_queries
from deskpal.tickets.derived import channel_type_in
from deskpal.tickets.models import Ticket


async def _linked_message(ctx: Ctx, message_id: int, field_name: str) -> TicketMessage:
    msg = (
        await ctx.db.scalars(select_visible(ctx.actor).where(TicketMessage.message_id == message_id))
    ).first()
    if msg is None:
        raise ValidationFailed.field(field_name, f"no message {message_id}")
    return msg


async def _check_channel(ctx: Ctx, data: TicketMessageCreateDTO, ticket: Ticket | None) -> Channel | None:
    """The message's channel: the one it names (phone auth: its own, named or not), else its
    ticket's. A `channel` type other than that channel's is a 400 naming `channel`."""
    channel_id = data.channel_id
    if ctx.actor.is_phone:
        if channel_id is not None and channel_id != ctx.actor.channel_id:
            raise Forbidden("phone auth acts on its own channel only", code="CHANNEL_NOT_ALLOWED")
        channel_id = ctx.actor.channel_id
    channel = None
    if channel_id is not None:
        channel = await get_now(ctx.db, Channel, channel_id)
        if channel is None:
            raise ValidationFailed.field("channelID", f"no channel {channel_id}")
    elif ticket is not None and ticket.channel_id is not None:
        channel = await get_now(ctx.db, Channel, ticket.channel_id)
    channel_type_in(channel, data.channel.value if data.channel else None, field="channel")
    return channel


def _sender(ctx: Ctx, data: TicketMessageCreateDTO) -> SenderType:
    if data.sender_type is not None:
        return data.sender_type
    if data.incoming:
        return SenderType.END_USER
    return SenderType.CUSTOMER_REP if ctx.actor.rep_id is not None else SenderType.SYSTEM


# The message fields this API's create DTO spells as NewMessage does: copied as given. Of the rest,
# the DTO's ticketID threads the message and its channel names the type; NewMessage's is_forward
# and channel_type follow from the DTO below, and this API takes no attachment references.
_COPIED = tuple(name for name in GIVEN_FIELDS if name in TicketMessageCreateDTO.model_fields)


def _new_message(ctx: Ctx, data: TicketMessageCreateDTO, custom: dict[str, Any]) -> NewMessage:
    new = NewMessage(**{name: getattr(data, name) for name in _COPIED})
    new.sender_type = _sender(ctx, data)
    new.is_forward = data.forward_from_message_id is not None
    new.channel_type = data.channel.value if data.channel else None
    new.custom_fields_data = custom
    return new


def _check_note(ctx: Ctx, data: TicketMessageCreateDTO) -> None:
    if data.is_internal_note and ctx.actor.rep_id is None and not ctx.actor.is_admin:
        raise Forbidden("only representatives write internal notes", code="INTERNAL_NOTE_REPS_ONLY")


async def _check_template(ctx: Ctx, data: TicketMessageCreateDTO) -> None:
    if data.email_template_id is not None:
        await require_template_id(ctx, data.email_template_id)


async def create_raw(ctx: Ctx, data: TicketMessageCreateDTO) -> TicketMessageDetailDTO:
    """POST /api/TicketMessages: the message as given, in an existing ticket (ticketID required)."""
    if data.ticket_id is None:
        raise ValidationFailed.field("ticketID", "is required")
    _check_note(ctx, data)
    ticket = await ticket_queries.get_ticket_row(ctx, data.ticket_id)
    channel = await _check_channel(ctx, data, ticket)
    for field_name, ref in (
        ("replyToMessageID", data.reply_to_message_id),
        ("forwardFromMessageID", data.forward_from_message_id),
    ):
        if ref is not None:
            await _linked_message(ctx, ref, field_name)
    await _check_template(ctx, data)
    custom = await validate_custom_fields(ctx, EntityType.TICKET_MESSAGE, data.custom_fields_data)
    new = _new_message(ctx, data, custom)
    return await created_detail(ctx, await _hand_on(ctx, data, new, channel, ticket))


async def create_new(ctx: Ctx, data: TicketMessageCreateDTO) -> TicketMessageDetailDTO:
    """POST create-new: a message, creating its ticket and end user when no ticket is named.

    The ticket is ticketID's, else the replied-to or forwarded message's, else a new one. A forward
    draft carries no reply linkage.
    """
    _check_note(ctx, data)
    reply_to = forward_from = None
    if data.forward_from_message_id is not None:
        forward_from = await _linked_message(ctx, data.forward_from_message_id, "forwardFromMessageID")
    reply_to_id = data.reply_to_message_id
    if forward_from is not None and data.is_draft:
        reply_to_id = None  # a forward draft is a new outbound mail, not a reply in the thread
    if reply_to_id is not None:
        reply_to = await _linked_message(ctx, reply_to_id, "replyToMessageID")
    await _check_template(ctx, data)
    custom = await validate_custom_fields(ctx, EntityType.TICKET_MESSAGE, data.custom_fields_data)

    ticket_id = data.ticket_id
    if ticket_id is None:
        source = reply_to or forward_from
        ticket_id = source.ticket_id if source is not None else None
    elif reply_to is not None and reply_to.ticket_id != ticket_id:
        raise ValidationFailed.field("replyToMessageID", "is a message of another ticket")

    new = _new_message(ctx, data, custom)
    new.reply_to_message_id = reply_to_id
    ticket = await ticket_queries.get_ticket_row(ctx, ticket_id) if ticket_id is not None else None
    channel = await _check_channel(ctx, data, ticket)
    if new.uid is None:
        # The message names its end user as its ticket does (a new ticket: by their address).
        new.uid = ticket.uid if ticket is not None else contact_uid(new)
    return await created_detail(ctx, await _hand_on(ctx, data, new, channel, ticket))


async def _hand_on(
    ctx: Ctx, data: TicketMessageCreateDTO, new: NewMessage, channel: Channel | None, ticket: Ticket | None
) -> TicketMessage:
    if data.incoming:
        return await intake(ctx, InboundMessage(message=new, channel=channel, ticket=ticket))
    return await send(ctx, OutgoingMessage(message=new, channel=channel, ticket=ticket))
