"""The anonymous chat widget: opening a Chat ticket with the visitor's first message."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx
from deskpal.tickets.derived import OPEN, subject_from
from deskpal.tickets.models import Ticket
from deskpal.tickets.schemas import ChatTicketCreateDTO
from deskpal.tickets.writes import link_uid

# --- webchat ---------------------------------------------------------------------------------------


def hostname_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Exact names match themselves; "*.example.com" matches its subdomains, not example.com."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    for pattern in allowed:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


async def create_chat_ticket(ctx: Ctx, channel: Channel, data: ChatTicketCreateDTO) -> Ticket:
    """A new Chat ticket with the visitor's first message, for the anonymous chat widget."""
    from deskpal.messages.insert import add_message  # messages build on tickets, not the reverse

    uid = data.uid or data.email or f"chat-{uuid.uuid4().hex}"
    ticket = Ticket(
        status=OPEN,
        subject=data.subject or subject_from(data.message),
        channel_type=ChannelType.CHAT.value,
        channel_id=channel.channel_id,
        uid=uid,
        custom_fields_data={},
    )
    ctx.db.add(ticket)
    await ctx.db.flush()
    await link_uid(ctx, ticket.ticket_id, ticket.uid, name=data.name, email=data.email)
    await add_message(
        ctx,
        ticket.ticket_id,
        message=data.message,
        subject=data.subject,
        incoming=True,
        from_address=data.email,
        from_name=data.name,
        uid=uid,
    )
    return ticket
