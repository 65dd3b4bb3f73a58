"""Files over HTTP, for every route that serves or takes one: Range (206/416), validators (ETag,
If-None-Match 304, If-Match 412, If-Range), HEAD, safe Content-Type and Content-Disposition headers,
and the refusal of empty uploads."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from deskpal.core.errors import DeskpalError, NotFound, ValidationFailed
from deskpal.core.head import is_head
from deskpal.storage.base import BlobNotFound, Storage

DEFAULT_TYPE = "application/octet-stream"
MAX_FILE_NAME = 255

# Shown in the browser only when the type cannot run script in deskpal's origin; everything else
# (text/html, image/svg+xml, XML, JavaScript, unknown types) is always a download.
_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}
_INLINE_FAMILIES = ("audio/", "video/")

_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_CHARSET = re.compile(rf";\s*charset=\"?({_TOKEN})\"?\s*$", re.IGNORECASE)
# One range-spec; several (a comma) do not match, and the whole file is sent.
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')


class RangeNotSatisfiable(DeskpalError):
    status, code, title = 416, "RANGE_NOT_SATISFIABLE", "Range not satisfiable"


class PreconditionFailed(DeskpalError):
    status, code, title = 412, "PRECONDITION_FAILED", "Precondition failed"


def clean_content_type(value: str | None) -> str:
    """The media type a client gave, if it is one (plus a charset); else application/octet-stream.

    Nothing is sniffed: deskpal serves back what it was told, and stores nothing that could smuggle
    header syntax (CR, LF, quotes, extra parameters) into a response.
    """
    if not value or len(value) > 200:
        return DEFAULT_TYPE
    main, _, params = value.strip().partition(";")
    match = _MEDIA_TYPE.fullmatch(main.strip())
    if not match:
        return DEFAULT_TYPE
    media = f"{match.group(1)}/{match.group(2)}".lower()
    charset = _CHARSET.match(";" + params) if params else None
    return f"{media}; charset={charset.group(1).lower()}" if charset else media


def clean_file_name(value: str | None, default: str = "file") -> str:
    """A display name: the last path segment, no control characters, at most 255 characters."""
    name = (value or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # CR, LF, NUL, bidi, …
    name = name.strip().strip(".") or default
    if len(name) > MAX_FILE_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        name = (stem if keep else name)[: MAX_FILE_NAME - len(keep) - 1] + (f".{keep}" if keep else "")
    return name


def content_disposition(file_name: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback without quotes or backslashes, and the exact name as filename*."""
    name = clean_file_name(file_name)
    fallback = "".join(
        ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_"
        for ch in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(ch)
    )
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def is_inline(content_type: str) -> bool:
    media = content_type.split(";")[0]
    return media in _INLINE_TYPES or media.startswith(_INLINE_FAMILIES)


def _number(digits: str) -> int:
    # int() of thousands of digits is slow (and refused past 4300); any offset this long lies past
    # every file, so it is capped rather than converted.
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for (inclusive), or None for the whole blob; 416 if it cannot be served.

    A header that is malformed, names another unit, asks for several ranges, or whose last byte comes
    before its first (an invalid range-spec) is ignored: RFC 9110 14.2 lets a server send the whole
    representation instead. A valid range that starts at or past the end, or a suffix of 0 bytes, is
    unsatisfiable: 416 with `Content-Range: bytes */size`.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = _number(first)
        if last and _number(last) < start:
            return None
        if start >= size:
            raise _unsatisfiable(size)
        return start, min(_number(last), size - 1) if last else size - 1
    if not last:
        return None  # "bytes=-": neither a first byte nor a suffix length
    suffix = _number(last)
    if suffix == 0 or size == 0:
        raise _unsatisfiable(size)
    return max(0, size - suffix), size - 1


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}
    )


def _tag_list_matches(header: str, etag: str, *, weak: bool) -> bool:
    """If-Match (strong comparison) / If-None-Match (weak): does the list, or "*", name our tag?"""
    if header.strip() == "*":
        return True
    for tag in _ENTITY_TAG.finditer(header):
        if tag.group(1) and not weak:
            continue  # a weak tag never matches strongly
        if f'"{tag.group(2)}"' == etag:
            return True
    return False


def _if_range_holds(header: str | None, etag: str) -> bool:
    """Serve the Range only if If-Range is absent or names this very representation.

    If-Range takes an entity tag (compared strongly) or a date; deskpal sends no Last-Modified, so a
    date can never be shown to match and the whole file is sent, as RFC 9110 13.1.5 requires.
    """
    return header is None or header.strip() == etag


async def blob_response(
    request: Request,
    storage: Storage,
    key: str,
    *,
    size: int,
    content_type: str,
    file_name: str,
) -> Response:
    """Answer GET or HEAD for a stored blob, as every file route does (RFC 9110 13 and 14).

    Preconditions in the RFC's order: If-Match (412 unless it names the ETag), If-None-Match (304
    when it does), then Range, honoured only while If-Range holds: 206 with Content-Range, 416 when
    it lies past the end. HEAD gets the same status and headers and reads nothing from storage.
    404 `FILE_MISSING` if the bytes are gone from storage.
    """
    # Blobs never change (a new file is a new key), so the key is a strong validator.
    etag = f'"{key.rsplit("/", 1)[-1]}"'
    validators = {
        "ETag": etag,
        "Cache-Control": "private, no-cache",
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    if_match = request.headers.get("if-match")
    if if_match is not None and not _tag_list_matches(if_match, etag, weak=False):
        raise PreconditionFailed("If-Match names another version of the file", headers=validators)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _tag_list_matches(if_none_match, etag, weak=True):
        return Response(status_code=304, headers=validators)
    byte_range = None
    if _if_range_holds(request.headers.get("if-range"), etag):
        byte_range = parse_range(request.headers.get("range"), size)
    start, end = byte_range if byte_range else (0, size - 1)
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(max(0, end - start + 1)),
        "Content-Disposition": content_disposition(file_name, inline=is_inline(content_type)),
        **validators,
    }
    status = 200
    if byte_range:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if is_head(request):
        if not await storage.exists(key):
            raise _missing()
        return Response(status_code=status, headers=headers)
    try:
        reader = await storage.open(key, start, end if size else None)
    except BlobNotFound as exc:
        raise _missing() from exc
    return StreamingResponse(reader, status_code=status, headers=headers)


def _missing() -> NotFound:
    return NotFound("the file is missing from storage", code="FILE_MISSING")


def non_empty(chunks: AsyncIterable[bytes], field: str) -> AsyncIterator[bytes]:
    """An upload's chunks, passed through; if the stream ends with no byte at all, a 400 naming field.

    Every upload route wraps its body in this. The check runs inside the store's put (which removes
    what it began, as for a truncated body), so that the route's own checks — the ticket or message
    exists, is a phone ticket — still answer first; nothing is stored and no row changes.
    """

    async def passed() -> AsyncIterator[bytes]:
        seen = False
        async for chunk in chunks:
            seen = seen or bool(chunk)
            yield chunk
        if not seen:
            raise ValidationFailed.field(field, "is empty: a file has at least one byte")

    return passed()
