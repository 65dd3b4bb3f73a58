"""Every /api route requires a permission, or is public for a written reason."""

from __future__ import annotations

import inspect

from fastapi import FastAPI

from deskpal.routes import PUBLIC_ROUTES
from tests.routes import dependency_calls, is_public, iter_api_routes, policy_of


def test_every_api_route_requires_a_permission_or_is_listed_public(app: FastAPI) -> None:
    unguarded = []
    for info in iter_api_routes(app):
        if not info.path.lower().startswith(("/api/", "/helpdesk/api/")):
            continue
        listed = (info.method, info.path) in PUBLIC_ROUTES
        guarded = policy_of(info.route) is not None
        if guarded == listed:
            unguarded.append(f"{info.method} {info.path} (guarded={guarded}, listed public={listed})")
        if is_public(info.route) and not listed:
            unguarded.append(f"{info.method} {info.path} uses public() but is not in PUBLIC_ROUTES")
    assert not unguarded, "\n".join(unguarded)


def test_every_public_route_exists_and_gives_a_reason(app: FastAPI) -> None:
    existing = {(i.method, i.path) for i in iter_api_routes(app)}
    for key, reason in PUBLIC_ROUTES.items():
        assert key in existing, f"{key} is listed public but does not exist"
        assert len(reason) > 10, f"{key} needs a reason"


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
