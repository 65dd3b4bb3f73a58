"""/openapi.json lists, on each response, the problem codes the route's code can answer."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

import deskpal
from deskpal.core.context import Role
from deskpal.core.errors import DeskpalError
from tests.admin.helpers import problem
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

# Codes no route answers: a base class's default, the webhooks no channel has built yet, and the
# command line's (`deskpal mail import` of a path that holds no mail).
UNROUTED = {"UNPROCESSABLE", "BAD_REQUEST", "WEBHOOK_SIGNATURE_INVALID", "NOT_A_MAIL_SOURCE"}


def _codes_in_source() -> set[str]:
    """Every problem code the package spells: in `code="..."` and as an error class's code."""
    codes: set[str] = set()
    root = Path(deskpal.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                codes.add(str(node.value.value))
    for cls in _subclasses(DeskpalError):
        codes.add(cls.code)
    return {c for c in codes if c.isupper()}


def _subclasses(cls: type) -> set[type[Any]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def _documented(app: FastAPI, method: str, path: str) -> dict[str, set[str]]:
    responses = app.openapi()["paths"][path][method.lower()]["responses"]
    return {status: set(r.get("x-problem-codes", [])) for status, r in responses.items()}


def test_every_code_the_code_raises_is_documented_on_a_route(app: FastAPI) -> None:
    spec = app.openapi()
    documented = {
        code
        for operations in spec["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
        for code in response.get("x-problem-codes", [])
    }
    assert _codes_in_source() - UNROUTED <= documented, sorted(_codes_in_source() - UNROUTED - documented)


def test_the_codes_are_the_ones_each_route_can_answer(app: FastAPI) -> None:
    patch = _documented(app, "PATCH", "/api/Tickets/{id}")
    assert {"ASSIGNMENT_NOT_ALLOWED", "CHANNEL_CHANGE_NOT_ALLOWED", "FORBIDDEN"} <= patch["403"]
    assert {"VALIDATION_FAILED", "UNKNOWN_QUERY_PARAMETER"} <= patch["400"] and "NOT_FOUND" in patch["404"]
    helpdesk = _documented(app, "POST", "/helpdesk/api/messages")
    assert {"TICKET_CLOSED", "CLOSED_STATUS_SYSTEM_ONLY"} <= helpdesk["403"]
    assert (
        helpdesk["422"] == {"NO_RECIPIENT", "SMTP_NOT_CONFIGURED"}
        and "SESSION_TOKEN_REQUIRED" in helpdesk["401"]
    )
    assert {"EMAIL_IN_USE", "LAST_ADMIN"} <= _documented(app, "PUT", "/api/CustomerReps/{id}")["409"]
    download = _documented(app, "GET", "/api/File/{accessToken}")
    assert "RANGE_NOT_SATISFIABLE" in download["416"] and "FILE_MISSING" in download["404"]
    # A read answers no write's codes.
    assert "ASSIGNMENT_NOT_ALLOWED" not in _documented(app, "GET", "/api/Tickets/{id}").get("403", set())
    assert "409" not in {s for s, c in _documented(app, "GET", "/api/Tickets").items() if c}


async def test_a_real_answer_s_code_is_among_its_route_s(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await tenant.headers_for(Role.AGENT)
    ticket = await create_ticket(client, tenant.headers)
    response = await client.patch(
        f"/api/Tickets/{ticket['ticketID']}",
        json=[{"op": "replace", "path": "/customerRepID", "value": tenant.admin_rep_id}],
        headers=agent,
    )
    body = problem(response, 403)
    assert body["code"] in _documented(app, "PATCH", "/api/Tickets/{id}")["403"]
