"""Actors say who they are: every route that no representative's credential stands behind acts as
the one kind it declares, and each kind sees only what it needs."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

import deskpal
from deskpal.core.context import Actor, ActorKind, Ctx
from deskpal.core.db import transaction
from deskpal.core.errors import NotFound
from deskpal.core.jobs import JobContext, enqueue, job
from deskpal.core.permissions import PUBLIC_KINDS
from deskpal.tickets import queries as tickets
from tests.routes import dependency_calls, iter_api_routes, policy_of
from tests.support import Tenant, db_of, run_jobs_until_idle
from tests.tickets.helpers import create_channel, create_ticket

# The routes without a representative's or phone credential, and who acts on each.
PUBLIC_ROUTES: dict[tuple[str, str], ActorKind | None] = {
    ("GET", "/health"): None,  # touches no customer's data
    ("GET", "/ready"): None,
    ("POST", "/api/Auth/login"): None,  # exchanges credentials for a token; no actor yet
    ("POST", "/api/Tickets/createchatticket"): ActorKind.VISITOR,
    ("GET", "/api/File/{accessToken}"): ActorKind.LINK,
    ("GET", "/api/File/link/{link}"): ActorKind.LINK,
    # Links in sent mail: the tracking pixel, the job-ad unsubscribe link and its one-click POST.
    ("GET", "/api/TicketMessages/ot"): ActorKind.LINK,
    ("GET", "/api/TicketMessages/unsubscribejobad"): ActorKind.LINK,
    ("POST", "/api/TicketMessages/unsubscribejobad"): ActorKind.LINK,
    ("POST", "/api/TicketMessages/{ticketToken}/escalate"): ActorKind.LINK,  # the ticket's token
}


def _declared_kind(route: Any) -> ActorKind | None:
    kinds = [getattr(c, "deskpal_public_kind", None) for c in dependency_calls(route)]
    found = [k for k in kinds if k is not None]
    assert len(found) <= 1, route.path
    return found[0] if found else None


def test_every_public_route_declares_the_one_kind_that_acts_on_it(app: FastAPI) -> None:
    seen = {}
    for info in iter_api_routes(app):
        if policy_of(info.route) is not None:
            continue  # a representative's or phone credential: tests/core/test_policies.py
        seen[(info.method, info.path)] = _declared_kind(info.route)
    assert seen == PUBLIC_ROUTES
    assert {k for k in seen.values() if k} <= PUBLIC_KINDS


class RecordActor:
    """Keeps the actor each request ended with (request.state lives in the ASGI scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.actors = app, []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.actors.append(scope.get("state", {}).get("actor"))


async def test_the_public_routes_act_as_their_kind(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    chat = await create_channel(client, tenant, "Chat", allowedHostnames=["shop.example"])
    ticket = await create_ticket(client, tenant.headers)
    message = (
        await client.post(
            "/api/TicketMessages/create-new",
            json={"channel": "Email", "message": "m", "ticketID": ticket["ticketID"]},
            headers=tenant.headers,
        )
    ).json()
    uploaded = await client.post(
        f"/api/TicketMessages/{message['messageID']}/attachments",
        files={"file": ("a.txt", b"hello", "text/plain")},
        headers=tenant.headers,
    )
    recorder = RecordActor(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recorder), base_url="http://t") as anon:
        made = await anon.post(
            "/api/Tickets/createchatticket",
            json={"token": chat["token"], "message": "Hi"},
            headers={"Origin": "https://shop.example"},
        )
        assert made.status_code == 201, made.text
        got = await anon.get(f"/api/File/{uploaded.json()['accessToken']}")
        assert got.status_code == 200 and got.content == b"hello"
    visitor, link = recorder.actors
    assert isinstance(visitor, Actor) and isinstance(link, Actor)
    assert (visitor.kind, visitor.channel_id, visitor.customer_id) == (
        ActorKind.VISITOR, chat["channelID"], tenant.customer_id)  # fmt: skip
    assert (link.kind, link.channel_id, link.rep_id) == (ActorKind.LINK, None, None)
    assert not (visitor.is_admin or link.is_admin) and visitor.is_anonymous and link.is_anonymous


async def test_each_kind_sees_only_what_it_needs(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    chat = await create_channel(client, tenant, "Chat")
    other = await create_channel(client, tenant, "Chat")
    mine = await create_ticket(client, tenant.headers, channelID=chat["channelID"], channelType="Chat")
    theirs = await create_ticket(client, tenant.headers, channelID=other["channelID"], channelType="Chat")
    unchanneled = await create_ticket(client, tenant.headers)
    async with transaction(db_of(app), write=False) as db:
        visitor = Ctx.acting(db, tenant.customer_id, ActorKind.VISITOR, channel_id=chat["channelID"])
        assert (await tickets.get_ticket(visitor, mine["ticketID"])).ticket_id == mine["ticketID"]
        for hidden in (theirs, unchanneled):
            with pytest.raises(NotFound):
                await tickets.get_ticket(visitor, hidden["ticketID"])
        link = Ctx.acting(db, tenant.customer_id, ActorKind.LINK)
        with pytest.raises(NotFound):
            await tickets.get_ticket(link, mine["ticketID"])
        for full in (Ctx.worker(db, tenant.customer_id), Ctx.system(db, tenant.customer_id)):
            for ticket in (mine, theirs, unchanneled):
                assert (await tickets.get_ticket(full, ticket["ticketID"])).ticket_id == ticket["ticketID"]


def test_acting_refuses_kinds_that_need_credentials_or_a_channel() -> None:
    db: Any = type("FakeSession", (), {"info": {}})()  # acting() touches only session.info
    for kind in (ActorKind.REP, ActorKind.PHONE):
        with pytest.raises(ValueError, match="credentials"):
            Ctx.acting(db, 1, kind)
    for kind in (ActorKind.VISITOR, ActorKind.WEBHOOK):
        with pytest.raises(ValueError, match="one channel"):
            Ctx.acting(db, 1, kind)
    with pytest.raises(ValueError, match="one channel"):
        Ctx.acting(db, 1, ActorKind.LINK, channel_id=3)


# The HTTP layer: the app, each package's api module, and core's request plumbing. Services below it
# take a Ctx and plain values, never a Request, so the worker and the CLI call them the same way.
HTTP_LAYER = {
    "app.py", "openapi.py", "routes.py", "apidocs/__init__.py", "storage/http.py",
    "core/errors.py", "core/head.py", "core/permissions.py", "core/routing.py", "core/schemas.py",
    "core/strict_requests.py", "auth/webhooks.py",
}  # fmt: skip


def test_only_the_http_layer_imports_the_web_framework() -> None:
    root = Path(deskpal.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in HTTP_LAYER or path.name == "api.py" or path.name.startswith("api_"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            offenders += [f"{name}: {m}" for m in modules if m.split(".")[0] in {"fastapi", "starlette"}]
    assert not offenders, offenders


class Seen(BaseModel):
    tag: str


SEEN_KINDS: dict[str, list[tuple[ActorKind, int]]] = {}


@job("test.record_actor", payload=Seen, max_attempts=1)
async def _record_actor(job_ctx: JobContext, payload: Seen) -> None:
    async with job_ctx.db(write=False) as ctx:
        SEEN_KINDS.setdefault(payload.tag, []).append((ctx.actor.kind, ctx.customer_id))


async def test_a_job_runs_as_the_worker_of_its_customer(app: FastAPI, tenant: Tenant) -> None:
    tag = uuid.uuid4().hex
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        await enqueue(db, "test.record_actor", Seen(tag=tag))
    await run_jobs_until_idle(app)
    assert SEEN_KINDS[tag] == [(ActorKind.WORKER, tenant.customer_id)]
