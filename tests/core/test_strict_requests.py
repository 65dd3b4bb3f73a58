"""Query parameters and bodies as clients send them, on every route of the app."""

from __future__ import annotations

import enum
import re
import typing
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.strict_requests import shape_of
from tests.admin.helpers import invalid, problem
from tests.routes import iter_api_routes
from tests.support import Tenant
from tests.tickets.helpers import create_channel, create_ticket


def _url(path: str) -> str:
    # Path parameters: an id, or a token for the public routes; routing matches either.
    return re.sub(r"\{[^}]+\}", "1", path)


# Routes opened from sent mail, whose URLs clients and link scanners extend: they ignore unknown
# names (core/strict_requests.tolerates_unknown_query; tests/mail/ checks they still answer).
TOLERANT = {
    ("GET", "/api/TicketMessages/ot"),
    ("GET", "/api/TicketMessages/unsubscribejobad"),
    ("POST", "/api/TicketMessages/unsubscribejobad"),
}


async def test_an_unknown_query_parameter_is_a_400_naming_it_on_every_route(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    walked, tolerant = 0, set()
    for info in iter_api_routes(app):
        if shape_of(info.route).tolerant:
            tolerant.add((info.method, info.path))
            continue
        response = await client.request(
            info.method, _url(info.path) + "?noSuchThing=1", headers=tenant.headers, json={}
        )
        body = problem(response, 400, "UNKNOWN_QUERY_PARAMETER")
        assert [e["field"] for e in body["errors"]] == ["noSuchThing"], (info.path, body)
        walked += 1
    assert walked > 40 and tolerant == TOLERANT


async def test_query_parameter_names_match_in_any_case(client: httpx.AsyncClient, tenant: Tenant) -> None:
    email = await create_channel(client, tenant, "Email")
    await create_channel(client, tenant, "Chat")
    await create_ticket(client, tenant.headers, channelID=email["channelID"])
    await create_ticket(client, tenant.headers, status="Pending")
    await create_ticket(client, tenant.headers, status="Pending")

    async def total(query: str) -> int:
        response = await client.get("/api/Tickets?" + query, headers=tenant.headers)
        assert response.status_code == 200, (query, response.text)
        return int(response.json()["totalCount"])

    assert await total(f"channelIDs={email['channelID']}") == 1
    assert await total(f"channelids={email['channelID']}") == 1
    assert await total(f"CHANNELIDS={email['channelID']}") == 1
    assert await total("STATUS=Pending") == 2
    response = await client.get("/api/Tickets?pagesize=1&PageNumber=2", headers=tenant.headers)
    assert len(response.json()["items"]) == 1 and response.json()["totalPages"] == 3


async def test_enum_and_status_filter_values_match_in_any_case(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    email = await create_channel(client, tenant, "Email")
    await create_ticket(client, tenant.headers, channelID=email["channelID"], status="Pending")
    await create_ticket(client, tenant.headers, status="Waiting on customer")

    async def total(query: str) -> int:
        response = await client.get("/api/Tickets?" + query, headers=tenant.headers)
        assert response.status_code == 200, (query, response.text)
        return int(response.json()["totalCount"])

    for spelling in ("Pending", "pending", "PENDING"):
        assert await total(f"status={spelling}") == 1, spelling
    assert await total("status=waiting%20ON%20customer") == 1
    assert await total("status=pending&status=Waiting%20on%20customer") == 2
    for spelling in ("Email", "email", "EMAIL"):
        assert await total(f"channelType={spelling}") == 2, spelling
    for sort_by in ("lastMessageDate", "lastmessagedate", "LASTMESSAGEDATE"):
        assert await total(f"sortBy={sort_by}&sortOrder=ASC") == 2, sort_by


def _enums_in(annotation: Any, seen: set[Any]) -> Iterator[type[enum.Enum]]:
    if annotation in seen:
        return
    seen.add(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        yield annotation
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for field in annotation.model_fields.values():
            yield from _enums_in(field.annotation, seen)
    for arg in typing.get_args(annotation):
        yield from _enums_in(arg, seen)


def test_every_enum_a_client_sends_matches_in_any_case(app: FastAPI) -> None:
    """Walks every query, path and body parameter of every route, into nested models."""
    found: set[type[enum.Enum]] = set()
    for info in iter_api_routes(app):
        stack = [info.route.dependant]
        while stack:
            dependant = stack.pop()
            for param in (*dependant.query_params, *dependant.path_params, *dependant.body_params):
                found |= set(_enums_in(param.field_info.annotation, set()))
            stack.extend(dependant.dependencies)
    assert len(found) >= 5, found
    strict = sorted(e.__name__ for e in found if not issubclass(e, CaseInsensitiveEnum))
    assert not strict, f"enums a client sends that are case-sensitive: {strict}"


async def test_a_json_body_sent_as_another_media_type_is_a_415_on_every_route(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    walked = 0
    for info in iter_api_routes(app):
        if not shape_of(info.route).json_body:
            continue
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = dict(tenant.headers)
            if content_type:
                headers["Content-Type"] = content_type
            response = await client.request(
                info.method, _url(info.path), content=b'{"a": 1}', headers=headers
            )
            body = problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
            assert "application/json" in body["detail"], body
        walked += 1
    assert walked > 15


async def test_json_with_a_charset_or_a_json_suffix_is_json(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for content_type in (
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/merge-patch+json",
    ):
        response = await client.post(
            "/api/Topics",
            content=b'{"name": "' + content_type.encode() + b'"}',
            headers={**tenant.headers, "Content-Type": content_type},
        )
        assert response.status_code == 201, (content_type, response.text)
    invalid(
        await client.post(
            "/api/Topics", content=b"{}", headers={**tenant.headers, "Content-Type": "application/json"}
        ),
        "name",
    )
