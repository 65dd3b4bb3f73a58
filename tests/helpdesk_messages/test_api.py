"""/helpdesk/api/messages: the second helpdesk's Messages API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.context import Role
from tests.admin.helpers import invalid, problem
from tests.messages.helpers import create_message, phone, session_headers, stored_message, stored_ticket
from tests.messages.test_html import assert_inert
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

# Responses are sent (send_email defaults to true): the tenant has an Email channel that can.
pytestmark = pytest.mark.usefixtures("mail_channel")

URL = "/helpdesk/api/messages"
MESSAGE_FIELDS = {
    "id", "ticketId", "type", "content", "textContent", "authorId", "authorName", "attachments", "ccs",
    "createdAt", "updatedAt",
}  # fmt: skip


async def _post(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await client.post(URL, json={"type": "response", "content": "<p>Hi</p>", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


class TestCreate:
    async def test_response_records_a_pending_send_and_uses_the_reference_names(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        ticket = await create_ticket(client, tenant.headers, uid="ann@example.com")
        body = await _post(
            client,
            jwt,
            ticket_id=str(ticket["ticketID"]),
            content='<p onclick="x()">Hello <b>Ann</b></p><script>alert(1)</script>',
            ccs=[{"email": "Boss@Example.com", "name": "The Boss"}],
        )
        assert set(body) == MESSAGE_FIELDS
        assert body["id"].isdigit() and body["ticketId"] == str(ticket["ticketID"])
        assert body["type"] == "response" and body["authorId"] == str(tenant.admin_rep_id)
        assert body["content"] == "<p>Hello <b>Ann</b></p>"
        assert body["textContent"] == "Hello Ann"
        assert body["ccs"] == [{"email": "boss@example.com", "name": "The Boss"}]
        assert body["createdAt"] == body["updatedAt"]
        stored = await stored_message(app, tenant, int(body["id"]))
        assert stored is not None and stored.send_pending and stored.send_requested_at is not None
        assert stored.to_address == "ann@example.com" and stored.incoming is False
        assert stored.sent_at is None

    async def test_types_map_onto_messages(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        note = await _post(client, jwt, ticket_id=tid, type="note", content="internal", send_email=True)
        request = await _post(client, jwt, ticket_id=tid, type="request", content="<p>from the customer</p>")
        quiet = await _post(client, jwt, ticket_id=tid, send_email=False)
        for body, internal, incoming in ((note, True, False), (request, False, True), (quiet, False, False)):
            stored = await stored_message(app, tenant, int(body["id"]))
            assert stored is not None
            assert (stored.is_internal_note, stored.incoming, stored.send_pending) == (
                internal,
                incoming,
                False,
            )
        detail = await client.get(f"/api/TicketMessages/{note['id']}", headers=tenant.headers)
        assert detail.json()["isInternalNote"] is True
        ticket = await stored_ticket(app, tenant, int(tid))
        assert ticket.last_end_user_message_id == int(request["id"])

    async def test_ticket_update_applies_in_the_same_transaction(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        tid = (await create_ticket(client, tenant.headers, uid="ann@x.example"))["ticketID"]
        update = {"status": "Pending", "priority": "urgent", "type": "incident"}
        await _post(client, jwt, ticket_id=str(tid), ticket_update=update)
        ticket = await stored_ticket(app, tenant, tid)
        assert (ticket.status, ticket.priority, ticket.ticket_type) == ("Pending", "urgent", "incident")
        # A refused update leaves neither the message nor the ticket changed.
        r = await client.post(
            URL,
            json={
                "ticket_id": str(tid),
                "type": "note",
                "content": "x",
                "ticket_update": {"priority": "asap"},
            },
            headers=jwt,
        )
        invalid(r, "ticket_update.priority")
        listed = await client.get(f"{URL}?ticket_id={tid}", headers=jwt)
        assert listed.json()["total"] == 1

    async def test_closed_tickets_and_the_closed_status(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        open_ = (await create_ticket(client, tenant.headers))["ticketID"]
        closed = (await create_ticket(client, tenant.headers, isClosed=True, status="Closed"))["ticketID"]
        body = {"type": "response", "content": "x"}
        r = await client.post(URL, json={**body, "ticket_id": str(closed)}, headers=jwt)
        problem(r, 403, "TICKET_CLOSED")
        for status in ("Closed", "closed"):
            r = await client.post(
                URL, json={**body, "ticket_id": str(open_), "ticket_update": {"status": status}}, headers=jwt
            )
            problem(r, 403, "CLOSED_STATUS_SYSTEM_ONLY")
        assert (await stored_ticket(app, tenant, open_)).is_closed is False
        assert (await client.get(f"{URL}?ticket_id={open_}", headers=jwt)).json()["total"] == 0

    async def test_forwards_need_recipients(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        r = await client.post(
            URL, json={"ticket_id": tid, "type": "response", "content": "x", "is_forward": True}, headers=jwt
        )
        invalid(r, "recipients")
        fwd = await _post(
            client, jwt, ticket_id=tid, is_forward=True, recipients=[{"email": "it@example.com"}]
        )
        stored = await stored_message(app, tenant, int(fwd["id"]))
        assert stored is not None and stored.is_forward and stored.to_address == "it@example.com"

    async def test_attachment_tokens_must_exist(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        msg = await create_message(client, tenant.headers, fromAddress="ann@x.example")
        r = await client.post(
            f"/api/TicketMessages/{msg['messageID']}/attachments",
            files={"file": ("a.txt", b"hello", "text/plain")},
            headers=tenant.headers,
        )
        assert r.status_code == 201, r.text
        token = r.json()["accessToken"]
        ref = {"token": token, "name": "a.txt", "size": 5}
        body = await _post(client, jwt, ticket_id=str(msg["ticketID"]), attachments=[ref])
        assert body["attachments"] == [ref]
        r = await client.post(
            URL,
            json={
                "ticket_id": str(msg["ticketID"]),
                "type": "note",
                "content": "x",
                "attachments": [{**ref, "token": "nope"}],
            },
            headers=jwt,
        )
        invalid(r, "attachments.0.token")

    async def test_validation_names_the_fields(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        invalid(await client.post(URL, json={"type": "note", "content": "x"}, headers=jwt), "ticket_id")
        invalid(
            await client.post(URL, json={"ticket_id": tid, "type": "memo", "content": "x"}, headers=jwt),
            "type",
        )
        invalid(await client.post(URL, json={"ticket_id": tid, "type": "note"}, headers=jwt), "content")
        invalid(
            await client.post(
                URL,
                json={"ticket_id": tid, "type": "note", "content": "x", "ccs": [{"email": "nope"}]},
                headers=jwt,
            ),
            "ccs.0.email",
        )
        problem(
            await client.post(
                URL, json={"ticket_id": "tkt_abc123", "type": "note", "content": "x"}, headers=jwt
            ),
            404,
        )

    async def test_xss_in_content_comes_back_inert(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        from tests.messages.test_html import XSS_VECTORS

        jwt = await session_headers(app, tenant)
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        body = await _post(
            client, jwt, ticket_id=tid, type="note", content="<p>ok</p>" + "".join(XSS_VECTORS)
        )
        assert_inert(body["content"])
        got = await client.get(f"{URL}/{body['id']}", headers=jwt)
        assert_inert(got.json()["content"])


class TestRead:
    async def test_list_pages_and_sorts(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        ids = [
            (await _post(client, jwt, ticket_id=tid, type="note", content=f"n{i}"))["id"] for i in range(3)
        ]
        # drafts of the other API are not part of this conversation
        await create_message(client, tenant.headers, ticketID=int(tid), isDraft=True, incoming=False)
        body = (await client.get(f"{URL}?ticket_id={tid}", headers=jwt)).json()
        assert set(body) == {"data", "page", "limit", "total", "totalPages"}
        assert [m["id"] for m in body["data"]] == ids and body["limit"] == 50 and body["total"] == 3
        page = (await client.get(f"{URL}?ticket_id={tid}&page=2&limit=2&sort_order=desc", headers=jwt)).json()
        assert [m["id"] for m in page["data"]] == ids[:1] and page["totalPages"] == 2
        got = await client.get(f"{URL}/{ids[0]}", headers=jwt)
        assert got.status_code == 200 and got.json()["textContent"] == "n0"
        assert got.json()["content"] == "n0"

    async def test_plain_text_messages_get_escaped_html_content(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        jwt = await session_headers(app, tenant)
        msg = await create_message(client, tenant.headers, message="a < b\nsecond line")
        got = (await client.get(f"{URL}/{msg['messageID']}", headers=jwt)).json()
        assert got["content"] == "a &lt; b<br>second line" and got["type"] == "request"
        assert got["authorId"] is None  # a request is its end user's: this ticket has none

    async def test_query_validation(self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
        jwt = await session_headers(app, tenant)
        invalid(await client.get(URL, headers=jwt), "ticket_id")
        for bad, field in (
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("page=0", "page"),
            ("sort_order=up", "sort_order"),
        ):
            invalid(await client.get(f"{URL}?ticket_id=1&{bad}", headers=jwt), field)
        problem(await client.get(f"{URL}?ticket_id=999999", headers=jwt), 404)
        problem(await client.get(f"{URL}/not-a-number", headers=jwt), 404)
        problem(await client.get(f"{URL}/999999", headers=jwt), 404)


class TestAccess:
    async def test_api_keys_phone_tokens_and_bad_tokens_are_refused(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        _, phone_headers = await phone(client, tenant)
        for headers in (tenant.headers, await tenant.headers_for(Role.VIEWER), phone_headers):
            problem(
                await client.get(f"{URL}?ticket_id={tid}", headers=headers), 401, "SESSION_TOKEN_REQUIRED"
            )
            r = await client.post(
                URL, json={"ticket_id": tid, "type": "note", "content": "x"}, headers=headers
            )
            problem(r, 401, "SESSION_TOKEN_REQUIRED")
        problem(await client.get(f"{URL}?ticket_id={tid}"), 401)
        problem(await client.get(f"{URL}?ticket_id={tid}", headers={"Authorization": "Bearer forged"}), 401)

    async def test_login_token_from_the_login_endpoint_works(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        login = await client.post(
            "/api/Auth/login", json={"email": tenant.admin_email, "password": tenant.admin_password}
        )
        jwt = {"Authorization": f"Bearer {login.json()['token']}"}
        tid = str((await create_ticket(client, tenant.headers))["ticketID"])
        assert (await client.get(f"{URL}?ticket_id={tid}", headers=jwt)).status_code == 200

    async def test_roles(self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
        viewer, agent, restricted = [
            await session_headers(app, tenant, r) for r in (Role.VIEWER, Role.AGENT, Role.RESTRICTED)
        ]
        unassigned = str((await create_ticket(client, tenant.headers))["ticketID"])
        admins = str(
            (await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id))["ticketID"]
        )
        note = {"type": "note", "content": "x"}
        # viewer reads, cannot create
        assert (await client.get(f"{URL}?ticket_id={admins}", headers=viewer)).status_code == 200
        problem(await client.post(URL, json={**note, "ticket_id": unassigned}, headers=viewer), 403)
        # agent creates on unassigned tickets, does not see others' tickets
        await _post(client, agent, ticket_id=unassigned, **note)
        problem(await client.get(f"{URL}?ticket_id={admins}", headers=agent), 404)
        problem(await client.post(URL, json={**note, "ticket_id": admins}, headers=agent), 404)
        # restricted reps only reach tickets assigned to them
        problem(await client.post(URL, json={**note, "ticket_id": unassigned}, headers=restricted), 404)
