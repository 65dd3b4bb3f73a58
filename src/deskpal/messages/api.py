"""/api/TicketMessages and /api/TicketMessageTopics"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from deskpal.conversations import ticket_messages
from deskpal.core.context import Ctx
from deskpal.core.permissions import (
    Perm,
    ticket_access,
    ticket_access_or_phone_auth,
    ticket_create_from_phone,
)
from deskpal.core.routing import mount
from deskpal.core.schemas import MAX_ID, IdPath, Page, PageParams, page_params, to_page
from deskpal.messages import dtos, queries, topics, updates
from deskpal.messages.schemas import (
    CorrectTopicsRequest,
    MessageSortBy,
    MessageSortOrder,
    TicketMessageCreateDTO,
    TicketMessageDetailDTO,
    TicketMessageSummaryDTO,
    TicketMessageTopicDTO,
    TicketMessageTopicWriteDTO,
    TicketMessageUpdateDTO,
)
from deskpal.storage import Storage

router = mount(APIRouter(prefix="/api/TicketMessages", tags=["TicketMessages"]), rank=20)
topics_router = mount(APIRouter(prefix="/api/TicketMessageTopics", tags=["TicketMessageTopics"]), rank=40)


def storage_of(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


Read = Annotated[Ctx, ticket_access()]
Write = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]
PhoneRead = Annotated[Ctx, ticket_access_or_phone_auth()]
PhoneWrite = Annotated[Ctx, ticket_access_or_phone_auth(Perm.TICKETS_WRITE)]
PhoneCreate = Annotated[Ctx, ticket_create_from_phone()]


@router.get("", response_model=Page[TicketMessageSummaryDTO])
async def list_messages(
    ctx: Read,
    ticket_id: Annotated[int, Query(alias="ticketId", ge=1, le=MAX_ID)],
    paging: Annotated[PageParams, Depends(page_params)],
    sort_by: Annotated[MessageSortBy, Query(alias="sortBy")] = MessageSortBy.DATE_CREATED,
    sort_order: Annotated[
        MessageSortOrder, Query(alias="sortOrder", description="Default asc: the conversation in order.")
    ] = MessageSortOrder.ASC,
) -> Page[TicketMessageSummaryDTO]:
    """One ticket's messages, internal notes and drafts included, paged."""
    result = await queries.list_messages(ctx, ticket_id, paging, sort_by=sort_by, sort_order=sort_order)
    return to_page(result, dtos.to_summary)


@router.post("", response_model=TicketMessageDetailDTO, status_code=201)
async def create_message(ctx: PhoneCreate, body: TicketMessageCreateDTO) -> TicketMessageDetailDTO:
    """A raw message in an existing ticket (ticketID required); the ticket follows it."""
    return await ticket_messages.create_raw(ctx, body)


@router.post("/create-new", response_model=TicketMessageDetailDTO, status_code=201)
async def create_new(ctx: PhoneCreate, body: TicketMessageCreateDTO) -> TicketMessageDetailDTO:
    """A message; without ticketID, in the replied-to message's ticket or a new ticket (and end user)."""
    return await ticket_messages.create_new(ctx, body)


@router.get("/{id}", response_model=TicketMessageDetailDTO)
async def get_message(ctx: PhoneRead, id: IdPath) -> TicketMessageDetailDTO:
    """Phone auth reads only messages of its own channel, and no internal notes."""
    return await dtos.to_detail(ctx, await queries.get_message(ctx, id))


@router.put("/{id}", status_code=204, response_class=Response)
async def update_message(ctx: PhoneWrite, id: IdPath, body: TicketMessageUpdateDTO) -> None:
    """Change the fields the body names (messageID must equal the route id); 204."""
    await updates.update_message(ctx, id, body)


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_message(ctx: Write, request: Request, id: IdPath) -> None:
    """Its attachments' bytes are removed by a job after the commit."""
    await updates.delete_message(ctx, id, storage=storage_of(request))


@router.get("/{id}/draft", response_model=TicketMessageDetailDTO)
async def get_draft(ctx: Read, id: IdPath) -> TicketMessageDetailDTO:
    """The newest draft replying to this message; 404 NO_DRAFT when there is none."""
    return await dtos.to_detail(ctx, await queries.get_draft(ctx, id))


@router.post("/{id}/correct-topics", status_code=204, response_class=Response)
async def correct_topics(ctx: Write, id: IdPath, body: CorrectTopicsRequest) -> None:
    """Replace the message's topics; recorded as a correction, aiTopicsStatus becomes Corrected."""
    await topics.correct_topics(ctx, id, body.topic_ids)


@topics_router.get("", response_model=list[TicketMessageTopicDTO])
async def list_topic_links(
    ctx: PhoneRead, message_id: Annotated[int, Query(alias="messageId", ge=1, le=MAX_ID)]
) -> list[TicketMessageTopicDTO]:
    return [dtos.topic_dto(link) for link in await topics.list_topic_links(ctx, message_id)]


@topics_router.get("/{id}", response_model=TicketMessageTopicDTO)
async def get_topic_link(ctx: PhoneRead, id: IdPath) -> TicketMessageTopicDTO:
    return dtos.topic_dto(await topics.get_topic_link(ctx, id))


@topics_router.post("", response_model=TicketMessageTopicDTO, status_code=201)
async def create_topic_link(ctx: PhoneWrite, body: TicketMessageTopicWriteDTO) -> TicketMessageTopicDTO:
    return dtos.topic_dto(await topics.create_topic_link(ctx, body))


@topics_router.put("/{id}", response_model=TicketMessageTopicDTO)
async def update_topic_link(
    ctx: PhoneWrite, id: IdPath, body: TicketMessageTopicWriteDTO
) -> TicketMessageTopicDTO:
    return dtos.topic_dto(await topics.update_topic_link(ctx, id, body))


@topics_router.delete("/{id}", status_code=204, response_class=Response)
async def delete_topic_link(ctx: PhoneWrite, id: IdPath) -> None:
    await topics.delete_topic_link(ctx, id)
