"""Closed is one state: status, isClosed and closeDate agree after every write path, whichever of
the three it writes (docs/tickets.md, "Closed is one state")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import invalid, problem
from tests.messages.helpers import session_headers, stored_ticket
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

CLOSE_DATE = "2024-05-01T10:00:00Z"
WRITE_FIELDS = (
    "status", "subject", "channelType", "customerRepID", "channelID", "uid", "escalated", "isSpam",
    "isImportant", "isClosed", "isProcessed", "isRead", "closeDate", "endDate", "followUpDate",
    "lastMessageDate", "preview", "summary", "twilio_CallSid", "fromNumber", "toNumber", "customFieldsData",
)  # fmt: skip
PATCH = {"Content-Type": "application/json-patch+json"}

# Writing one of the three fields: the value that closes the ticket and the one that opens it.
CLOSING = {"status": "Closed", "isClosed": True, "closeDate": CLOSE_DATE}
OPENING = {"status": "Pending", "isClosed": False, "closeDate": None}


def assert_one_state(ticket: dict[str, Any]) -> None:
    closed = ticket["isClosed"]
    assert (ticket["status"] == "Closed") is closed, ticket
    assert (ticket["closeDate"] is not None) is closed, ticket


async def _get(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _put(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int, field: str, value: Any) -> None:
    # As a client that read the ticket, changed one field and sent the document back.
    read = await _get(client, tenant, ticket_id)
    body = {name: read[name] for name in WRITE_FIELDS}
    response = await client.put(
        f"/api/Tickets/{ticket_id}", json={**body, field: value}, headers=tenant.headers
    )
    assert response.status_code == 204, response.text


async def _patch(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int, field: str, value: Any) -> None:
    ops = [{"op": "replace", "path": f"/{field}", "value": value}]
    response = await client.patch(
        f"/api/Tickets/{ticket_id}", content=json.dumps(ops), headers={**tenant.headers, **PATCH}
    )
    assert response.status_code == 200, response.text
    assert_one_state(response.json())


async def _patch_remove(
    client: httpx.AsyncClient, tenant: Tenant, ticket_id: int, field: str, value: Any
) -> None:
    # "remove" sets the field to its default (false, null): the opening values, status aside.
    op = {"op": "remove", "path": f"/{field}"} if field != "status" else {"op": "replace", "path": "/status"}
    ops = [{**op, "value": value}] if field == "status" else [op]
    response = await client.patch(
        f"/api/Tickets/{ticket_id}", content=json.dumps(ops), headers={**tenant.headers, **PATCH}
    )
    assert response.status_code == 200, response.text


Writer = Callable[[httpx.AsyncClient, Tenant, int, str, Any], Awaitable[None]]
CLOSERS: dict[str, Writer] = {"put": _put, "patch": _patch}
OPENERS: dict[str, Writer] = {**CLOSERS, "patch-remove": _patch_remove}


class TestEveryWritePathKeepsOneState:
    @pytest.mark.parametrize("path", CLOSERS)
    @pytest.mark.parametrize("field", CLOSING)
    async def test_writing_one_field_closes_the_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant, path: str, field: str
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Pending")
        await CLOSERS[path](client, tenant, ticket["ticketID"], field, CLOSING[field])
        got = await _get(client, tenant, ticket["ticketID"])
        assert got["isClosed"] is True and got["status"] == "Closed"
        assert_one_state(got)
        if field == "closeDate":
            assert got["closeDate"] == CLOSE_DATE  # the date written is the closing's

    @pytest.mark.parametrize("path", OPENERS)
    @pytest.mark.parametrize("field", OPENING)
    async def test_writing_one_field_reopens_the_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant, path: str, field: str
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Closed", closeDate=CLOSE_DATE)
        await OPENERS[path](client, tenant, ticket["ticketID"], field, OPENING[field])
        got = await _get(client, tenant, ticket["ticketID"])
        assert got["isClosed"] is False and got["closeDate"] is None
        # A status written stays; otherwise a reopened ticket is Open.
        assert got["status"] == ("Pending" if field == "status" else "Open")

    @pytest.mark.parametrize(
        ("body", "close_date"),
        [
            ({"status": "Closed"}, None),
            ({"status": "closed"}, None),
            ({"status": "Closed", "isClosed": True}, None),
            ({"status": "Closed", "closeDate": CLOSE_DATE}, CLOSE_DATE),
            ({"status": "Closed", "isClosed": False, "closeDate": None}, None),  # false and null: unset
        ],
    )
    async def test_post_creates_a_closed_ticket_from_any_of_them(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], close_date: Any
    ) -> None:
        before = datetime.now(UTC)
        created = await create_ticket(client, tenant.headers, **body)
        assert created["status"] == "Closed" and created["isClosed"] is True
        assert_one_state(created)
        stored = await stored_ticket(app, tenant, created["ticketID"])
        assert stored.is_closed and stored.status == "Closed" and stored.close_date is not None
        if close_date is not None:
            assert created["closeDate"] == close_date
        else:
            assert stored.close_date >= before.replace(microsecond=0)

    async def test_a_closed_ticket_keeps_its_close_date_through_unrelated_writes(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Closed", closeDate=CLOSE_DATE)
        await _put(client, tenant, ticket["ticketID"], "subject", "renamed")
        await _patch(client, tenant, ticket["ticketID"], "isImportant", True)
        minimal = {"status": "Closed", "subject": "s", "channelType": "Email"}  # isClosed, closeDate left out
        response = await client.put(
            f"/api/Tickets/{ticket['ticketID']}", json=minimal, headers=tenant.headers
        )
        assert response.status_code == 204, response.text
        got = await _get(client, tenant, ticket["ticketID"])
        assert got["isClosed"] is True and got["closeDate"] == CLOSE_DATE

    async def test_put_of_status_alone_reopens_and_closes(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Closed")
        for status, closed in (("Open", False), ("Closed", True), ("Waiting", False)):
            body = {"status": status, "subject": "s", "channelType": "Email"}
            response = await client.put(
                f"/api/Tickets/{ticket['ticketID']}", json=body, headers=tenant.headers
            )
            assert response.status_code == 204, response.text
            got = await _get(client, tenant, ticket["ticketID"])
            assert got["isClosed"] is closed and got["status"] == status
            assert_one_state(got)


class TestDisagreementsAreRefused:
    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({"status": "Open", "isClosed": True}, ("status", "isClosed")),
            ({"status": "Closed", "isClosed": True, "closeDate": None}, ()),  # agrees: null is unset here
            ({"status": "Closed", "isClosed": False}, ()),  # false is the default of a new ticket
            ({"status": "Pending", "closeDate": CLOSE_DATE}, ("status", "closeDate")),
        ],
    )
    async def test_post(
        self, client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], fields: tuple[str, ...]
    ) -> None:
        full = {"subject": "s", "channelType": "Email", **body}
        response = await client.post("/api/Tickets", json=full, headers=tenant.headers)
        if not fields:
            assert response.status_code == 201, response.text
            assert_one_state(response.json())
            return
        invalid(response, *fields)
        assert (await client.get("/api/Tickets", headers=tenant.headers)).json()["totalCount"] == 0

    @pytest.mark.parametrize(
        ("ops", "fields"),
        [
            ([("status", "Open"), ("isClosed", True)], ("status", "isClosed")),
            ([("status", "Open"), ("closeDate", CLOSE_DATE)], ("status", "closeDate")),
            ([("status", "Waiting"), ("isClosed", True), ("closeDate", CLOSE_DATE)], ("status", "isClosed")),
            # What equals the stored value is no write (a client sending back what it read): agrees.
            ([("status", "Closed"), ("isClosed", False)], ()),
            ([("isClosed", True), ("closeDate", None)], ()),
            ([("isClosed", False), ("closeDate", CLOSE_DATE)], ()),
        ],
    )
    async def test_patch_and_put(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        ops: list[tuple[str, Any]],
        fields: tuple[str, ...],
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Pending")
        tid = ticket["ticketID"]
        patch = [{"op": "replace", "path": f"/{f}", "value": v} for f, v in ops]
        patched = await client.patch(
            f"/api/Tickets/{tid}", content=json.dumps(patch), headers={**tenant.headers, **PATCH}
        )
        read = {name: ticket[name] for name in WRITE_FIELDS}
        put = await client.put(f"/api/Tickets/{tid}", json={**read, **dict(ops)}, headers=tenant.headers)
        if not fields:
            assert patched.status_code == 200, patched.text
            assert put.status_code == 204, put.text
            assert_one_state(await _get(client, tenant, tid))
            return
        for response in (patched, put):
            body = invalid(response, *fields)
            assert "disagree" in body["detail"]
        stored = await stored_ticket(app, tenant, tid)
        assert (stored.status, stored.is_closed, stored.close_date) == ("Pending", False, None)

    async def test_blank_status_is_refused(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        response = await client.post(
            "/api/Tickets",
            json={"status": "  ", "subject": "s", "channelType": "Email"},
            headers=tenant.headers,
        )
        invalid(response, "status")


class TestOtherWriters:
    @pytest.mark.parametrize(
        ("action", "start", "closed"),
        [
            ("close", {"status": "Pending"}, True),
            ("open", {"status": "Closed"}, False),
            ("invertstate", {"status": "Pending"}, True),
            ("invertstate", {"status": "Closed"}, False),
        ],
    )
    async def test_bulk_state_actions(
        self, client: httpx.AsyncClient, tenant: Tenant, action: str, start: dict[str, Any], closed: bool
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, **start)
        body = {"ticketIDs": [ticket["ticketID"]], "action": action}
        assert (await client.put("/api/Tickets/bulk", json=body, headers=tenant.headers)).status_code == 204
        got = await _get(client, tenant, ticket["ticketID"])
        assert got["isClosed"] is closed
        assert_one_state(got)

    async def test_an_incoming_message_reopens_all_three(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, status="Closed", closeDate=CLOSE_DATE)
        body = {"ticketID": ticket["ticketID"], "incoming": True, "message": "still broken"}
        response = await client.post("/api/TicketMessages/create-new", json=body, headers=tenant.headers)
        assert response.status_code == 201, response.text
        got = await _get(client, tenant, ticket["ticketID"])
        assert (got["status"], got["isClosed"], got["closeDate"]) == ("Open", False, None)

    async def test_helpdesk_ticket_update_keeps_one_state(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        ticket = await create_ticket(client, tenant.headers)
        tid = str(ticket["ticketID"])
        note = {"ticket_id": tid, "type": "note", "content": "x"}
        ok = await client.post(
            "/helpdesk/api/messages", json={**note, "ticket_update": {"status": "Waiting"}}, headers=jwt
        )
        assert ok.status_code == 201, ok.text
        got = await _get(client, tenant, ticket["ticketID"])
        assert (got["status"], got["isClosed"], got["closeDate"]) == ("Waiting", False, None)
        blank = await client.post(
            "/helpdesk/api/messages", json={**note, "ticket_update": {"status": "   "}}, headers=jwt
        )
        invalid(blank, "ticket_update.status")
        assert (await _get(client, tenant, ticket["ticketID"]))["status"] == "Waiting"

    async def test_a_ticket_created_closed_takes_no_helpdesk_messages(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # The path: status Closed alone used to store isClosed false, and messages went in.
        jwt = await session_headers(app, tenant)
        ticket = await create_ticket(client, tenant.headers, status="Closed")
        body = {"ticket_id": str(ticket["ticketID"]), "type": "response", "content": "x"}
        problem(await client.post("/helpdesk/api/messages", json=body, headers=jwt), 403, "TICKET_CLOSED")
