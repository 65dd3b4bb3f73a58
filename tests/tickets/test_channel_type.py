"""A ticket's channelType is its channel's type, and a message's channel its channel's, on every
path that writes them (docs/tickets.md, "A ticket's channel type")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import invalid
from tests.messages.helpers import phone, stored_message, stored_ticket
from tests.support import Tenant
from tests.tickets.helpers import create_channel, create_ticket

PATCH = {"Content-Type": "application/json-patch+json"}
KINDS = ("Email", "Chat", "Phone", "WhatsApp", "Teams")


def refused(response: httpx.Response, field: str, channel_id: int, kind: str, named: str) -> None:
    body = invalid(response, field)
    [error] = [e for e in body["errors"] if e["field"] == field]
    article = "an" if kind[0] in "AEIOU" else "a"
    assert error["message"] == f"channel {channel_id} is {article} {kind} channel, not {named}", error


async def _patch(
    client: httpx.AsyncClient, headers: dict[str, str], ticket_id: int, **values: Any
) -> httpx.Response:
    ops = [{"op": "replace", "path": f"/{k}", "value": v} for k, v in values.items()]
    return await client.patch(
        f"/api/Tickets/{ticket_id}", content=json.dumps(ops), headers={**headers, **PATCH}
    )


async def _put(
    client: httpx.AsyncClient, tenant: Tenant, ticket: dict[str, Any], **values: Any
) -> httpx.Response:
    # As a client that read the ticket and sends it back with changes.
    keep = ("status", "subject", "channelType", "channelID", "customerRepID", "uid", "isClosed", "closeDate")
    body = {**{k: ticket[k] for k in keep}, **values}
    return await client.put(f"/api/Tickets/{ticket['ticketID']}", json=body, headers=tenant.headers)


@pytest.fixture
async def channels(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, int]:
    return {kind: (await create_channel(client, tenant, kind))["channelID"] for kind in KINDS}


class TestTicketWrites:
    @pytest.mark.parametrize("kind", KINDS)
    async def test_post_takes_the_channels_type_and_refuses_another(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channels: dict[str, int], kind: str
    ) -> None:
        other = "Teams" if kind != "Teams" else "Email"
        body = {"status": "Open", "subject": "s", "channelID": channels[kind], "channelType": other}
        response = await client.post("/api/Tickets", json=body, headers=tenant.headers)
        refused(response, "channelType", channels[kind], kind, other)
        # The same type in another case is the channel's, spelled as the channel spells it.
        created = await create_ticket(
            client, tenant.headers, channelID=channels[kind], channelType=kind.lower()
        )
        assert created["channelType"] == kind
        assert (await stored_ticket(app, tenant, created["ticketID"])).channel_type == kind

    async def test_changing_the_channel_changes_the_type(
        self, client: httpx.AsyncClient, tenant: Tenant, channels: dict[str, int]
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, channelID=channels["Email"])
        # PATCH of channelID alone: the case, then listed and recorded as a Phone ticket.
        patched = await _patch(client, tenant.headers, ticket["ticketID"], channelID=channels["Phone"])
        assert patched.status_code == 200, patched.text
        assert patched.json()["channelType"] == "Phone"
        listed = await client.get("/api/Tickets?channelType=Phone", headers=tenant.headers)
        assert [t["ticketID"] for t in listed.json()["items"]] == [ticket["ticketID"]]
        recording = await client.put(
            f"/api/Tickets/{ticket['ticketID']}/recording",
            content=b"RIFF" * 64,
            headers={**tenant.headers, "Content-Type": "audio/wav"},
        )
        assert recording.status_code == 200, recording.text
        # PUT of the document read back, with a new channelID and the old channelType.
        put = await _put(client, tenant, patched.json(), channelID=channels["Chat"])
        assert put.status_code == 204, put.text
        got = (await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)).json()
        assert (got["channelID"], got["channelType"]) == (channels["Chat"], "Chat")
        # Both changed, and agreeing.
        both = await _patch(
            client, tenant.headers, ticket["ticketID"], channelID=channels["Teams"], channelType="Teams"
        )
        assert both.status_code == 200 and both.json()["channelType"] == "Teams"

    async def test_retyping_a_ticket_in_a_channel_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channels: dict[str, int]
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, channelID=channels["Email"])
        tid = ticket["ticketID"]
        refused(
            await _patch(client, tenant.headers, tid, channelType="Chat"),
            "channelType",
            channels["Email"],
            "Email",
            "Chat",
        )
        refused(
            await _put(client, tenant, ticket, channelType="Chat"),
            "channelType",
            channels["Email"],
            "Email",
            "Chat",
        )
        moved = await _patch(client, tenant.headers, tid, channelID=channels["Phone"], channelType="Chat")
        refused(moved, "channelType", channels["Phone"], "Phone", "Chat")
        stored = await stored_ticket(app, tenant, tid)
        assert (stored.channel_id, stored.channel_type) == (channels["Email"], "Email")

    async def test_a_ticket_without_a_channel_keeps_the_type_it_is_given(
        self, client: httpx.AsyncClient, tenant: Tenant, channels: dict[str, int]
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, channelType="Chat")
        patched = await _patch(client, tenant.headers, ticket["ticketID"], channelType="Phone")
        assert patched.status_code == 200 and patched.json()["channelType"] == "Phone"
        unlinked = await create_ticket(client, tenant.headers, channelID=channels["Chat"], channelType="Chat")
        patched = await _patch(
            client, tenant.headers, unlinked["ticketID"], channelID=None, channelType="Email"
        )
        assert patched.status_code == 200 and patched.json()["channelType"] == "Email"


class TestPhoneToken:
    async def test_phone_auth_creates_and_keeps_phone_tickets(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id, phone_auth = await phone(client, tenant)
        body = {"status": "Open", "subject": "a call", "channelType": "Email"}
        refused(
            await client.post("/api/Tickets", json=body, headers=phone_auth),
            "channelType",
            channel_id,
            "Phone",
            "Email",
        )
        ticket = await create_ticket(client, phone_auth, channelType="Phone")
        assert (ticket["channelID"], ticket["channelType"]) == (channel_id, "Phone")
        retyped = await _patch(client, phone_auth, ticket["ticketID"], channelType="Email")
        refused(retyped, "channelType", channel_id, "Phone", "Email")

    @pytest.mark.parametrize("ticket_named", [False, True])
    async def test_phone_auth_messages_are_phone_messages(
        self, client: httpx.AsyncClient, tenant: Tenant, ticket_named: bool
    ) -> None:
        channel_id, phone_auth = await phone(client, tenant)
        extra = {}
        if ticket_named:
            extra = {"ticketID": (await create_ticket(client, phone_auth, channelType="Phone"))["ticketID"]}
        body = {"channel": "Email", "message": "x", **extra}
        r = await client.post("/api/TicketMessages/create-new", json=body, headers=phone_auth)
        # Readable: the channel is named although the request named none (no "channel None").
        refused(r, "channel", channel_id, "Phone", "Email")


class TestMessageWrites:
    @pytest.mark.parametrize("path", ["/create-new", ""])
    async def test_a_message_in_a_ticket_takes_the_tickets_channel_type(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channels: dict[str, int], path: str
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, channelID=channels["Email"])
        body = {"ticketID": ticket["ticketID"], "message": "hi"}
        r = await client.post(
            f"/api/TicketMessages{path}", json={**body, "channel": "Chat"}, headers=tenant.headers
        )
        refused(r, "channel", channels["Email"], "Email", "Chat")
        ok = await client.post(f"/api/TicketMessages{path}", json=body, headers=tenant.headers)
        assert ok.status_code == 201, ok.text
        assert (ok.json()["channel"], ok.json()["channelID"]) == ("Email", channels["Email"])
        # A message that names another channel of the customer is in that one, with its type.
        named = await client.post(
            f"/api/TicketMessages{path}",
            json={**body, "channelID": channels["WhatsApp"]},
            headers=tenant.headers,
        )
        assert named.status_code == 201, named.text
        stored = await stored_message(app, tenant, named.json()["messageID"])
        assert stored is not None and (stored.channel_id, stored.channel_type) == (
            channels["WhatsApp"],
            "WhatsApp",
        )
        mismatch = {**body, "channelID": channels["WhatsApp"], "channel": "Teams"}
        r = await client.post(f"/api/TicketMessages{path}", json=mismatch, headers=tenant.headers)
        refused(r, "channel", channels["WhatsApp"], "WhatsApp", "Teams")

    async def test_a_new_ticket_from_create_new_has_its_channels_type(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channels: dict[str, int]
    ) -> None:
        body = {"message": "hello", "channelID": channels["Chat"]}
        r = await client.post(
            "/api/TicketMessages/create-new", json={**body, "channel": "Email"}, headers=tenant.headers
        )
        refused(r, "channel", channels["Chat"], "Chat", "Email")
        ok = await client.post("/api/TicketMessages/create-new", json=body, headers=tenant.headers)
        assert ok.status_code == 201, ok.text
        ticket = await stored_ticket(app, tenant, ok.json()["ticketID"])
        assert (ticket.channel_id, ticket.channel_type) == (channels["Chat"], "Chat")
        assert ok.json()["channel"] == "Chat"
