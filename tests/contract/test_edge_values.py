"""Edge values in every field of every JSON body the OpenAPI document describes: never a 5xx.

The values are the ones that broke deskpal before or break servers like it: instants a UTC
conversion cannot hold, integers past 64 bits, numbers past a double, NUL, strings one past their
longest. Where the schema itself rules a value out, the answer is a 400 that names the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import invalid
from tests.messages.helpers import create_message, session_headers
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

EDGE_DATES = [
    "9999-12-31T23:59:59-05:00",  # after datetime.max once in UTC
    "0001-01-01T00:00:00+05:00",  # before datetime.min once in UTC
    "9999-12-31T23:59:59.999999-00:01",
]


@dataclass(frozen=True)
class Edge:
    path: tuple[str, ...]  # JSON names from the body's root
    raw: str  # the value as JSON text (1e999 cannot be written by json.dumps)
    refused: bool  # the schema rules it out: a 400 naming the field


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(spec, s) for s in schema[key] if s.get("type") != "null"]
            if len(options) == 1:
                return {**options[0], **{k: v for k, v in schema.items() if k != key}}
    return schema


def _edges(
    spec: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...], depth: int = 0
) -> Iterator[Edge]:
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if kind == "object" and depth < 3:
        for name, sub in schema.get("properties", {}).items():
            yield from _edges(spec, sub, (*path, name), depth + 1)
    elif kind == "string" and schema.get("format") == "date-time":
        for value in EDGE_DATES:
            yield Edge(path, json.dumps(value), refused=True)
    elif kind == "string" and "enum" not in schema:
        yield Edge(path, json.dumps("a\x00b"), refused=True)
        if schema.get("minLength", 0) >= 1:
            # Required text of only spaces says nothing (a password may be spaces).
            yield Edge(path, json.dumps("   "), refused=path[-1] != "password")
        if "maxLength" in schema:
            yield Edge(path, json.dumps("x" * (schema["maxLength"] + 1)), refused=True)
    elif kind == "integer":
        for value in (2**63, -(2**63) - 1, 2**53):
            bounded = "maximum" in schema and value > schema["maximum"]
            bounded |= "minimum" in schema and value < schema["minimum"]
            yield Edge(path, str(value), refused=bounded)
    elif kind == "number":
        yield Edge(path, "1e999", refused=False)


def _body(edge: Edge) -> str:
    text = edge.raw
    for name in reversed(edge.path):
        text = "{" + json.dumps(name) + ": " + text + "}"
    return text


def _cases(app: FastAPI) -> Iterator[tuple[str, str, Edge]]:
    spec = app.openapi()
    for url, operations in spec["paths"].items():
        for method, op in operations.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = _resolve(spec, content["application/json"]["schema"])
            if schema.get("type") != "object":
                continue  # JSON Patch documents: see the ticket tests
            for edge in _edges(spec, schema, ()):
                yield method.upper(), url, edge


def _fill(url: str, ids: dict[str, int]) -> str:
    prefix = "/api/TicketMessages" if url.startswith("/api/TicketMessages") else "/api/Tickets"
    return url.replace("{id}", str(ids.get(prefix, 1))).replace("{ticketId}", str(ids["/api/Tickets"]))


async def test_edge_values_in_every_body_field_never_fail_the_server(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ticket = await create_ticket(client, tenant.headers)
    message = await create_message(client, tenant.headers, ticketID=ticket["ticketID"])
    ids = {"/api/Tickets": ticket["ticketID"], "/api/TicketMessages": message["messageID"]}
    login = await session_headers(app, tenant)
    walked: set[tuple[str, str]] = set()
    refused_dates = 0
    for method, url, edge in _cases(app):
        headers = {
            **(login if url.startswith("/helpdesk") else tenant.headers),
            "Content-Type": "application/json",
        }
        response = await client.request(method, _fill(url, ids), content=_body(edge), headers=headers)
        where = f"{method} {url} {'.'.join(edge.path)}={edge.raw[:40]}"
        assert response.status_code < 500, (where, response.text)
        # Errors a person can read: no Python reprs, no "Value error," prefixes, text counted in characters.
        assert "<class" not in response.text and "Value error" not in response.text, (where, response.text)
        if edge.refused:
            assert response.status_code == 400, (where, response.text)
            body = invalid(response, ".".join(edge.path))
            if edge.raw.startswith('"xxx'):
                messages = [e["message"] for e in body["errors"] if e["field"] == ".".join(edge.path)]
                assert any("characters" in m for m in messages), (where, messages)
            refused_dates += edge.raw.strip('"') in EDGE_DATES
        walked.add((method, url))
    # The walk reached the bodies that carry dates (a schema change that hid them would show here).
    assert {
        ("POST", "/api/Tickets"),
        ("PUT", "/api/Tickets/{id}"),
        ("POST", "/api/TicketMessages/create-new"),
    } <= walked
    assert refused_dates >= 3 * len(EDGE_DATES)


@pytest.mark.parametrize("field", ["followUpDate", "closeDate", "endDate", "lastMessageDate"])
async def test_a_json_patch_to_an_out_of_range_date_is_a_400_naming_it(
    client: httpx.AsyncClient, tenant: Tenant, field: str
) -> None:
    ticket = await create_ticket(client, tenant.headers)
    for value in EDGE_DATES:
        response = await client.patch(
            f"/api/Tickets/{ticket['ticketID']}",
            json=[{"op": "replace", "path": f"/{field}", "value": value}],
            headers=tenant.headers,
        )
        invalid(response, field)


async def test_a_failing_json_patch_test_says_what_the_value_was(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ticket = await create_ticket(client, tenant.headers, status="Open")
    url = f"/api/Tickets/{ticket['ticketID']}"
    ops = [
        {"op": "replace", "path": "/subject", "value": "changed"},
        {"op": "test", "path": "/status", "value": "Closed"},
    ]
    body = invalid(await client.patch(url, json=ops, headers=tenant.headers), "status")
    assert (
        body["errors"][0]["message"] == 'operation 1 (test /status) failed: the value is "Open", not "Closed"'
    )
    for ops, field in (
        ([{"op": "remove", "path": "/noSuchField"}], "noSuchField"),
        ([{"op": "move", "from": "/nowhere", "path": "/subject"}], "nowhere"),
        ([{"op": "test", "path": "/nothing", "value": 1}], "nothing"),
    ):
        body = invalid(await client.patch(url, json=ops, headers=tenant.headers), field)
        message = body["errors"][0]["message"]
        assert "operation 0" in message and "{" not in message and "<class" not in message, message
    assert (await client.get(url, headers=tenant.headers)).json()["subject"] == ticket["subject"]
