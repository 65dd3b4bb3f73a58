"""One file out of a multipart/form-data body, as a stream: nothing is spooled, memory stays flat.

Starlette's request.form() parses the whole body first (into memory or a temporary file) before the
handler sees a byte; an upload limit checked afterwards has already cost the disk, the memory and
the time. This reads request.stream() through python-multipart's push parser instead and hands the
file's bytes on as they arrive, so a store can refuse the upload at the first byte over the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from deskpal.core.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

# Form fields before the file, and the part headers, are small; more is an abuse, not a form.
MAX_OTHER_BYTES = 64 * 1024


@dataclass
class _Events:
    """What the push parser reported for the last chunk fed to it, in order."""

    items: list[tuple[str, bytes, dict[bytes, bytes]]] = field(default_factory=list)
    header_field: bytes = b""
    header_value: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class StreamedFile:
    field_name: str
    file_name: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


def _boundary(content_type: str | None) -> bytes:
    media, params = parse_options_header(content_type or "")
    if media != b"multipart/form-data":
        raise UnsupportedMediaType("send the file as multipart/form-data with one field named file")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ValidationFailed.field("file", "the multipart body has no boundary")
    return boundary


async def stream_file(
    content_type: str | None, body: AsyncIterator[bytes], *, field_name: str = "file"
) -> StreamedFile:
    """Advance through the body to the part named field_name and return it with a chunk iterator.

    Other parts before it are skipped (up to MAX_OTHER_BYTES); the rest of the body after it is not
    read. A body without the field is a 400 naming it.
    """
    events = _Events()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        events.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        events.header_value += data[start:end]

    def on_header_end() -> None:
        events.headers[events.header_field.lower()] = events.header_value
        events.header_field = events.header_value = b""

    def on_headers_finished() -> None:
        events.items.append(("headers", b"", events.headers))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        events.items.append(("data", bytes(data[start:end]), {}))

    def on_part_begin() -> None:
        events.headers = {}

    def on_part_end() -> None:
        events.items.append(("part_end", b"", {}))

    def on_end() -> None:
        events.items.append(("end", b"", {}))

    parser = MultipartParser(
        _boundary(content_type),
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_end": on_end,
        },
    )

    async def pump() -> AsyncIterator[tuple[str, bytes, dict[bytes, bytes]]]:
        async for chunk in body:
            if not chunk:
                continue
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ValidationFailed.field("file", f"malformed multipart body: {exc}") from exc
            items, events.items = events.items, []
            for item in items:
                yield item
        parser.finalize()

    stream = pump()
    skipped = 0
    async for kind, data, headers in stream:
        if kind == "data":
            skipped += len(data)
        elif kind == "headers":
            skipped += sum(len(k) + len(v) for k, v in headers.items())
            disposition, params = parse_options_header(headers.get(b"content-disposition", b""))
            if disposition == b"form-data" and params.get(b"name") == field_name.encode():
                raw_name = params.get(b"filename")
                raw_type = headers.get(b"content-type")
                return StreamedFile(
                    field_name=field_name,
                    file_name=raw_name.decode("utf-8", "replace") if raw_name is not None else None,
                    content_type=raw_type.decode("latin-1") if raw_type else None,
                    chunks=_part_data(stream),
                )
        elif kind == "end":
            break
        if skipped > MAX_OTHER_BYTES:
            raise PayloadTooLarge(f"form fields before {field_name!r} exceed {MAX_OTHER_BYTES} bytes")
    raise ValidationFailed.field(field_name, "is required: a multipart field named file")


async def _part_data(stream: AsyncIterator[tuple[str, bytes, dict[bytes, bytes]]]) -> AsyncIterator[bytes]:
    async for kind, data, _headers in stream:
        if kind == "data":
            yield data
        elif kind in ("part_end", "end"):
            return
    # The body ended inside the part: a truncated upload must not be stored as if complete.
    raise ValidationFailed.field("file", "the multipart body ended before the file did")
