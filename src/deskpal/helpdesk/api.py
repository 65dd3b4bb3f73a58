"""/helpdesk/api/messages: the second helpdesk's Messages API, for login sessions only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, ticket_access
from deskpal.core.routing import mount
from deskpal.core.schemas import PageParams
from deskpal.core.security import API_KEY_PREFIX, PHONE_TOKEN_PREFIX
from deskpal.helpdesk import service
from deskpal.helpdesk.schemas import HelpdeskMessageDTO, HelpdeskMessagePage, MessageCreate, SortOrder
from deskpal.messages.models import TicketMessage


async def session_tokens_only(request: Request) -> None:
    """Refuse API keys and phone tokens before anything else runs (no transaction, no lookup)."""
    header = request.headers.get("authorization") or ""
    _, _, token = header.partition(" ")
    if token.strip().startswith((API_KEY_PREFIX, PHONE_TOKEN_PREFIX)):
        raise service.SessionRequired(
            "this API accepts login session tokens only (POST /api/Auth/login), not API keys or phone tokens"
        )


router = mount(
    APIRouter(
        prefix="/helpdesk/api/messages",
        tags=["Helpdesk Messages"],
        dependencies=[Depends(session_tokens_only)],
    ),
    rank=50,
)

Read = Annotated[Ctx, ticket_access()]
Write = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]


async def _shown(ctx: Ctx, msg: TicketMessage) -> HelpdeskMessageDTO:
    return service.to_dto(msg, await service.end_user_authors(ctx, [msg]))


@router.get("", response_model=HelpdeskMessagePage)
async def list_messages(
    ctx: Read,
    ticket_id: Annotated[str, Query(min_length=1, max_length=40)],
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    sort_order: Annotated[SortOrder, Query()] = SortOrder.ASC,
) -> HelpdeskMessagePage:
    """A ticket's messages (requests, responses and notes), oldest first by default. Viewer or higher."""
    result = await service.list_messages(ctx, ticket_id, PageParams(page, limit), sort_order)
    authors = await service.end_user_authors(ctx, result.items)
    return HelpdeskMessagePage(
        data=[service.to_dto(m, authors) for m in result.items],
        page=page,
        limit=limit,
        total=result.total,
        total_pages=result.total_pages,
    )


@router.get("/{messageId}", response_model=HelpdeskMessageDTO)
async def get_message(
    ctx: Read, message_id: Annotated[str, Path(alias="messageId", max_length=40)]
) -> HelpdeskMessageDTO:
    return await _shown(ctx, await service.get_message(ctx, message_id))


@router.post("", response_model=HelpdeskMessageDTO, status_code=201)
async def create_message(ctx: Write, body: MessageCreate) -> HelpdeskMessageDTO:
    """A request, response or note, with ticket_update applied in the same transaction. Agent or higher.

    403 TICKET_CLOSED on a closed ticket; 403 CLOSED_STATUS_SYSTEM_ONLY when ticket_update closes it.
    """
    return await _shown(ctx, await service.create_message(ctx, body))
