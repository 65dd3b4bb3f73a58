"""GET /api/TicketMessages/ot: the open-tracking pixel of outgoing mail."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI

from deskpal.core.db import utcnow
from deskpal.email import tracking
from deskpal.messages.models import TicketMessage
from tests.mail.helpers import create_message, outgoing, stored_message
from tests.support import Tenant

NO_CACHE = "no-store, no-cache, must-revalidate, private, max-age=0"


def assert_pixel(response: httpx.Response, *, body: bool = True) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == NO_CACHE
    assert response.headers["pragma"] == "no-cache" and response.headers["expires"] == "0"
    assert response.headers["content-length"] == "43"
    if body:
        gif = response.content
        assert gif == tracking.PIXEL_GIF and len(gif) == 43
        assert gif.startswith(b"GIF89a") and gif[6:10] == b"\x01\x00\x01\x00" and gif.endswith(b";")


async def _token(app: FastAPI, tenant: Tenant, message_id: int) -> str:
    row = await stored_message(app, tenant, message_id)
    assert row is not None and row.open_token
    return row.open_token


async def _state(app: FastAPI, tenant: Tenant, message_id: int) -> TicketMessage:
    row = await stored_message(app, tenant, message_id)
    assert row is not None
    return row


class TestOpenToken:
    async def test_outgoing_messages_get_an_unguessable_token_and_incoming_none(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        sent = [await outgoing(client, tenant) for _ in range(2)]
        tokens = {await _token(app, tenant, m["messageID"]) for m in sent}
        assert len(tokens) == 2 and all(len(t) == 32 and tracking.is_open_token(t) for t in tokens)
        incoming = await create_message(client, tenant.headers)
        assert (await _state(app, tenant, incoming["messageID"])).open_token is None
        assert incoming["openCount"] == 0 and sent[0]["openCount"] == 0

    async def test_pixel_url_names_the_token_under_the_public_address(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        sent = await outgoing(client, tenant)
        row = await _state(app, tenant, sent["messageID"])
        url = tracking.pixel_url("https://desk.example.com/", row)
        assert url == f"https://desk.example.com/api/TicketMessages/ot?token={row.open_token}"
        incoming = await _state(app, tenant, (await create_message(client, tenant.headers))["messageID"])
        assert tracking.pixel_url("https://desk.example.com", incoming) is None
        assert app.state.settings.public_url == "http://127.0.0.1:8000"


class TestPixel:
    async def test_the_right_token_counts_each_open(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        sent = await outgoing(client, tenant)
        token = await _token(app, tenant, sent["messageID"])
        before = utcnow()
        assert_pixel(await client.get(f"/api/TicketMessages/ot?token={token}"))
        first = await _state(app, tenant, sent["messageID"])
        assert first.is_opened and first.open_count == 1
        assert first.last_open_date is not None and before <= first.last_open_date <= utcnow()
        # Replayed (a second open, a client that reloads images): counted again, no cache to hide it.
        assert_pixel(await client.get(f"/api/TicketMessages/ot?token={token}"))
        shown = (await client.get(f"/api/TicketMessages/{sent['messageID']}", headers=tenant.headers)).json()
        assert shown["isOpened"] is True and shown["openCount"] == 2 and shown["lastOpenDate"]
        listed = await client.get(f"/api/TicketMessages?ticketId={sent['ticketID']}", headers=tenant.headers)
        assert listed.json()["items"][0]["openCount"] == 2

    async def test_wrong_missing_and_malformed_tokens_get_the_same_gif_and_change_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        sent = await outgoing(client, tenant)
        token = await _token(app, tenant, sent["messageID"])
        for query in (
            "",
            "?token=",
            "?token=" + "A" * 32,
            "?token=" + token[:-1] + ("A" if token[-1] != "A" else "B"),
            "?token=" + token.swapcase(),
            "?token=%00%ff<script>",
            "?token=" + "x" * 5000,
        ):
            assert_pixel(await client.get("/api/TicketMessages/ot" + query))
        row = await _state(app, tenant, sent["messageID"])
        assert not row.is_opened and row.open_count == 0 and row.last_open_date is None

    async def test_head_answers_the_gif_headers_and_counts_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        sent = await outgoing(client, tenant)
        token = await _token(app, tenant, sent["messageID"])
        head = await client.head(f"/api/TicketMessages/ot?token={token}")
        assert_pixel(head, body=False)
        assert head.content == b""
        row = await _state(app, tenant, sent["messageID"])
        assert not row.is_opened and row.open_count == 0

    async def test_parameters_a_mail_client_appends_are_ignored(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        sent = await outgoing(client, tenant)
        token = await _token(app, tenant, sent["messageID"])
        assert_pixel(await client.get(f"/api/TicketMessages/ot?utm_source=mail&TOKEN={token}&x=1"))
        assert (await _state(app, tenant, sent["messageID"])).open_count == 1

    async def test_an_open_touches_only_that_message(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        mine = await outgoing(client, tenant)
        theirs = await create_message(client, other_tenant.headers, incoming=False, toAddress="bob@y.example")
        token = await _token(app, other_tenant, theirs["messageID"])
        assert_pixel(await client.get(f"/api/TicketMessages/ot?token={token}"))
        assert (await _state(app, other_tenant, theirs["messageID"])).open_count == 1
        assert (await _state(app, tenant, mine["messageID"])).open_count == 0

    async def test_opens_at_once_are_each_counted(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        sent = await outgoing(client, tenant)
        token = await _token(app, tenant, sent["messageID"])
        answers = await asyncio.gather(
            *(client.get(f"/api/TicketMessages/ot?token={token}") for _ in range(8))
        )
        for answer in answers:
            assert_pixel(answer)
        row = await _state(app, tenant, sent["messageID"])
        assert row.open_count == 8
        assert row.last_open_date is not None and row.last_open_date > utcnow() - timedelta(minutes=1)

    async def test_ot_is_never_read_as_a_message_id(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        # With credentials too: the route is the pixel, not GET /api/TicketMessages/{id}.
        assert_pixel(await client.get("/api/TicketMessages/ot", headers=tenant.headers))
        assert_pixel(await client.get("/api/ticketmessages/OT"))
