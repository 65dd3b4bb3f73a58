"""POST /api/TicketMessages/{ticketToken}/escalate and POST /api/TicketMessages/{messageId}/escalate-by-id"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from deskpal.auth.owners import ticket_of_token
from deskpal.core import ratelimit
from deskpal.core.context import ActorKind, Ctx
from deskpal.core.errors import NotFound
from deskpal.core.permissions import (
    Perm,
    PublicUnit,
    public,
    ticket_access_or_phone_auth,
    write_unit,
)
from deskpal.core.routing import mount
from deskpal.core.schemas import MAX_ID
from deskpal.email import escalation
from deskpal.email.escalation import EscalatedDTO, EscalateRequest
from deskpal.messages import queries

router = mount(APIRouter(prefix="/api/TicketMessages", tags=["TicketMessages"]), rank=50)

PhoneWrite = Annotated[Ctx, ticket_access_or_phone_auth(Perm.TICKETS_WRITE)]
LIMIT_PER_TOKEN = 5  # escalations of one ticket a minute, whoever sends them
LIMIT_PER_ADDRESS = 20  # anonymous escalations from one client address a minute


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/{ticketToken}/escalate", response_model=EscalatedDTO)
async def escalate(
    request: Request,
    unit: Annotated[
        PublicUnit,
        public(
            ActorKind.LINK,
            write=False,
            reason="the end user escalates their own ticket from a link (the reference marks it public): "
            "the ticket's unguessable token is the credential; rate-limited per token and address",
        ),
    ],
    ticket_token: Annotated[str, Path(alias="ticketToken", max_length=64)],
    body: EscalateRequest | None = None,
) -> EscalatedDTO:
    """Escalate the ticket's newest message (drafts and internal notes aside). 404 for a token no
    ticket has; 429 with Retry-After past 5 a minute per token or 20 per client address."""
    try:
        token: str | None = str(uuid.UUID(ticket_token))
    except ValueError:
        token = None
    # Counted in transactions of their own, after the body is valid and before the token is
    # looked up: a guesser pays for wrong tokens too. Per token in its one spelling (a UUID
    # matches in any case and format), so respelling it buys no more tries.
    db = request.app.state.db
    await ratelimit.enforce(
        db, f"escalate:addr:{client_address(request)}", limit=LIMIT_PER_ADDRESS, window_seconds=60
    )
    key = f"escalate:token:{token or ticket_token.lower()}"
    await ratelimit.enforce(db, key, limit=LIMIT_PER_TOKEN, window_seconds=60)
    if token is None:
        raise NotFound("no such ticket")
    owner = await ticket_of_token(unit.db, token)
    if owner is None:
        raise NotFound("no such ticket")
    customer_id, ticket_id = owner
    async with write_unit(request, unit.bind(customer_id)) as ctx:
        message = await escalation.newest_message(ctx, ticket_id)
        await escalation.escalate(ctx, message, body or EscalateRequest())
    return EscalatedDTO()


@router.post("/{messageId}/escalate-by-id", response_model=EscalatedDTO)
async def escalate_by_id(
    ctx: PhoneWrite,
    message_id: Annotated[int, Path(alias="messageId", ge=1, le=MAX_ID)],
    body: EscalateRequest | None = None,
) -> EscalatedDTO:
    """Escalate one message the caller can see (phone auth: of its own channel); viewers cannot."""
    message = await queries.get_message(ctx, message_id)
    await escalation.escalate(ctx, message, body or EscalateRequest())
    return EscalatedDTO()
