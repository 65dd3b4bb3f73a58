"""Email addresses: the parser, and every request field that takes one (walked from the OpenAPI)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.addresses import Mailbox, parse_addresses, parse_mailbox
from tests.admin.helpers import invalid, problem
from tests.mail.helpers import notice_address
from tests.messages.helpers import create_message, session_headers, stored_message
from tests.support import Tenant
from tests.tickets.helpers import create_channel, create_ticket

PARSED = [
    ("Name <Mixed@Case.Example>", [Mailbox("mixed@case.example", "Name")]),
    ('"Doe, John" <john@x.example>', [Mailbox("john@x.example", "Doe, John")]),
    ("Jane <JANE@x.example>, bob@y.example", [Mailbox("jane@x.example", "Jane"), Mailbox("bob@y.example")]),
    ("=?utf-8?q?J=C3=B6rg?= <j@x.de>", [Mailbox("j@x.de", "Jörg")]),
    ("José <josé@ex.example>", [Mailbox("josé@ex.example", "José")]),
    ("J. Doe <j@x.example>", [Mailbox("j@x.example", "J. Doe")]),
    ("bob@x.example (Bob at work)", [Mailbox("bob@x.example")]),
    ("  plain@x.example  ", [Mailbox("plain@x.example")]),
    ("x@y.example, ,w@v.example", [Mailbox("x@y.example"), Mailbox("w@v.example")]),  # obsolete, still sent
]
NOT_ADDRESSES = [
    "not an address",
    "a@",
    "@x.example",
    "a@b@c",
    "Jane <jane@x.example",
    "<>",
    "undisclosed-recipients:;",
]


@pytest.mark.parametrize(("value", "boxes"), PARSED)
def test_the_parser_reads_what_mail_writes(value: str, boxes: list[Mailbox]) -> None:
    assert parse_addresses(value) == boxes
    # The stored form reads back as the same mailboxes.
    assert parse_addresses(", ".join(b.formatted() for b in boxes)) == boxes


@pytest.mark.parametrize("value", NOT_ADDRESSES)
def test_what_is_not_an_address_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        parse_addresses(value)
    with pytest.raises(ValueError, match="email address"):
        parse_mailbox(value)


# Every request-body field that holds an address: (method, path, field) -> a request sending `value`
# there, and what the client then reads back. The walk below fails for a new field missing here.
Send = Callable[[httpx.AsyncClient, FastAPI, Tenant, str], Awaitable[tuple[httpx.Response, Any]]]


async def _message(
    client: httpx.AsyncClient, tenant: Tenant, path: str, field: str, value: str, **extra: Any
) -> tuple[httpx.Response, Any]:
    ticket = await create_ticket(client, tenant.headers)
    body = {"channel": "Email", "message": "hello", "ticketID": ticket["ticketID"], field: value, **extra}
    response = await client.post(f"/api/TicketMessages{path}", json=body, headers=tenant.headers)
    return response, (response.json() if response.status_code == 201 else None)


def _message_field(path: str, field: str, **extra: Any) -> Send:
    async def send(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
        response, made = await _message(client, tenant, path, field, value, **extra)
        return response, made and made[field]

    return send


async def _put_message(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str
) -> tuple[Any, Any]:
    made = await create_message(client, tenant.headers, incoming=False, isDraft=True)
    url = f"/api/TicketMessages/{made['messageID']}"
    response = await client.put(
        url, json={"messageID": made["messageID"], "ccAddress": value}, headers=tenant.headers
    )
    return response, response.status_code == 200 and (await client.get(url, headers=tenant.headers)).json()[
        "ccAddress"
    ]


def _put_message_list(field: str) -> Send:
    async def send(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
        made = await create_message(client, tenant.headers, incoming=False, isDraft=True)
        url = f"/api/TicketMessages/{made['messageID']}"
        body = {"messageID": made["messageID"], field: value}
        response = await client.put(url, json=body, headers=tenant.headers)
        read = (
            (await client.get(url, headers=tenant.headers)).json()[field]
            if response.status_code == 204
            else None
        )
        return response, read

    return send


async def _end_user(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
    body = {"uid": uuid.uuid4().hex, "email": value}
    response = await client.post("/api/EndUsers", json=body, headers=tenant.headers)
    return response, response.status_code == 201 and response.json()["email"]


async def _end_user_put(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str
) -> tuple[Any, Any]:
    uid = uuid.uuid4().hex
    made = await client.post("/api/EndUsers", json={"uid": uid}, headers=tenant.headers)
    url = f"/api/EndUsers/{made.json()['endUserID']}"
    response = await client.put(url, json={"uid": uid, "email": value}, headers=tenant.headers)
    return response, response.status_code == 200 and response.json()["email"]


async def _rep(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
    response = await client.post(
        "/api/CustomerReps", json={"name": "R", "email": value}, headers=tenant.headers
    )
    return response, response.status_code == 201 and response.json()["email"]


async def _rep_put(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
    made = await client.post(
        "/api/CustomerReps",
        json={"name": "R", "email": f"{uuid.uuid4().hex}@x.example"},
        headers=tenant.headers,
    )
    url = f"/api/CustomerReps/{made.json()['customerRepID']}"
    response = await client.put(
        url, json={"name": "R", "email": value, "role": "agent"}, headers=tenant.headers
    )
    return response, response.status_code == 200 and response.json()["email"]


async def _login(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
    # The admin's address in another spelling logs in; what is not an address is a 400.
    value = value.replace("mixed@case.example", tenant.admin_email.upper()).replace(
        "Mixed@Case.Example", tenant.admin_email.upper()
    )
    response = await client.post("/api/Auth/login", json={"email": value, "password": tenant.admin_password})
    return response, response.status_code == 200 and tenant.admin_email


async def _chat(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
    channel = await create_channel(client, tenant, "Chat", allowedHostnames=["shop.example.com"])
    body = {"token": channel["token"], "message": "Hi", "email": value}
    response = await client.post(
        "/api/Tickets/createchatticket", json=body, headers={"Origin": "https://shop.example.com"}
    )
    if response.status_code != 201:
        return response, None
    ticket = (await client.get(f"/api/Tickets/{response.json()['ticketID']}", headers=tenant.headers)).json()
    return response, ticket["uid"]


def _helpdesk(field: str) -> Send:
    async def send(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
        login = await session_headers(app, tenant)
        ticket = await create_ticket(client, tenant.headers)
        body: dict[str, Any] = {
            "ticket_id": str(ticket["ticketID"]),
            "type": "response",
            "content": "<p>x</p>",
            "send_email": False,  # the addresses are stored either way; no SMTP channel is needed
        }
        body.update(
            {"is_forward": True, "recipients": [{"email": "it@x.example"}], field: [{"email": value}]}
        )
        response = await client.post("/helpdesk/api/messages", json=body, headers=login)
        if response.status_code != 201:
            return response, None
        stored = await stored_message(app, tenant, int(response.json()["id"]))
        assert stored is not None
        return response, (stored.to_address if field == "recipients" else stored.cc_address)

    return send


def _escalate(by_token: bool) -> Send:
    async def send(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, value: str) -> tuple[Any, Any]:
        made = await create_message(client, tenant.headers)
        if by_token:
            ticket = (await client.get(f"/api/Tickets/{made['ticketID']}", headers=tenant.headers)).json()
            url, headers = f"/api/TicketMessages/{ticket['token']}/escalate", {}
        else:
            url, headers = f"/api/TicketMessages/{made['messageID']}/escalate-by-id", tenant.headers
        response = await client.post(url, json={"email": value}, headers=headers)
        # The address is the one the escalation notice goes to.
        return response, response.status_code == 200 and await notice_address(app, tenant, made["messageID"])

    return send


NAMED, BARE = "Name <mixed@case.example>", "mixed@case.example"
FIELDS: dict[tuple[str, str, str], tuple[Send, str]] = {
    ("POST", "/api/TicketMessages/create-new", "fromAddress"): (
        _message_field("/create-new", "fromAddress"), BARE),
    ("POST", "/api/TicketMessages", "fromAddress"): (_message_field("", "fromAddress"), BARE),
    ("POST", "/api/TicketMessages/create-new", "toAddress"): (
        _message_field("/create-new", "toAddress", incoming=False), NAMED),
    ("POST", "/api/TicketMessages", "toAddress"): (
        _message_field("", "toAddress", incoming=False), NAMED),
    ("POST", "/api/TicketMessages/create-new", "ccAddress"): (
        _message_field("/create-new", "ccAddress"), NAMED),
    ("POST", "/api/TicketMessages", "ccAddress"): (_message_field("", "ccAddress"), NAMED),
    ("POST", "/api/TicketMessages/create-new", "bccAddress"): (
        _message_field("/create-new", "bccAddress", incoming=False), NAMED),
    ("POST", "/api/TicketMessages", "bccAddress"): (
        _message_field("", "bccAddress", incoming=False), NAMED),
    ("PUT", "/api/TicketMessages/{id}", "toAddress"): (_put_message_list("toAddress"), NAMED),
    ("PUT", "/api/TicketMessages/{id}", "ccAddress"): (_put_message_list("ccAddress"), NAMED),
    ("PUT", "/api/TicketMessages/{id}", "bccAddress"): (_put_message_list("bccAddress"), NAMED),
    ("POST", "/api/EndUsers", "email"): (_end_user, BARE),
    ("PUT", "/api/EndUsers/{id}", "email"): (_end_user_put, BARE),
    ("POST", "/api/CustomerReps", "email"): (_rep, BARE),
    ("PUT", "/api/CustomerReps/{id}", "email"): (_rep_put, BARE),
    ("POST", "/api/Auth/login", "email"): (_login, ""),
    ("POST", "/api/Tickets/createchatticket", "email"): (_chat, BARE),
    ("POST", "/helpdesk/api/messages", "recipients.[].email"): (_helpdesk("recipients"), BARE),
    ("POST", "/helpdesk/api/messages", "ccs.[].email"): (_helpdesk("ccs"), BARE),
    ("POST", "/api/TicketMessages/{ticketToken}/escalate", "email"): (_escalate(by_token=True), BARE),
    ("POST", "/api/TicketMessages/{messageId}/escalate-by-id", "email"): (_escalate(by_token=False), BARE),
}  # fmt: skip
NOT_ADDRESS_FIELDS = {"emailTemplateID", "send_email", "recipients", "ccs"}


def _address_fields(app: FastAPI) -> set[tuple[str, str, str]]:
    spec = app.openapi()

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def walk(schema: dict[str, Any], path: tuple[str, ...], depth: int = 0) -> set[str]:
        schema, found = resolve(schema), set()
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                found |= walk(sub, path, depth)
        if schema.get("type") == "array":
            found |= walk(schema.get("items", {}), (*path, "[]"), depth)
        for name, sub in schema.get("properties", {}).items():
            dotted = ".".join((*path, name))
            if re.search("address|email|recipient|ccs", name, re.I) and dotted not in NOT_ADDRESS_FIELDS:
                found.add(dotted)
            if depth < 4:
                found |= walk(sub, (*path, name), depth + 1)
        return found

    fields = set()
    for url, operations in spec["paths"].items():
        for method, op in operations.items():
            for content in op.get("requestBody", {}).get("content", {}).values():
                fields |= {(method.upper(), url, f) for f in walk(content["schema"], ())}
    return fields


def test_every_address_field_of_the_api_is_walked(app: FastAPI) -> None:
    assert _address_fields(app) == set(FIELDS)


@pytest.mark.parametrize("key", list(FIELDS), ids=lambda k: f"{k[0]} {k[1]} {k[2]}")
async def test_every_address_field_parses_addresses(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, key: tuple[str, str, str]
) -> None:
    send, expected = FIELDS[key]
    field = key[2].replace(".[]", ".0")
    response, stored = await send(client, app, tenant, "Name <Mixed@Case.Example>")
    assert response.status_code in (200, 201, 204), response.text
    if expected:
        assert stored == expected
    for value in ("not an address", "a@b@c", "Jane <jane@x.example"):
        response, _ = await send(client, app, tenant, value)
        if key[1] == "/api/Auth/login":
            problem(response, 401, "INVALID_CREDENTIALS")  # a login form says no more than that
        else:
            invalid(response, field)


async def test_a_display_name_becomes_the_sender_and_the_end_user(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for value, name, address in (
        ("Name <Mixed@Case.Example>", "Name", BARE),
        ('"Doe, John" <john@x.example>', "Doe, John", "john@x.example"),
    ):
        made = await create_message(client, tenant.headers, fromAddress=value)
        assert (made["fromAddress"], made["fromName"]) == (address, name)
        ticket = (await client.get(f"/api/Tickets/{made['ticketID']}", headers=tenant.headers)).json()
        assert ticket["uid"] == address
        assert [(u["email"], u["name"]) for u in ticket["endUsers"]] == [(address, name)]
    # A name given beside the address wins over the display name.
    made = await create_message(client, tenant.headers, fromAddress="Nick <n@x.example>", fromName="Nicola")
    assert (made["fromAddress"], made["fromName"]) == ("n@x.example", "Nicola")
    # An outgoing message to one named recipient makes that recipient the end user.
    made = await create_message(client, tenant.headers, incoming=False, toAddress="Jane <JANE@x.example>")
    ticket = (await client.get(f"/api/Tickets/{made['ticketID']}", headers=tenant.headers)).json()
    assert ticket["uid"] == "jane@x.example"


async def test_an_email_custom_field_takes_an_address(client: httpx.AsyncClient, tenant: Tenant) -> None:
    definition = {"name": "backup", "displayName": "Backup", "fieldType": "Email", "entityType": "Ticket"}
    made = await client.post("/api/CustomFieldDefinitions", json=definition, headers=tenant.headers)
    assert made.status_code == 201, made.text
    ticket = await create_ticket(client, tenant.headers, customFieldsData={"backup": "B <B@X.example>"})
    assert ticket["customFieldsData"]["backup"] == "b@x.example"
    response = await client.post(
        "/api/Tickets",
        json={
            "status": "Open",
            "subject": "s",
            "channelType": "Email",
            "customFieldsData": {"backup": "nope"},
        },
        headers=tenant.headers,
    )
    invalid(response, "customFieldsData.backup")


async def test_an_email_channel_from_address_is_an_address(client: httpx.AsyncClient, tenant: Tenant) -> None:
    made = await create_channel(client, tenant, "Email", settings={"fromAddress": "Support@Shop.Example"})
    assert made["settings"]["fromAddress"] == "support@shop.example"
    response = await client.post(
        "/api/Channels",
        json={"name": "x", "channelType": "Email", "settings": {"fromAddress": "not an address"}},
        headers=tenant.headers,
    )
    invalid(response, "settings")
