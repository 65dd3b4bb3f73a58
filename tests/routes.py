"""Walking the app's effective routes (FastAPI may include routers lazily)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    route: APIRoute


def iter_api_routes(app: FastAPI) -> Iterator[RouteInfo]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion
        contexts: list[tuple[Any, str, set[str]]] = [
            (r, r.path, set(r.methods)) for r in app.router.routes if isinstance(r, APIRoute)
        ]
    else:
        contexts = [
            (rc.original_route, rc.path, set(rc.methods or ()))
            for rc in iter_route_contexts(app.router.routes)
            if isinstance(rc.original_route, APIRoute)
        ]
    for route, path, methods in contexts:
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            yield RouteInfo(method, path, route)


def dependency_calls(route: APIRoute) -> Iterator[Callable[..., Any]]:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            yield dep.call
        stack.extend(dep.dependencies)


def policy_of(route: APIRoute) -> tuple[Any, Any] | None:
    for call in dependency_calls(route):
        policy = getattr(call, "deskpal_policy", None)
        if policy is not None:
            return policy  # type: ignore[no-any-return]
    return None


def public_reason(route: APIRoute) -> str | None:
    """Why the route takes no credentials (public() or credential_free()), else None."""
    for call in dependency_calls(route):
        reason = getattr(call, "deskpal_public", None)
        if reason:
            return str(reason)
    return None


def is_public(route: APIRoute) -> bool:
    return public_reason(route) is not None


def public_routes(app: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path) -> the reason each public route gives, as the routes declare it."""
    return {(i.method, i.path): r for i in iter_api_routes(app) if (r := public_reason(i.route))}
