"""POST /api/TicketMessages/{id}/move: re-thread a message an agent disagrees with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from deskpal.conversations.move import move_message
from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, ticket_access
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath
from deskpal.messages import dtos, queries
from deskpal.messages.schemas import MoveMessageRequest, TicketMessageDetailDTO

router = mount(APIRouter(prefix="/api/TicketMessages", tags=["TicketMessages"]), rank=60)

Write = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]


@router.post("/{id}/move", response_model=TicketMessageDetailDTO)
async def move(ctx: Write, id: IdPath, body: MoveMessageRequest) -> TicketMessageDetailDTO:
    """Move the message into ticketID, or with `newTicket: true` into a new ticket; both tickets'
    last-message fields follow, and its threadingReason says "moved by <rep> from #<ticket>"."""
    msg = await move_message(ctx, id, ticket_id=body.ticket_id, new_ticket=body.new_ticket)
    return await dtos.to_detail(ctx, await queries.get_message(ctx, msg.message_id))
