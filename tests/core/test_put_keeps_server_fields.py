"""Every PUT route keeps what the server maintains: a client's PUT that names only the fields it
writes (and, for tickets, forged values of server fields) leaves ids, dates, links, derived fields
and credentials as they were (docs/tickets.md, "What PUT replaces"; docs/decisions.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import bearer, login, phone_channel, unique_email
from tests.routes import iter_api_routes
from tests.support import Tenant
from tests.tickets.helpers import create_topic

Json = dict[str, Any]


@dataclass
class Case:
    """One resource in the state the server maintains, a PUT a client could send, and how to read
    the resource back (a dict of what must survive)."""

    url: str
    body: Json | bytes
    read: Callable[[], Awaitable[Json]]
    content_type: str = "application/json"


async def _get(client: httpx.AsyncClient, tenant: Tenant, url: str) -> Json:
    r = await client.get(url, headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _only(body: Json, *names: str) -> Json:
    return {name: body[name] for name in names}


TICKET_SERVER_FIELDS = (
    "ticketID", "token", "dateCreated", "lastMessageDate", "preview", "lastEndUserMessageID", "uid",
    "endUsers", "endUserID", "customerRepID", "customerRepName", "channelID", "channelName", "channelType",
    "topics", "hasRecording", "isRead", "isProcessed", "twilio_CallSid", "fromNumber", "toNumber",
)  # fmt: skip


async def _busy_ticket(client: httpx.AsyncClient, tenant: Tenant) -> tuple[int, str]:
    """A Phone ticket the server has written all over: messages, a uid and its end user, a topic,
    a recording, read, unprocessed; its id and the channel's phone token."""
    channel_id, token = await phone_channel(client, tenant)
    body = {
        "status": "Open", "subject": "a call", "channelType": "Phone", "channelID": channel_id,
        "customerRepID": tenant.admin_rep_id, "twilio_CallSid": "CA1", "fromNumber": "+3211111111",
        "toNumber": "+3222222222", "isProcessed": False,
    }  # fmt: skip
    r = await client.post("/api/Tickets", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    tid = r.json()["ticketID"]
    message = {
        "ticketID": tid,
        "message": "hello",
        "uid": "ann@example.com",
        "messageDate": "2024-03-01T09:00:00Z",
    }
    assert (
        await client.post("/api/TicketMessages/create-new", json=message, headers=tenant.headers)
    ).status_code == 201
    topic = await create_topic(client, tenant, "Billing")
    for bulk in ({"action": "updatetopics", "topicIds": [topic]}, {"action": "read"}):
        r = await client.put("/api/Tickets/bulk", json={"ticketIDs": [tid], **bulk}, headers=tenant.headers)
        assert r.status_code == 204, r.text
    recorded = await client.put(
        f"/api/Tickets/{tid}/recording",
        content=b"ID3" * 100,
        headers={**tenant.headers, "Content-Type": "audio/mpeg"},
    )
    assert recorded.status_code == 200, recorded.text
    return tid, token


async def ticket_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    tid, _ = await _busy_ticket(client, tenant)
    # What a client that knows only the ticket's own fields sends, with server fields forged.
    body = {
        "status": "Open", "subject": "renamed", "channelType": "Phone",
        "lastMessageDate": "2000-01-01T00:00:00Z", "preview": "forged",
    }  # fmt: skip

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/Tickets/{tid}"), *TICKET_SERVER_FIELDS)

    return Case(f"/api/Tickets/{tid}", body, read)


async def ticket_bulk(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    tid, _ = await _busy_ticket(client, tenant)
    fields = tuple(f for f in TICKET_SERVER_FIELDS if f != "isRead")

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/Tickets/{tid}"), *fields)

    return Case("/api/Tickets/bulk", {"ticketIDs": [tid], "action": "spam"}, read)


async def ticket_assign(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    tid, _ = await _busy_ticket(client, tenant)

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/Tickets/{tid}"), *TICKET_SERVER_FIELDS)

    return Case(f"/api/Tickets/{tid}/assign", {}, read)


async def ticket_recording(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    tid, _ = await _busy_ticket(client, tenant)

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/Tickets/{tid}"), *TICKET_SERVER_FIELDS)

    return Case(f"/api/Tickets/{tid}/recording", b"ID3" * 200, read, content_type="audio/mpeg")


MESSAGE_SERVER_FIELDS = (
    "messageID", "ticketID", "dateCreated", "messageDate", "customerID", "senderType", "customerRepID",
    "customerRepName", "channel", "channelID", "channelName", "incoming", "isDraft", "isInternalNote",
    "message", "htmlBody", "textBody", "bodyPreview", "fromAddress", "uid", "sendPending", "sentAt",
    "topics", "customFieldsData", "replyToMessageID", "headers", "messageIdentifier",
)  # fmt: skip


async def message_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    body = {
        "channel": "Email", "htmlBody": "<p>Where is <b>my</b> order?</p>", "fromAddress": "ann@example.com",
        "messageDate": "2024-03-01T09:00:00Z", "headers": "X-A: 1", "messageIdentifier": "<a@b>",
        "customFieldsData": {"vip": True},
    }  # fmt: skip
    r = await client.post("/api/TicketMessages/create-new", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    mid = r.json()["messageID"]
    topic = await create_topic(client, tenant, "Orders")
    link = {"messageID": mid, "topicID": topic}
    assert (
        await client.post("/api/TicketMessageTopics", json=link, headers=tenant.headers)
    ).status_code == 201

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/TicketMessages/{mid}"), *MESSAGE_SERVER_FIELDS)

    return Case(f"/api/TicketMessages/{mid}", {"messageID": mid, "subject": "Order"}, read)


async def message_topic_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    r = await client.post(
        "/api/TicketMessages/create-new", json={"channel": "Chat", "message": "hi"}, headers=tenant.headers
    )
    mid = r.json()["messageID"]
    first, second = await create_topic(client, tenant, "A"), await create_topic(client, tenant, "B")
    corrected = await client.post(
        f"/api/TicketMessages/{mid}/correct-topics", json={"topicIds": [first]}, headers=tenant.headers
    )
    assert corrected.status_code == 204, corrected.text
    [link] = await _get(client, tenant, f"/api/TicketMessageTopics?messageId={mid}")  # type: ignore[misc]
    lid = link["ticketMessageTopicID"]
    fields = (
        "ticketMessageTopicID",
        "corrected",
        "correctionDate",
        "correctedByCustomerRepID",
        "correctedByCustomerRepName",
    )

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/TicketMessageTopics/{lid}"), *fields)

    return Case(f"/api/TicketMessageTopics/{lid}", {"messageID": mid, "topicID": second}, read)


async def channel_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    body = {
        "name": "Hotline",
        "channelType": "Phone",
        "settings": {"twilioAuthToken": "s3cret", "phoneNumber": "+32"},
    }
    r = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    cid, token = r.json()["channelID"], r.json()["phoneAuthToken"]
    fields = ("channelID", "channelType", "token", "hasPhoneAuthToken", "secretsSet", "dateCreated")

    async def read() -> Json:
        # The phone token the server issued still works.
        ticket = {"status": "Open", "subject": "call", "channelType": "Phone"}
        assert (await client.post("/api/Tickets", json=ticket, headers=bearer(token))).status_code == 201
        return _only(await _get(client, tenant, f"/api/Channels/{cid}"), *fields)

    return Case(f"/api/Channels/{cid}", {"name": "Hotline (renamed)"}, read)


async def rep_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    email, password = unique_email(), "s3cret-password"
    body = {"name": "Rita", "email": email, "password": password, "role": "agent"}
    r = await client.post("/api/CustomerReps", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    rid = r.json()["customerRepID"]

    async def read() -> Json:
        logged_in = await login(client, email, password)  # the password is kept
        assert logged_in.status_code == 200, logged_in.text
        return _only(
            await _get(client, tenant, f"/api/CustomerReps/{rid}"), "customerRepID", "dateCreated", "isActive"
        )

    return Case(f"/api/CustomerReps/{rid}", {"name": "Rita R.", "email": email, "role": "agent"}, read)


async def end_user_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    r = await client.post(
        "/api/Tickets",
        json={"status": "Open", "subject": "s", "channelType": "Email", "uid": "jane"},
        headers=tenant.headers,
    )
    tid = r.json()["ticketID"]
    uid = r.json()["endUsers"][0]["endUserID"]

    async def read() -> Json:
        user = _only(await _get(client, tenant, f"/api/EndUsers/{uid}"), "endUserID", "dateCreated")
        ticket = await _get(client, tenant, f"/api/Tickets/{tid}")
        return {**user, "linked": [u["endUserID"] for u in ticket["endUsers"]], "ticketUid": ticket["uid"]}

    return Case(f"/api/EndUsers/{uid}", {"uid": "jane", "name": "Jane"}, read)


async def topic_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    topic = await create_topic(client, tenant, "Billing")
    r = await client.post(
        "/api/Tickets",
        json={"status": "Open", "subject": "s", "channelType": "Email"},
        headers=tenant.headers,
    )
    tid = r.json()["ticketID"]
    bulk = {"ticketIDs": [tid], "action": "updatetopics", "topicIds": [topic]}
    assert (await client.put("/api/Tickets/bulk", json=bulk, headers=tenant.headers)).status_code == 204

    async def read() -> Json:
        got = _only(await _get(client, tenant, f"/api/Topics/{topic}"), "topicID", "dateCreated")
        return {**got, "onTicket": len((await _get(client, tenant, f"/api/Tickets/{tid}"))["topics"])}

    return Case(f"/api/Topics/{topic}", {"name": "Invoices"}, read)


async def email_template_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    body = {"name": "Plain", "header": "<p>Hello {{ end_user.name }}</p>"}
    r = await client.post("/api/EmailTemplates", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    eid = r.json()["emailTemplateID"]

    async def read() -> Json:
        got = await _get(client, tenant, f"/api/EmailTemplates/{eid}")
        return _only(got, "emailTemplateID", "dateCreated")

    return Case(f"/api/EmailTemplates/{eid}", {"name": "Plain (renamed)"}, read)


async def custom_field_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    body = {"name": "mood", "fieldType": "text", "entityType": "TicketMessage"}
    r = await client.post("/api/CustomFieldDefinitions", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    did = r.json()["customFieldDefinitionID"]
    fields = ("customFieldDefinitionID", "dateCreated", "entityType")

    async def read() -> Json:
        return _only(await _get(client, tenant, f"/api/CustomFieldDefinitions/{did}"), *fields)

    # entityType left out: its default (Ticket) would move the field and its values to tickets.
    return Case(
        f"/api/CustomFieldDefinitions/{did}", {"name": "mood", "fieldType": "text", "label": "Mood"}, read
    )


async def api_key_put(client: httpx.AsyncClient, tenant: Tenant) -> Case:
    r = await client.post("/api/ApiKeys", json={"name": "script"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    kid, secret = r.json()["apiKeyID"], r.json()["apiKey"]
    assert (await client.get("/api/Topics", headers=bearer(secret))).status_code == 200  # sets lastUsedAt
    fields = ("apiKeyID", "customerRepID", "prefix", "dateCreated", "lastUsedAt", "revokedAt")

    async def read() -> Json:
        assert (await client.get("/api/Topics", headers=bearer(secret))).status_code == 200  # still works
        return _only(await _get(client, tenant, f"/api/ApiKeys/{kid}"), *fields)

    return Case(f"/api/ApiKeys/{kid}", {"name": "script (renamed)"}, read)


CASES: dict[str, Callable[[httpx.AsyncClient, Tenant], Awaitable[Case]]] = {
    "/api/Tickets/{id}": ticket_put,
    "/api/Tickets/bulk": ticket_bulk,
    "/api/Tickets/{id}/assign": ticket_assign,
    "/api/Tickets/{id}/recording": ticket_recording,
    "/api/TicketMessages/{id}": message_put,
    "/api/TicketMessageTopics/{id}": message_topic_put,
    "/api/Channels/{id}": channel_put,
    "/api/CustomerReps/{id}": rep_put,
    "/api/EndUsers/{id}": end_user_put,
    "/api/Topics/{id}": topic_put,
    "/api/CustomFieldDefinitions/{id}": custom_field_put,
    "/api/ApiKeys/{id}": api_key_put,
    "/api/EmailTemplates/{id}": email_template_put,
}


def test_every_put_route_has_a_case(app: FastAPI) -> None:
    puts = {info.path for info in iter_api_routes(app) if info.method == "PUT"}
    assert puts == set(CASES), f"PUT routes without a case: {puts - set(CASES)}; stale: {set(CASES) - puts}"


@pytest.mark.parametrize("route", CASES)
async def test_put_keeps_what_the_server_maintains(
    client: httpx.AsyncClient, tenant: Tenant, route: str
) -> None:
    case = await CASES[route](client, tenant)
    before = await case.read()
    assert any(v not in (None, [], {}, False) for v in before.values()), before
    if isinstance(case.body, bytes):
        response = await client.put(
            case.url, content=case.body, headers={**tenant.headers, "Content-Type": case.content_type}
        )
    else:
        response = await client.put(case.url, json=case.body, headers=tenant.headers)
    assert response.status_code in (200, 204), response.text
    after = await case.read()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"{route} changed server-maintained fields: {changed}"
