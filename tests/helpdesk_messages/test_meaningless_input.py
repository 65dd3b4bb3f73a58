"""Input that could never mean anything is refused, on both message APIs (issue 10, item 10)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import invalid, problem
from tests.messages.helpers import create_message, session_headers
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

# Responses are sent (send_email defaults to true): the tenant has an Email channel that can.
pytestmark = pytest.mark.usefixtures("mail_channel")

URL = "/helpdesk/api/messages"


async def _count(client: httpx.AsyncClient, login: dict[str, str], ticket_id: int) -> int:
    response = await client.get(f"{URL}?ticket_id={ticket_id}", headers=login)
    return int(response.json()["total"])


async def test_a_response_nobody_can_receive_is_refused_unless_it_is_not_sent(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    login = await session_headers(app, tenant)
    ticket = await create_ticket(client, tenant.headers)  # no end user, no address
    body = {"ticket_id": str(ticket["ticketID"]), "type": "response", "content": "<p>Hello</p>"}
    for extra in ({}, {"send_email": True}):
        problem(await client.post(URL, json={**body, **extra}, headers=login), 422, "NO_RECIPIENT")
    assert await _count(client, login, ticket["ticketID"]) == 0
    # Not sent, or sent to named recipients: both mean something.
    assert (await client.post(URL, json={**body, "send_email": False}, headers=login)).status_code == 201
    named = {**body, "recipients": [{"email": "jane@x.example"}], "is_forward": True}
    assert (await client.post(URL, json=named, headers=login)).status_code == 201
    # A ticket whose end user has an address needs nothing more.
    mailed = await create_message(client, tenant.headers, fromAddress="ann@x.example")
    reply = {**body, "ticket_id": str(mailed["ticketID"])}
    assert (await client.post(URL, json=reply, headers=login)).status_code == 201


async def test_content_that_sanitises_to_nothing_is_a_400(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    login = await session_headers(app, tenant)
    ticket = await create_ticket(client, tenant.headers)
    base = {"ticket_id": str(ticket["ticketID"]), "type": "note"}
    for content in ("<script>alert(1)</script>", "<style>p{}</style>", "<p>   </p>", "   ", "<!-- x -->"):
        invalid(await client.post(URL, json={**base, "content": content}, headers=login), "content")
    assert await _count(client, login, ticket["ticketID"]) == 0
    # An image alone shows something.
    image = '<p><img src="https://x.example/a.png" alt=""></p>'
    assert (await client.post(URL, json={**base, "content": image}, headers=login)).status_code == 201
    # The other API: an HTML body with nothing left and no text is refused the same way.
    response = await client.post(
        "/api/TicketMessages/create-new",
        json={"channel": "Email", "htmlBody": "<script>alert(1)</script>", "ticketID": ticket["ticketID"]},
        headers=tenant.headers,
    )
    invalid(response, "htmlBody")


async def test_a_blank_status_in_ticket_update_is_a_400(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    login = await session_headers(app, tenant)
    ticket = await create_ticket(client, tenant.headers, status="Open")
    body = {"ticket_id": str(ticket["ticketID"]), "type": "note", "content": "<p>x</p>"}
    for status in ("   ", "", "\t"):
        response = await client.post(URL, json={**body, "ticket_update": {"status": status}}, headers=login)
        invalid(response, "ticket_update.status")
    ok = await client.post(URL, json={**body, "ticket_update": {"status": "  Pending  "}}, headers=login)
    assert ok.status_code == 201, ok.text
    shown = (await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)).json()
    assert shown["status"] == "Pending"


async def test_a_request_s_author_is_its_end_user_whoever_typed_it_in(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    login = await session_headers(app, tenant)
    # Written with an API key (the rep's), from Ann: Ann is the author, on every read.
    made = await create_message(client, tenant.headers, fromAddress="Ann Example <ann@x.example>")
    ticket = (await client.get(f"/api/Tickets/{made['ticketID']}", headers=tenant.headers)).json()
    [ann] = ticket["endUsers"]
    reply = await client.post(
        URL,
        json={"ticket_id": str(made["ticketID"]), "type": "response", "content": "<p>Hi Ann</p>"},
        headers=login,
    )
    assert reply.status_code == 201, reply.text
    one = (await client.get(f"{URL}/{made['messageID']}", headers=login)).json()
    page = (await client.get(f"{URL}?ticket_id={made['ticketID']}", headers=login)).json()["data"]
    assert (one["authorId"], one["authorName"]) == (str(ann["endUserID"]), "Ann Example")
    assert [(m["type"], m["authorId"]) for m in page] == [
        ("request", str(ann["endUserID"])),
        ("response", str(tenant.admin_rep_id)),
    ]
    # A request through this API, by a rep on the customer's behalf, is the end user's too.
    typed = await client.post(
        URL,
        json={"ticket_id": str(made["ticketID"]), "type": "request", "content": "<p>x</p>"},
        headers=login,
    )
    assert typed.status_code == 201 and typed.json()["authorId"] == str(ann["endUserID"])
