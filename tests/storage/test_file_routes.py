"""HTTP semantics of every route that serves or takes a file, on each database and each store.

The routes are derived from the OpenAPI document (a 2xx answer that is not JSON serves a file; a
request body that is not JSON uploads one), and a test fails when one is added without an entry
here, so a new file route cannot miss Range, 416, HEAD, validators or the empty-upload refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.storage import Storage
from tests.attachments.helpers import make_message, multipart_head, multipart_tail, upload, upload_raw
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

DATA = bytes(range(256)) * 40  # 10 KiB
SIZE = len(DATA)


@pytest.fixture(autouse=True)
def on_store(app: FastAPI, store: Storage) -> Iterator[Storage]:
    """The app on the store under test (local disk, or the local S3-compatible server)."""
    saved = app.state.storage
    app.state.storage = store
    try:
        yield store
    finally:
        app.state.storage = saved


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def served_file_routes(app: FastAPI) -> set[str]:
    """GET operations with a 2xx answer that is not JSON: they serve bytes."""
    found = set()
    for path, operations in app.openapi()["paths"].items():
        for status, response in operations.get("get", {}).get("responses", {}).items():
            if status.startswith("2") and any(not _is_json(t) for t in response.get("content", {})):
                found.add(path)
    return found


def upload_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Operations whose request body is not JSON: they take a file."""
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if any(not _is_json(t) for t in operation.get("requestBody", {}).get("content", {}))
    }


# --- serving --------------------------------------------------------------------------------------

# Stores DATA behind the route; returns the URL to fetch and the headers that may fetch it.
Setup = Callable[[FastAPI, httpx.AsyncClient, Tenant], Awaitable[tuple[str, dict[str, str]]]]


async def _attachment(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, dict[str, str]]:
    _, message_id = await make_message(app, client, tenant)
    response = await upload(client, tenant.headers, message_id, DATA, "clip.bin", "application/octet-stream")
    assert response.status_code == 201, response.text
    return f"/api/File/{response.json()['accessToken']}", {}  # public: the token is the credential


async def _link(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, dict[str, str]]:
    from deskpal.attachments.links import file_link

    _, message_id = await make_message(app, client, tenant)
    response = await upload(client, tenant.headers, message_id, DATA, "clip.bin", "application/octet-stream")
    assert response.status_code == 201, response.text
    # An oversized mail's expiring link (email/outbox.py): public, the signed link is the credential.
    return file_link("", tenant.customer_id, response.json()["ticketMessageAttachmentID"]), {}


async def _recording(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, dict[str, str]]:
    ticket_id = (await create_ticket(client, tenant.headers, channelType="Phone"))["ticketID"]
    response = await client.put(
        f"/api/Tickets/{ticket_id}/recording",
        content=DATA,
        headers={**tenant.headers, "Content-Type": "audio/mpeg"},
    )
    assert response.status_code == 200, response.text
    return f"/api/Tickets/{ticket_id}/play", tenant.headers


async def _mail_channel(client: httpx.AsyncClient, tenant: Tenant) -> int:
    """An Email channel of its own: the same bytes twice on one channel would be a duplicate."""
    import uuid

    address = f"in-{uuid.uuid4().hex[:8]}@files.test"
    response = await client.post(
        "/api/Channels",
        json={"name": address, "channelType": "Email", "settings": {"fromAddress": address}},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["channelID"])


async def _raw_mail(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, dict[str, str]]:
    channel_id = await _mail_channel(client, tenant)
    response = await client.post(
        f"/api/Channels/{channel_id}/inbound",
        content=DATA,  # stored as it came, before any parsing
        headers={**tenant.headers, "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 202, response.text
    return f"/api/InboundMails/{response.json()['inboundMailID']}/raw", tenant.headers


FILE_ROUTES: dict[str, Setup] = {
    "/api/File/{accessToken}": _attachment,
    "/api/File/link/{link}": _link,
    "/api/Tickets/{ticketId}/play": _recording,
    "/api/InboundMails/{id}/raw": _raw_mail,
}


@dataclass
class Served:
    client: httpx.AsyncClient
    url: str
    auth: dict[str, str]

    async def get(self, **headers: str) -> httpx.Response:
        return await self.client.get(self.url, headers={**self.auth, **_names(headers)})

    async def head(self, **headers: str) -> httpx.Response:
        return await self.client.head(self.url, headers={**self.auth, **_names(headers)})


def _names(headers: dict[str, str]) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in headers.items()}


def _is_whole(response: httpx.Response) -> None:
    assert response.status_code == 200, response.headers
    assert response.content == DATA
    assert response.headers["content-length"] == str(SIZE)
    assert "content-range" not in response.headers


def _is_part(response: httpx.Response, first: int, last: int) -> None:
    assert response.status_code == 206, response.headers
    assert response.content == DATA[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["accept-ranges"] == "bytes"


def _is_unsatisfiable(response: httpx.Response, *, head: bool = False) -> None:
    assert response.status_code == 416, response.text
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    if head:
        assert response.content == b""
    else:
        assert response.json()["code"] == "RANGE_NOT_SATISFIABLE"


async def case_single_ranges_are_206(served: Served) -> None:
    _is_part(await served.get(Range="bytes=100-199"), 100, 199)
    _is_part(await served.get(Range="bytes=0-0"), 0, 0)
    _is_part(await served.get(Range=f"bytes={SIZE - 1}-{SIZE - 1}"), SIZE - 1, SIZE - 1)
    _is_part(await served.get(Range="bytes=1000-"), 1000, SIZE - 1)
    _is_part(await served.get(Range="bytes=-10"), SIZE - 10, SIZE - 1)
    _is_part(await served.get(Range=f"bytes={SIZE - 5}-{SIZE + 100}"), SIZE - 5, SIZE - 1)  # clamped
    _is_part(await served.get(Range=f"bytes=-{SIZE + 5}"), 0, SIZE - 1)  # a suffix longer than the file
    _is_part(await served.get(Range="Bytes=5-9"), 5, 9)  # the unit is case-insensitive


async def case_range_past_the_end_is_416(served: Served) -> None:
    _is_unsatisfiable(await served.get(Range=f"bytes={SIZE}-"))  # the bytes=5242880- on 5 MB
    _is_unsatisfiable(await served.get(Range=f"bytes={SIZE}-{SIZE + 10}"))
    _is_unsatisfiable(await served.get(Range=f"bytes={SIZE + 1}-"))
    _is_unsatisfiable(await served.get(Range="bytes=" + "9" * 5000 + "-"))  # no int() of 5000 digits
    _is_unsatisfiable(await served.get(Range="bytes=-0"))


async def case_ranges_it_cannot_serve_get_the_whole_file(served: Served) -> None:
    for ignored in ("bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=-", "bytes=a-b", "bytes 0-1"):
        _is_whole(await served.get(Range=ignored))


async def case_head_is_get_without_the_body(served: Served) -> None:
    got = await served.get()
    _is_whole(got)
    head = await served.head()
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "content-disposition", "etag", "accept-ranges",
                 "cache-control", "x-content-type-options"):  # fmt: skip
        assert head.headers[name] == got.headers[name], name
    part = await served.head(Range="bytes=10-19")
    assert part.status_code == 206 and part.content == b""
    assert part.headers["content-range"] == f"bytes 10-19/{SIZE}"
    assert part.headers["content-length"] == "10"
    _is_unsatisfiable(await served.head(Range=f"bytes={SIZE}-"), head=True)
    current = await served.head(If_None_Match=got.headers["etag"])
    assert current.status_code == 304 and current.content == b""


async def case_if_none_match_with_the_etag_is_304(served: Served) -> None:
    got = await served.get()
    etag = got.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"'), "a strong validator"
    for matching in (etag, f"W/{etag}", f'"older", {etag}', "*"):
        response = await served.get(If_None_Match=matching)
        assert response.status_code == 304, matching
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == got.headers["cache-control"]
    # 304 wins over Range (RFC 9110 13.2.2: If-None-Match is evaluated first)
    assert (await served.get(If_None_Match=etag, Range="bytes=0-9")).status_code == 304
    _is_whole(await served.get(If_None_Match='"another-version"'))
    assert (await served.get()).headers["etag"] == etag, "the ETag is stable"


async def case_if_range_is_honoured(served: Served) -> None:
    etag = (await served.get()).headers["etag"]
    _is_part(await served.get(Range="bytes=0-9", If_Range=etag), 0, 9)
    for stale in ('"another-version"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        _is_whole(await served.get(Range="bytes=0-9", If_Range=stale))
        # a range that would be 416 is not even looked at once If-Range fails
        _is_whole(await served.get(Range=f"bytes={SIZE}-", If_Range=stale))


async def case_if_match_other_than_the_etag_is_412(served: Served) -> None:
    etag = (await served.get()).headers["etag"]
    _is_whole(await served.get(If_Match=etag))
    _is_whole(await served.get(If_Match="*"))
    for other in ('"another-version"', f"W/{etag}"):  # If-Match compares strongly
        response = await served.get(If_Match=other)
        assert response.status_code == 412 and response.json()["code"] == "PRECONDITION_FAILED"


CASES: dict[str, Callable[[Served], Awaitable[None]]] = {
    name.removeprefix("case_"): fn for name, fn in dict(globals()).items() if name.startswith("case_")
}


# Answers that are not JSON but serve no stored file: the mail tracking pixel (a constant GIF) and
# the unsubscribe link's HTML page (tests/mail/).
NOT_STORED_FILES = {"/api/TicketMessages/ot", "/api/TicketMessages/unsubscribejobad"}


class TestEveryFileRoute:
    def test_the_walk_covers_every_route_that_serves_a_file(self, app: FastAPI) -> None:
        assert served_file_routes(app) - NOT_STORED_FILES == set(FILE_ROUTES)

    @pytest.mark.parametrize("case", list(CASES))
    @pytest.mark.parametrize("route", list(FILE_ROUTES))
    async def test_http_semantics(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, route: str, case: str
    ) -> None:
        url, auth = await FILE_ROUTES[route](app, client, tenant)
        await CASES[case](Served(client, url, auth))


# --- uploading ------------------------------------------------------------------------------------


async def _nothing() -> AsyncIterator[bytes]:
    """A chunked body (no Content-Length) that ends without a byte."""
    for _ in range(3):
        yield b""


@dataclass
class UploadRoute:
    area: str  # the storage area its blobs go to
    field: str  # what a 400 must name
    # Makes the target (and, for replaceable files, a first file); returns the state to compare.
    setup: Callable[[FastAPI, httpx.AsyncClient, Tenant], Awaitable[dict[str, Any]]]
    send_empty: Callable[[httpx.AsyncClient, Tenant, dict[str, Any], str], Awaitable[httpx.Response]]
    state: Callable[[httpx.AsyncClient, Tenant, dict[str, Any]], Awaitable[Any]]


async def _message_target(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    _, message_id = await make_message(app, client, tenant)
    return {"message_id": message_id}


async def _empty_attachment(
    client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any], how: str
) -> httpx.Response:
    if how == "declared":
        return await upload(client, tenant.headers, target["message_id"], b"", "empty.pdf")
    body = multipart_head("empty.pdf") + multipart_tail()

    async def chunked() -> AsyncIterator[bytes]:
        yield body

    return await client.post(
        f"/api/TicketMessages/{target['message_id']}/attachments",
        content=chunked(),
        headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=deskpal-test-boundary"},
    )


async def _attachments_of(client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any]) -> Any:
    response = await client.get(
        f"/api/TicketMessages/{target['message_id']}/attachments", headers=tenant.headers
    )
    return response.json()


async def _recorded_ticket(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    url, _ = await _recording(app, client, tenant)  # a first recording, which must survive
    return {"ticket_id": int(url.split("/")[3])}


async def _empty_recording(
    client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any], how: str
) -> httpx.Response:
    return await client.put(
        f"/api/Tickets/{target['ticket_id']}/recording",
        content=b"" if how == "declared" else _nothing(),
        headers={**tenant.headers, "Content-Type": "audio/mpeg"},
    )


async def _recording_of(client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any]) -> Any:
    played = await client.get(f"/api/Tickets/{target['ticket_id']}/play", headers=tenant.headers)
    return played.status_code, played.content


async def _inbound_target(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return {"channel_id": await _mail_channel(client, tenant)}


async def _empty_mail(
    client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any], how: str
) -> httpx.Response:
    return await client.post(
        f"/api/Channels/{target['channel_id']}/inbound",
        content=b"" if how == "declared" else _nothing(),
        headers={**tenant.headers, "Content-Type": "message/rfc822"},
    )


async def _inbound_of(client: httpx.AsyncClient, tenant: Tenant, target: dict[str, Any]) -> Any:
    response = await client.get(
        "/api/InboundMails", params={"channelID": target["channel_id"]}, headers=tenant.headers
    )
    return response.json()["totalCount"]


UPLOAD_ROUTES: dict[tuple[str, str], UploadRoute] = {
    ("POST", "/api/Channels/{id}/inbound"): UploadRoute(
        "inbound", "body", _inbound_target, _empty_mail, _inbound_of
    ),
    ("POST", "/api/TicketMessages/{id}/attachments"): UploadRoute(
        "attachments", "file", _message_target, _empty_attachment, _attachments_of
    ),
    ("PUT", "/api/Tickets/{id}/recording"): UploadRoute(
        "recordings", "body", _recorded_ticket, _empty_recording, _recording_of
    ),
}


class TestEveryUploadRoute:
    def test_the_walk_covers_every_route_that_takes_a_file(self, app: FastAPI) -> None:
        assert upload_routes(app) - {("PATCH", "/api/Tickets/{id}")} == set(UPLOAD_ROUTES)  # JSON Patch

    @pytest.mark.parametrize("how", ["declared", "chunked"])
    @pytest.mark.parametrize("route", list(UPLOAD_ROUTES), ids=" ".join)
    async def test_empty_upload_is_400_naming_the_field_and_changes_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        on_store: Storage,
        route: tuple[str, str],
        how: str,
    ) -> None:
        spec = UPLOAD_ROUTES[route]
        target = await spec.setup(app, client, tenant)
        before = await spec.state(client, tenant, target)
        blobs = {info.key async for info in on_store.list(f"{spec.area}/{tenant.customer_id}")}
        response = await spec.send_empty(client, tenant, target, how)
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["code"] == "VALIDATION_FAILED"
        assert [e["field"] for e in problem["errors"]] == [spec.field]
        assert await spec.state(client, tenant, target) == before
        assert {info.key async for info in on_store.list(f"{spec.area}/{tenant.customer_id}")} == blobs


async def test_upload_helpers_send_what_they_say(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The empty bodies above are refused for being empty, not malformed: one byte more is accepted."""
    _, message_id = await make_message(app, client, tenant)
    one = multipart_head("one.txt", "text/plain") + b"x" + multipart_tail()
    assert (await upload_raw(client, tenant.headers, message_id, one)).status_code == 201
    ticket_id = (await create_ticket(client, tenant.headers, channelType="Phone"))["ticketID"]
    response = await client.put(
        f"/api/Tickets/{ticket_id}/recording",
        content=b"x",
        headers={**tenant.headers, "Content-Type": "audio/mpeg"},
    )
    assert response.status_code == 200
