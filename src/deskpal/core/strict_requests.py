"""What every route checks of a request before its own parameters are read.

Query parameter names match without regard to case, as paths do (`?channelids=3` is `channelIDs`),
and a name no route parameter has is a 400 naming it: silently ignoring `?channelIds=3` would
answer an unfiltered list that looks filtered. A JSON body sent as another media type is a 415
rather than "Input should be a valid dictionary".

A route reached by URLs deskpal does not control once they leave it (a tracking pixel, a link in
mail, to which mail clients, proxies and link scanners append `utm_*` and the like) opts out of the
refusal with `dependencies=[tolerates_unknown_query(reason)]`: its unknown names are dropped before
its parameters are read, and its own names still match in any case.
"""

from __future__ import annotations

import email.message
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.params import Form
from fastapi.routing import APIRoute

from deskpal.core.errors import UnsupportedMediaType, ValidationFailed


@dataclass(frozen=True, slots=True)
class RouteRequestShape:
    query_names: frozenset[str]
    by_lower: dict[str, str]
    json_body: bool
    tolerant: bool = False  # unknown query names are dropped, not refused


def tolerates_unknown_query(reason: str) -> Any:
    """A route dependency: this route ignores query names it does not take, for `reason`."""

    async def dependency() -> None:
        return None

    dependency.deskpal_tolerates_query = reason  # type: ignore[attr-defined]
    return Depends(dependency)


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _tolerant(dependant: Dependant) -> bool:
    if getattr(dependant.call, "deskpal_tolerates_query", None):
        return True
    return any(_tolerant(sub) for sub in dependant.dependencies)


def shape_of(route: APIRoute) -> RouteRequestShape:
    cached: RouteRequestShape | None = getattr(route, "_deskpal_request_shape", None)
    if cached is None:
        names = _query_names(route.dependant)
        body = route.body_field
        cached = RouteRequestShape(
            query_names=frozenset(names),
            by_lower={name.lower(): name for name in names},
            json_body=body is not None and not isinstance(body.field_info, Form),
            tolerant=_tolerant(route.dependant),
        )
        route._deskpal_request_shape = cached  # type: ignore[attr-defined]
    return cached


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    is_json_subtype = subtype == "json" or subtype.endswith("+json")
    return message.get_content_maintype() == "application" and is_json_subtype


async def strict_request(request: Request) -> None:
    """An app-wide dependency: it runs before the route's own parameters are read."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    shape = shape_of(route)
    raw = request.scope.get("query_string", b"")
    if raw:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        if any(name not in shape.query_names for name, _ in pairs):
            fixed = []
            for name, value in pairs:
                known = shape.by_lower.get(name.lower())
                if known is None and shape.tolerant:
                    continue
                if known is None:
                    allowed = ", ".join(sorted(shape.query_names)) or "none"
                    raise ValidationFailed(
                        f"{name}: unknown query parameter (this operation takes: {allowed})",
                        code="UNKNOWN_QUERY_PARAMETER",
                        errors=[{"field": name, "message": "unknown query parameter"}],
                    )
                fixed.append((known, value))
            request.scope["query_string"] = urlencode(fixed).encode("latin-1")
            if hasattr(request, "_query_params"):
                del request._query_params
    if shape.json_body and request.method in {"POST", "PUT", "PATCH"}:
        content_type = request.headers.get("content-type")
        if await request.body() and not (content_type and _is_json(content_type)):
            raise UnsupportedMediaType(
                "the request body must be JSON (Content-Type: application/json), "
                f"not {content_type or 'untyped'}"
            )
