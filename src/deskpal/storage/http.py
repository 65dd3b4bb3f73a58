"""Serving a blob over HTTP: Range (206/416), safe Content-Type and Content-Disposition headers."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import StreamingResponse

from deskpal.core.errors import DeskpalError, NotFound
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
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)


class RangeNotSatisfiable(DeskpalError):
    status, code, title = 416, "RANGE_NOT_SATISFIABLE", "Range not satisfiable"


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


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for (inclusive), or None for the whole blob; 416 if none can be served.

    A header that is malformed, or asks for several ranges, is ignored (RFC 9110 lets a server send
    the whole representation instead).
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if end < start:
            return None
        if start >= size:
            raise _unsatisfiable(size)
        return start, min(end, size - 1)
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise _unsatisfiable(size)
    return max(0, size - suffix), size - 1


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}"})


async def blob_response(
    request: Request,
    storage: Storage,
    key: str,
    *,
    size: int,
    content_type: str,
    file_name: str,
) -> StreamingResponse:
    """Stream a stored blob, honouring Range; 404 if the bytes are gone from storage."""
    etag = f'"{key.rsplit("/", 1)[-1]}"'
    if_range = request.headers.get("if-range")
    byte_range = parse_range(request.headers.get("range"), size) if if_range in (None, etag) else None
    start, end = byte_range if byte_range else (0, size - 1)
    try:
        reader = await storage.open(key, start, end if size else None)
    except BlobNotFound as exc:
        raise NotFound("the file is missing from storage", code="FILE_MISSING") from exc
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(max(0, end - start + 1)),
        "Content-Disposition": content_disposition(file_name, inline=is_inline(content_type)),
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
        # Blobs never change (a new file is a new key), so the key is a strong validator.
        "ETag": etag,
    }
    status = 200
    if byte_range:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(reader, status_code=status, headers=headers)
