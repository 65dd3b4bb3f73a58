"""/api/TicketMessages/{id}/attachments and /api/File/{accessToken}"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from deskpal.attachments import links, service
from deskpal.attachments.models import TicketMessageAttachment
from deskpal.attachments.schemas import TicketMessageAttachmentDTO
from deskpal.auth.owners import customer_of_attachment_token
from deskpal.core.context import ActorKind, Ctx
from deskpal.core.errors import Gone, NotFound
from deskpal.core.permissions import Perm, PublicUnit, public, ticket_access, write_unit
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath
from deskpal.storage import Storage
from deskpal.storage.base import dropped_unless_recorded, too_large
from deskpal.storage.http import blob_response, non_empty
from deskpal.storage.multipart import MAX_OTHER_BYTES, stream_file

router = mount(APIRouter(prefix="/api/TicketMessages", tags=["TicketMessages"]), rank=30)
files_router = mount(APIRouter(prefix="/api/File", tags=["File"]), rank=60)

Read = Annotated[Ctx, ticket_access()]
Write = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]
Upload = Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE, writes_after_body=True)]
AttachmentId = Annotated[int, Path(alias="attachmentId", ge=1, le=2**53 - 1)]

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
_BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}


def storage_of(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


@router.get("/{id}/attachments", response_model=list[TicketMessageAttachmentDTO])
async def list_attachments(ctx: Read, id: IdPath) -> list[TicketMessageAttachmentDTO]:
    """Attachment metadata of a message; the bytes come from GET /api/File/{accessToken}."""
    return [service.to_dto(row) for row in await service.list_attachments(ctx, id)]


@router.post(
    "/{id}/attachments",
    response_model=TicketMessageAttachmentDTO,
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses={415: {"description": "not multipart/form-data", "content": _PROBLEM}},
)
async def upload_attachment(ctx: Upload, id: IdPath, request: Request) -> TicketMessageAttachmentDTO:
    """One multipart field named `file`, streamed to storage; an empty file is a 400 naming `file`,
    one larger than the limit (50 MB by default) is refused with 413 while it streams, and nothing
    is kept. The row is written after the bytes, in a short transaction of its own (no write lock
    is held while the body arrives)."""
    limit: int = request.app.state.settings.attachment_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MAX_OTHER_BYTES:
        raise too_large(limit)  # refused before a byte is read
    await service.get_message(ctx, id)  # 404 before the body is read
    storage = storage_of(request)
    upload = await stream_file(request.headers.get("content-type"), request.stream())
    chunks = non_empty(upload.chunks, upload.field_name)
    blob = await service.store_blob(ctx, storage, id, chunks, max_bytes=limit)
    async with dropped_unless_recorded(storage, blob.key), write_unit(request, ctx) as writing:
        row = await service.record_attachment(
            writing, storage, id, blob, file_name=upload.file_name, content_type=upload.content_type
        )
    return service.to_dto(row)


@router.delete("/{id}/attachments/{attachmentId}", status_code=204, response_class=Response)
async def delete_attachment(ctx: Write, request: Request, id: IdPath, attachment_id: AttachmentId) -> None:
    """The bytes are removed from storage by a job once the deletion commits."""
    await service.delete_attachment(ctx, storage_of(request), id, attachment_id)


async def _serve(request: Request, row: TicketMessageAttachment | None) -> Response:
    if row is None:
        raise NotFound("no such file")
    return await blob_response(
        request,
        storage_of(request),
        row.storage_key,
        size=row.file_size_bytes,
        content_type=row.content_type,
        file_name=row.file_name,
    )


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file", "content": _BYTES},
    206: {"description": "the requested byte range", "content": _BYTES},
    304: {"description": "If-None-Match names the file's ETag: the client's copy is current"},
    412: {"description": "If-Match names another ETag", "content": _PROBLEM},
    416: {"description": "the range lies outside the file", "content": _PROBLEM},
}


@files_router.get(
    "/{accessToken}",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSES,
)
async def download_file(
    request: Request,
    unit: Annotated[
        PublicUnit,
        public(
            ActorKind.LINK,
            write=False,
            reason="attachment bytes for links in mail and chat (the reference marks it public): the "
            "random uuid accessToken is the credential; wrong or deleted tokens are 404",
        ),
    ],
    access_token: Annotated[str, Path(alias="accessToken", max_length=64)],
) -> Response:
    """The bytes of an attachment; HEAD, Range (206/416), ETag with If-None-Match (304), If-Match
    and If-Range as docs/attachments.md describes. Public: the unguessable accessToken is the
    credential. Types that could run script (HTML, SVG, …) are always served as a download."""
    try:
        token = str(uuid.UUID(access_token))
    except ValueError:
        raise NotFound("no such file") from None  # as the reference's {accessToken:guid} route does
    customer_id = await customer_of_attachment_token(unit.db, token)
    if customer_id is None:
        raise NotFound("no such file")
    return await _serve(request, await service.find_by_token(unit.bind(customer_id), token))


@files_router.get(
    "/link/{link}",
    response_class=StreamingResponse,
    responses={**_FILE_RESPONSES, 410: {"description": "the link expired", "content": _PROBLEM}},
)
async def download_by_link(
    request: Request,
    unit: Annotated[
        PublicUnit,
        public(
            ActorKind.LINK,
            write=False,
            reason="download links in mail whose attachments were too large to send: the signed, "
            "expiring link is the credential; a forged or garbled one is 404, an expired one 410",
        ),
    ],
    link: Annotated[str, Path(max_length=200)],
) -> Response:
    """The bytes of an attachment through an expiring link (sent instead of oversized attachments,
    docs/mail.md); the same HEAD, Range and ETag handling as GET /api/File/{accessToken}."""
    try:
        opened = links.open_link(link)
    except links.LinkExpired:
        raise Gone("this download link has expired: ask the sender for the file again") from None
    if opened is None:
        raise NotFound("no such file")
    customer_id, attachment_id = opened
    return await _serve(request, await service.find_attachment(unit.bind(customer_id), attachment_id))
