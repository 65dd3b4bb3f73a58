"""/api/Tickets"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from deskpal.auth.service import find_channel_by_public_token
from deskpal.channels.models import ChannelType
from deskpal.chat import service as chat
from deskpal.core import ratelimit
from deskpal.core.context import ActorKind, Ctx
from deskpal.core.errors import Forbidden, UnsupportedMediaType
from deskpal.core.permissions import (
    Perm,
    PublicUnit,
    public,
    ticket_access,
    ticket_access_or_phone_auth,
    ticket_create_from_phone,
    write_unit,
)
from deskpal.core.routing import mount
from deskpal.core.schemas import (
    MAX_ID,
    CleanStr,
    IdPath,
    Page,
    PageParams,
    page_params,
    to_page,
)
from deskpal.storage import Storage
from deskpal.storage.base import dropped_unless_recorded
from deskpal.storage.http import blob_response, non_empty
from deskpal.tickets import bulk, queries, recordings, views, writes
from deskpal.tickets.models import Ticket
from deskpal.tickets.schemas import (
    AssignRequest,
    BulkUpdateRequest,
    ChatTicketCreatedDTO,
    ChatTicketCreateDTO,
    PatchOperation,
    SortBy,
    SortOrder,
    TicketQuery,
    TicketReadDTO,
    TicketWriteDTO,
)

router = mount(APIRouter(prefix="/api/Tickets", tags=["Tickets"]), rank=10)

Read = Annotated[Ctx, ticket_access()]
Write = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]
PhoneRead = Annotated[Ctx, ticket_access_or_phone_auth()]
PhoneWrite = Annotated[Ctx, ticket_access_or_phone_auth(Perm.TICKETS_WRITE)]
PhoneUpload = Annotated[Ctx, ticket_access_or_phone_auth(Perm.TICKETS_WRITE, writes_after_body=True)]
PhoneCreate = Annotated[Ctx, ticket_create_from_phone()]

CHAT_LIMIT_PER_ADDRESS = 20  # new chat tickets per address a minute
QueryId = Annotated[int, Query(ge=0, le=MAX_ID)]


def storage_of(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


async def _shown(ctx: Ctx, ticket: Ticket) -> TicketReadDTO:
    """A ticket just written, as the client sees it."""
    return views.to_dto(await views.read_ticket(ctx, ticket.ticket_id))


def _canonical_channel_type(value: str | None) -> str | None:
    try:
        return None if value is None else ChannelType(value).value
    except ValueError:
        return value  # a type no channel has: the list is empty, as for any other value


async def ticket_query(
    status: Annotated[list[Annotated[CleanStr, Query(max_length=50)]] | None, Query()] = None,
    channel_ids: Annotated[
        list[Annotated[int, Query(ge=1, le=MAX_ID)]] | None, Query(alias="channelIDs")
    ] = None,
    customer_rep_id: Annotated[
        int | None, Query(alias="customerRepID", ge=0, le=MAX_ID, description="0: unassigned tickets.")
    ] = None,
    channel_type: Annotated[CleanStr | None, Query(alias="channelType", max_length=20)] = None,
    uid: Annotated[CleanStr | None, Query(max_length=254)] = None,
    end_user_id: Annotated[int | None, Query(alias="endUserID", ge=1, le=MAX_ID)] = None,
    search: Annotated[
        CleanStr | None,
        Query(max_length=200, description="Words in ticket-message text (each a prefix), accents ignored."),
    ] = None,
    is_spam: Annotated[bool | None, Query(alias="isSpam")] = None,
    is_closed: Annotated[bool | None, Query(alias="isClosed")] = None,
    include_follow_up: Annotated[bool, Query(alias="includeFollowUp")] = False,
    sort_by: Annotated[
        SortBy | None,
        Query(alias="sortBy", description="Default: relevance with a search, else dateCreated."),
    ] = None,
    sort_order: Annotated[SortOrder, Query(alias="sortOrder")] = SortOrder.DESC,
) -> TicketQuery:
    return TicketQuery(
        status=status or [],
        channel_ids=channel_ids or [],
        customer_rep_id=customer_rep_id,
        # ?channelType=phone means Phone, as the paths and parameter names are matched in any case.
        channel_type=_canonical_channel_type(channel_type),
        uid=uid,
        end_user_id=end_user_id,
        search=search,
        is_spam=is_spam,
        is_closed=is_closed,
        include_follow_up=include_follow_up,
        sort_by=sort_by,
        sort_order=sort_order,
    )


@router.get("", response_model=Page[TicketReadDTO])
async def list_tickets(
    ctx: Read,
    query: Annotated[TicketQuery, Depends(ticket_query)],
    paging: Annotated[PageParams, Depends(page_params)],
) -> Page[TicketReadDTO]:
    """Processed tickets the caller may see, filtered, sorted (default desc) and paged."""
    return to_page(await queries.list_tickets(ctx, query, paging), views.to_dto)


@router.get("/{id}", response_model=TicketReadDTO)
async def get_ticket(ctx: Read, id: IdPath) -> TicketReadDTO:
    return views.to_dto(await views.read_ticket(ctx, id))


@router.post("", response_model=TicketReadDTO, status_code=201)
async def create_ticket(ctx: PhoneCreate, body: TicketWriteDTO) -> TicketReadDTO:
    """Phone auth creates tickets in its own channel only."""
    return await _shown(ctx, await writes.create_ticket(ctx, body))


@router.put("/bulk", status_code=204, response_class=Response)
async def bulk_update(ctx: Write, request: Request, body: BulkUpdateRequest) -> None:
    """All or nothing: a ticket the caller may not see or change refuses the whole request."""
    await bulk.bulk_update(ctx, body, storage=storage_of(request))


@router.put("/{id}", status_code=204, response_class=Response)
async def replace_ticket(ctx: Write, id: IdPath, body: TicketWriteDTO) -> None:
    """Replace the editable fields (204, as the reference page says); assignment is limited by role."""
    await writes.replace_ticket(ctx, id, body)


@router.patch(
    "/{id}",
    response_model=TicketReadDTO,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json-patch+json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/PatchOperation"}}
                }
            }
        }
    },
)
async def patch_ticket(
    ctx: PhoneWrite, id: IdPath, body: Annotated[list[PatchOperation], Body(max_length=100)]
) -> TicketReadDTO:
    """RFC 6902 JSON Patch over TicketWriteDTO; a patch that fails anywhere changes nothing."""
    operations = [op.model_dump(by_alias=True, exclude_unset=True) for op in body]
    return await _shown(ctx, await writes.patch_ticket(ctx, id, operations))


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_ticket(ctx: Write, request: Request, id: IdPath) -> None:
    await writes.delete_ticket(ctx, id, storage=storage_of(request))


@router.put("/{id}/assign", response_model=TicketReadDTO)
async def assign_ticket(ctx: Write, id: IdPath, body: AssignRequest | None = None) -> TicketReadDTO:
    """Assign to the calling rep; phone tickets record the call's forward number."""
    forward = body.forward_number if body else None
    return await _shown(ctx, await writes.assign_to_me(ctx, id, forward))


@router.get("/{id}/history-summary", response_model=str)
async def history_summary(ctx: PhoneRead, id: IdPath) -> str:
    """The end user's earlier tickets (by uid), summarised as text."""
    return await queries.history_summary(ctx, id)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def chat_rate_limit(request: Request) -> None:
    # Counted in its own transaction before the request's opens (SQLite has one writer at a time).
    await ratelimit.enforce(
        request.app.state.db,
        f"chat:addr:{client_address(request)}",
        limit=CHAT_LIMIT_PER_ADDRESS,
        window_seconds=60,
    )


def _origin_host(request: Request) -> str | None:
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value and value != "null":
            try:
                return urlsplit(value).hostname
            except ValueError:
                return None
    return None


@router.post("/createchatticket", response_model=ChatTicketCreatedDTO, status_code=201)
async def create_chat_ticket(
    request: Request,
    _limited: Annotated[None, Depends(chat_rate_limit)],
    unit: Annotated[
        PublicUnit,
        public(
            ActorKind.VISITOR,
            reason="the anonymous chat widget opens a ticket: the Chat channel's token plus an allowed "
            "Origin/Referer host; rate-limited per address",
        ),
    ],
    body: ChatTicketCreateDTO,
) -> ChatTicketCreatedDTO:
    """Anonymous: the Chat channel's token, from a page on one of the channel's allowed hostnames."""
    channel = await find_channel_by_public_token(unit.db, body.token)
    if channel is None or channel.channel_type != ChannelType.CHAT.value:
        raise Forbidden("unknown chat channel token", code="CHAT_CHANNEL_REFUSED")
    if not chat.hostname_allowed(_origin_host(request), channel.allowed_hostnames):
        raise Forbidden("this page's host may not open chats on the channel", code="CHAT_ORIGIN_REFUSED")
    # The visitor acts through the channel: its customer is bound, and only its tickets are seen.
    ctx = unit.bind(channel.customer_id, channel_id=channel.channel_id)
    ticket = await chat.open_chat(ctx, channel, body)
    return ChatTicketCreatedDTO(ticket_id=ticket.ticket_id, token=ticket.token)


AUDIO_TYPES = ("audio/", "application/octet-stream")


@router.put(
    "/{id}/recording",
    response_model=TicketReadDTO,
    responses={
        415: {
            "description": "the body is not audio/* (or application/octet-stream)",
            "content": {"application/problem+json": {"schema": {"type": "object"}}},
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_recording(ctx: PhoneUpload, id: IdPath, request: Request) -> TicketReadDTO:
    """Attach a phone ticket's call recording: the raw audio as the body (audio/* or
    application/octet-stream, 1 byte to 100 MB; an empty body is a 400 naming `body`); it is played
    back with the content type sent. The ticket is changed after the bytes are stored, in a short
    transaction of its own."""
    await queries.get_ticket(ctx, id)  # 404 before a byte is stored
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not content_type.startswith(AUDIO_TYPES) or len(content_type) > 100:
        raise UnsupportedMediaType("send the recording as audio/* (e.g. audio/mpeg, audio/wav)")
    storage = storage_of(request)
    body = non_empty(request.stream(), "body")
    key, size = await recordings.store_recording_blob(ctx, storage, id, body)
    async with dropped_unless_recorded(storage, key), write_unit(request, ctx) as writing:
        ticket = await recordings.set_recording(
            writing, id, key=key, content_type=content_type, size=size, storage=storage
        )
        return await _shown(writing, ticket)


@router.get(
    "/{ticketId}/play",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/mpeg": {}}, "description": "the recording"},
        206: {"content": {"audio/mpeg": {}}, "description": "the requested byte range"},
        304: {"description": "If-None-Match names the recording's ETag: the client's copy is current"},
        412: {
            "description": "If-Match names another ETag",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
        416: {
            "description": "the range lies outside the recording",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
)
async def play_recording(
    ctx: Read, request: Request, ticket_id: Annotated[int, Path(alias="ticketId", ge=1, le=MAX_ID)]
) -> Response:
    """Stream the call recording; HEAD, Range (206/416), ETag with If-None-Match (304), If-Match and
    If-Range as for every file (docs/attachments.md); 404 when the ticket has none."""
    key, content_type, size = await recordings.get_recording(ctx, ticket_id)
    return await blob_response(
        request,
        storage_of(request),
        key,
        size=size,
        content_type=content_type,
        file_name=f"ticket-{ticket_id}-recording",
    )
