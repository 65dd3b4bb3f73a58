"""POST /api/Channels/{id}/inbound (a raw mail in) and /api/InboundMails (what came in)."""

from __future__ import annotations

import email.message
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from deskpal.channels import service as channels
from deskpal.core.context import Ctx
from deskpal.core.errors import UnsupportedMediaType
from deskpal.core.permissions import Perm, require, write_unit
from deskpal.core.routing import mount
from deskpal.core.schemas import MAX_ID, IdPath, Page, PageParams, page_params, to_page
from deskpal.email.inbound import receive, service
from deskpal.email.inbound.models import InboundSource, InboundStatus
from deskpal.email.inbound.parsed import MailKind
from deskpal.email.inbound.schemas import InboundMailDTO, InboundReceivedDTO
from deskpal.storage import Storage
from deskpal.storage.base import dropped_unless_recorded, too_large
from deskpal.storage.http import blob_response, non_empty

channels_router = mount(APIRouter(prefix="/api/Channels", tags=["Channels"]), rank=90)
router = mount(APIRouter(prefix="/api/InboundMails", tags=["InboundMails"]), rank=100)

Read = Annotated[Ctx, require(Perm.TICKETS_READ)]
Write = Annotated[Ctx, require(Perm.TICKETS_WRITE)]
# The body streams to storage on a read-only session; the row is written afterwards in a short
# transaction of its own (no write lock held while a slow MTA sends megabytes).
Receive = Annotated[Ctx, require(Perm.TICKETS_WRITE, writes_after_body=True)]

# MTA pipes and forwarding services label a raw mail in these ways (curl: --data-binary with -H).
ACCEPTED_TYPES = frozenset({"message/rfc822", "application/octet-stream", "text/plain"})
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(ACCEPTED_TYPES)},
    }
}


def storage_of(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


def _check_type(content_type: str | None) -> None:
    if content_type is None:
        return  # a bare pipe sends none: the bytes are the mail
    header = email.message.Message()
    header["content-type"] = content_type
    if header.get_content_type() not in ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"the body must be a raw RFC 5322 mail sent as message/rfc822 (or application/octet-stream, "
            f"text/plain), not {content_type}"
        )


@channels_router.post(
    "/{id}/inbound",
    response_model=InboundReceivedDTO,
    status_code=202,
    openapi_extra=_RAW_BODY,
    responses={
        413: {"description": "larger than DESKPAL_MAX_INBOUND_MAIL_BYTES", "content": _PROBLEM},
        415: {"description": "not a raw mail", "content": _PROBLEM},
    },
)
async def receive_mail(ctx: Receive, id: IdPath, request: Request) -> InboundReceivedDTO:
    """A raw RFC 5322 mail as the body (admins' and agents' keys), for MTA pipes and forwarding
    services. 202 once its bytes are stored and recorded: `pending` (a job parses and files it),
    or `duplicate` (the same Message-ID, or the same bytes, came to this channel before). A body
    over the limit (50 MB by default) is refused with 413 while it streams, and nothing is kept."""
    limit: int = request.app.state.settings.max_inbound_mail_bytes
    declared = request.headers.get("content-length", "")
    await service.receiving_channel(ctx, id)  # 404 / 403 / 422 before a byte is read
    _check_type(request.headers.get("content-type"))
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    storage = storage_of(request)
    staged = await receive.stage(
        storage, ctx.customer_id, non_empty(request.stream(), "body"), max_bytes=limit
    )
    async with dropped_unless_recorded(storage, staged.key), write_unit(request, ctx) as writing:
        channel = await channels.get_channel(writing, id)
        row = await receive.record(writing, storage, channel, staged, source=InboundSource.ENDPOINT)
    return service.received(row)


@router.get("", response_model=Page[InboundMailDTO])
async def list_inbound_mails(
    ctx: Read,
    paging: Annotated[PageParams, Depends(page_params)],
    status: Annotated[InboundStatus | None, Query()] = None,
    kind: Annotated[MailKind | None, Query()] = None,
    channel_id: Annotated[int | None, Query(alias="channelID", ge=1, le=MAX_ID)] = None,
) -> Page[InboundMailDTO]:
    """Received mail, newest first: `?status=failed` lists what needs a look (admins and agents)."""
    result = await service.list_mails(ctx, paging, status=status, kind=kind, channel_id=channel_id)
    return to_page(result, service.to_dto)


@router.get("/{id}", response_model=InboundMailDTO)
async def get_inbound_mail(ctx: Read, id: IdPath) -> InboundMailDTO:
    return service.to_dto(await service.get_mail(ctx, id))


@router.get(
    "/{id}/raw",
    response_class=StreamingResponse,
    responses={200: {"description": "the raw mail", "content": {"message/rfc822": {}}}},
)
async def download_raw(ctx: Read, id: IdPath, request: Request) -> Response:
    """The mail exactly as it came in (message/rfc822), streamed from storage; Range and ETag as
    for files."""
    row = await service.get_mail(ctx, id)
    return await blob_response(
        request,
        storage_of(request),
        row.storage_key,
        size=row.size,
        content_type="message/rfc822",
        file_name=f"inbound-{row.inbound_mail_id}.eml",
    )


@router.post("/{id}/retry", response_model=InboundMailDTO)
async def retry_inbound_mail(ctx: Write, id: IdPath, request: Request) -> InboundMailDTO:
    """A failed mail back to `pending`, parsed and filed again by a new job; 409 NOT_RETRYABLE
    for any other status."""
    return service.to_dto(await service.retry_mail(ctx, storage_of(request), id))
