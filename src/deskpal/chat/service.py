"""The chat widget's adapter: an anonymous visitor's first message, handed to intake.

The route is POST /api/Tickets/createchatticket (tickets/api.py, where the seeds put it): it checks
the Chat channel's token and the page's host, then calls `open_chat`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from deskpal.channels.models import Channel
from deskpal.conversations.schemas import InboundMessage, TicketOpening
from deskpal.conversations.service import intake
from deskpal.core.context import Ctx
from deskpal.messages.insert import NewMessage
from deskpal.tickets.models import Ticket
from deskpal.tickets.queries import get_ticket_row
from deskpal.tickets.schemas import ChatTicketCreateDTO


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


async def open_chat(ctx: Ctx, channel: Channel, data: ChatTicketCreateDTO) -> Ticket:
    """A new Chat ticket with the visitor's first message."""
    # A visitor who gives neither a uid nor an address is an end user of their own.
    uid = data.uid or data.email or f"chat-{uuid.uuid4().hex}"
    msg = await intake(
        ctx,
        InboundMessage(
            message=NewMessage(
                message=data.message,
                subject=data.subject,
                from_address=data.email,
                from_name=data.name,
                uid=uid,
            ),
            channel=channel,
            # The visitor's subject as given; a visitor is never asked for ticket custom fields.
            opening=TicketOpening(subject=data.subject, require_custom_fields=False),
            reopen=False,
        ),
    )
    return await get_ticket_row(ctx, msg.ticket_id)
