"""Helpers for attachment tests: a message to attach to, multipart bodies, uploads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.support import Tenant
from tests.tickets.helpers import add_messages, create_ticket

BOUNDARY = "deskpal-test-boundary"


async def make_message(
    app: object, client: httpx.AsyncClient, tenant: Tenant, **ticket_fields: Any
) -> tuple[int, int]:
    """A ticket (through the API) with one message; returns (ticket id, message id)."""
    ticket = await create_ticket(client, tenant.headers, **ticket_fields)
    [message_id] = await add_messages(app, tenant, int(ticket["ticketID"]), "Here is my invoice")
    return int(ticket["ticketID"]), message_id


def multipart_head(file_name: str = "invoice.pdf", content_type: str | None = "application/pdf") -> bytes:
    lines = [f"--{BOUNDARY}", f'Content-Disposition: form-data; name="file"; filename="{file_name}"']
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def multipart_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


async def streamed_body(
    total: int, chunk: int = 64 * 1024, head: bytes | None = None
) -> AsyncIterator[bytes]:
    """A multipart body of `total` file bytes, made as it is sent (the client holds one chunk)."""
    yield head if head is not None else multipart_head("big.bin", "application/octet-stream")
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block if n == chunk else block[:n]
        sent += n
    yield multipart_tail()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    message_id: int,
    data: bytes = b"%PDF-1.4 fake invoice",
    file_name: str = "invoice.pdf",
    content_type: str | None = "application/pdf",
) -> httpx.Response:
    files = {"file": (file_name, data, content_type)} if content_type else {"file": (file_name, data)}
    return await client.post(f"/api/TicketMessages/{message_id}/attachments", files=files, headers=headers)


async def upload_raw(
    client: httpx.AsyncClient, headers: dict[str, str], message_id: int, body: bytes
) -> httpx.Response:
    return await client.post(
        f"/api/TicketMessages/{message_id}/attachments",
        content=body,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
