"""POST /api/TicketMessages/{id}/preview, /send, /send-new, /send-forward"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, ticket_access
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath
from deskpal.email import sending
from deskpal.email.send_schemas import PreviewResponse, SendRequest, SendResponse
from deskpal.messages.models import TicketMessage

router = mount(APIRouter(prefix="/api/TicketMessages", tags=["TicketMessages"]), rank=60)

Write = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]
OptionalBody = Annotated[SendRequest | None, Body()]


def _sent(msg: TicketMessage) -> SendResponse:
    return SendResponse(
        message="Message sent successfully.",
        message_id=msg.message_id,
        delivery_status=msg.delivery_status or "queued",
        message_identifier=msg.message_identifier,
    )


@router.post("/{id}/preview", response_model=PreviewResponse)
async def preview(ctx: Write, id: IdPath, body: OptionalBody = None) -> PreviewResponse:
    """The final mail `send` would send (subject, bodies, recipients, headers, attachments);
    nothing is written or sent."""
    return PreviewResponse.of(await sending.preview(ctx, id, (body or SendRequest()).request()))


@router.post("/{id}/send", response_model=SendResponse)
async def send(ctx: Write, id: IdPath, body: OptionalBody = None) -> SendResponse:
    """Send the prepared reply of a received message (modifiedAnswer, else ai_ModifiedResponse,
    else its draft reply, else ai_GeneratedResponse), or an outgoing draft itself. Queued: the
    worker sends it."""
    return _sent(await sending.send_prepared(ctx, id, (body or SendRequest()).request()))


@router.post("/{id}/send-new", response_model=SendResponse)
async def send_new(ctx: Write, id: IdPath, body: OptionalBody = None) -> SendResponse:
    """Send a newly composed outbound mail (a create-new draft, incoming false) to its to/cc/bcc."""
    return _sent(await sending.send_new(ctx, id, (body or SendRequest()).request()))


@router.post("/{id}/send-forward", response_model=SendResponse)
async def send_forward(ctx: Write, id: IdPath, body: OptionalBody = None) -> SendResponse:
    """Send a forward draft (create-new with forwardFromMessageID): the original and its
    attachments, to the draft's recipients."""
    return _sent(await sending.send_forward(ctx, id, (body or SendRequest()).request()))
