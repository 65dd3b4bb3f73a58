"""Re-threading: a message an agent says belongs elsewhere moves to another ticket (or a new one).

Both tickets stay consistent by the rules every message write follows: their last-message fields
(messages.latest: the source read back from what is left, the target following the message), the
message's end user linked to the target, and the message's threadingReason saying who moved it.
The ticket counts follow by themselves (database triggers, tickets/counts.py).
"""

from __future__ import annotations

from deskpal.conversations.schemas import InboundMessage
from deskpal.conversations.service import contact_uid, end_user_contact, open_ticket
from deskpal.core.context import Ctx
from deskpal.core.errors import NotFound, ValidationFailed
from deskpal.core.tenancy import update_now
from deskpal.messages import latest
from deskpal.messages import queries as message_queries
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import TicketMessage
from deskpal.tickets import queries as ticket_queries
from deskpal.tickets import writes as ticket_writes
from deskpal.tickets.models import Ticket


async def _target(ctx: Ctx, msg: TicketMessage, ticket_id: int | None, new_ticket: bool) -> Ticket:
    if new_ticket:
        opening = NewMessage(
            message=msg.message,
            subject=msg.subject,
            text_body=msg.text_body,
            incoming=msg.incoming,
            channel_id=msg.channel_id,
            channel_type=msg.channel_type,
            from_address=msg.from_address,
            to_address=msg.to_address,
            from_number=msg.from_number,
            to_number=msg.to_number,
            uid=msg.uid,
        )
        step = InboundMessage(message=opening)
        step.opening.require_custom_fields = False  # as a mail opening its ticket
        step.opening.subject = msg.subject
        return await open_ticket(ctx, step)
    assert ticket_id is not None
    try:
        target = await ticket_queries.get_ticket_row(ctx, ticket_id)
    except NotFound:
        raise ValidationFailed.field("ticketID", f"no ticket {ticket_id}") from None
    if target.ticket_id == msg.ticket_id:
        raise ValidationFailed.field("ticketID", f"message {msg.message_id} is in ticket {ticket_id} already")
    return target


async def move_message(
    ctx: Ctx, message_id: int, *, ticket_id: int | None, new_ticket: bool
) -> TicketMessage:
    """Move a visible message into a visible ticket (ticket_id) or a new one (new_ticket)."""
    if (ticket_id is None) == (not new_ticket):
        raise ValidationFailed(
            "name the ticket to move the message to (ticketID), or newTicket: true — one of them",
            errors=[
                {"field": "ticketID", "message": "give ticketID or newTicket: true, not both or neither"}
            ],
        )
    msg = await message_queries.get_message(ctx, message_id)
    source = await ticket_queries.get_ticket_row(ctx, msg.ticket_id)
    target = await _target(ctx, msg, ticket_id, new_ticket)
    who = ctx.actor.name or ctx.actor.kind.value
    msg.ticket_id = target.ticket_id
    msg.threading_reason = f"moved by {who} from #{source.ticket_id}"[:2000]
    await ctx.db.flush()
    # The source forgets the message: its last-message fields are read back from what is left.
    await update_now(ctx.db, source, await latest.follow(ctx, source))
    if latest.is_public(msg):
        changes = await latest.follow(ctx, target, msg)
        if changes:
            await update_now(ctx.db, target, changes)
    name, email, phone = end_user_contact(_contact_of(msg))
    uid = msg.uid or target.uid or contact_uid(_contact_of(msg))
    await ticket_writes.link_uid(ctx, target.ticket_id, uid, name=name, email=email, phone=phone)
    return msg


def _contact_of(msg: TicketMessage) -> NewMessage:
    return NewMessage(
        incoming=msg.incoming,
        from_name=msg.from_name,
        from_address=msg.from_address,
        from_number=msg.from_number,
        to_address=msg.to_address,
        to_number=msg.to_number,
    )
