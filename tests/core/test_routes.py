"""Every /api route requires a permission, or is public for a written reason."""

from __future__ import annotations

import inspect

from fastapi import FastAPI

from deskpal.core.routing import discover
from tests.routes import dependency_calls, is_public, iter_api_routes, policy_of, public_routes

# The public surface, reviewed: a route that becomes public, or stops being, fails here.
PUBLIC = {
    ("POST", "/api/Auth/login"),
    ("POST", "/api/Tickets/createchatticket"),
    ("GET", "/api/File/{accessToken}"),
    ("GET", "/api/File/link/{link}"),
    ("GET", "/api/TicketMessages/ot"),
    ("GET", "/api/TicketMessages/unsubscribejobad"),
    ("POST", "/api/TicketMessages/unsubscribejobad"),
    ("POST", "/api/TicketMessages/{ticketToken}/escalate"),
}


def test_every_api_route_requires_a_permission_or_declares_itself_public(app: FastAPI) -> None:
    unguarded = []
    for info in iter_api_routes(app):
        if not info.path.lower().startswith(("/api/", "/helpdesk/api/")):
            continue
        guarded = policy_of(info.route) is not None
        if guarded == is_public(info.route):
            unguarded.append(f"{info.method} {info.path} (guarded={guarded}, public={not guarded})")
    assert not unguarded, "\n".join(unguarded)
    reasons = public_routes(app)
    assert set(reasons) == PUBLIC
    assert all(len(reason) > 20 for reason in reasons.values()), reasons


def test_every_package_mounts_its_own_routers_and_the_busy_ones_first(app: FastAPI) -> None:
    prefixes = [router.prefix for router in discover()]
    assert prefixes[:2] == ["/api/Tickets", "/api/TicketMessages"]
    assert len(prefixes) == len(set(map(id, discover()))) >= 13
    mounted = {route.path for router in discover() for route in router.routes}
    served = {info.path for info in iter_api_routes(app)}
    assert mounted <= served


def test_openapi_describes_every_api_route(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for info in iter_api_routes(app):
        assert info.method.lower() in paths.get(info.path, {}), f"{info.method} {info.path} missing"


def test_no_dependency_or_handler_runs_in_the_threadpool(app: FastAPI) -> None:
    # FastAPI runs plain `def` dependencies and handlers in a thread: a hand-off and a GIL fight on
    # every request for what takes microseconds (query parsing, paging). Storage I/O that blocks
    # goes through its own threads explicitly.
    sync = []
    for info in iter_api_routes(app):
        calls = [info.route.endpoint, *dependency_calls(info.route)]
        sync += [
            f"{info.method} {info.path}: {getattr(c, '__qualname__', c)}"
            for c in calls
            if not (inspect.iscoroutinefunction(c) or inspect.isasyncgenfunction(c))
        ]
    assert not sync, "\n".join(sorted(set(sync)))
