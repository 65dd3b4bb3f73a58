"""The OpenAPI document: deskpal's real error responses (problem+json, with the codes each route
can answer: problem_codes.py) and bearer auth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from deskpal.core.strict_requests import shape_of
from deskpal.problem_codes import problems_of

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, with a machine-readable code.",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "requestId": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_ERRORS = {
    "400": "Invalid input; `errors` names each offending field",
    "401": "Missing, unknown, revoked or expired credentials",
    "403": "Authenticated, but not allowed",
    "404": "Absent, or belongs to another customer",
    "409": "Conflicts with existing data",
    "413": "Request body too large",
    "422": "Well-formed, but cannot be processed in the current state",
    "429": "Rate limited; see Retry-After",
    "500": "Unexpected error; `requestId` identifies it in the server log",
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion
        return [(r.path, set(r.methods or ()), r) for r in app.router.routes if isinstance(r, APIRoute)]
    return [
        (str(rc.path), set(rc.methods or ()), rc.original_route)
        for rc in iter_route_contexts(app.router.routes)
        if isinstance(rc.original_route, APIRoute)
    ]


def _calls(route: APIRoute) -> list[Callable[..., Any]]:
    calls, stack = [route.endpoint], list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            calls.append(dep.call)
        stack.extend(dep.dependencies)
    return calls


def _shape_problems(route: APIRoute, method: str) -> set[tuple[int, str]]:
    """What any route of this shape can answer, whatever its code raises."""
    found = {(400, "VALIDATION_FAILED"), (500, "INTERNAL_ERROR")}
    if not shape_of(route).tolerant:
        found.add((400, "UNKNOWN_QUERY_PARAMETER"))
    if shape_of(route).json_body:
        found.add((415, "UNSUPPORTED_MEDIA_TYPE"))
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        found |= {(409, "CONFLICT"), (503, "TRY_AGAIN")}
    return found


def _document_codes(app: FastAPI, schema: dict[str, Any]) -> None:
    for path, methods, route in _routes(app):
        operations = schema.get("paths", {}).get(path, {})
        for method in methods:
            operation = operations.get(method.lower())
            if operation is None:
                continue
            problems = problems_of(iter(_calls(route))) | _shape_problems(route, method)
            by_status: dict[int, set[str]] = {}
            for status, code in problems:
                by_status.setdefault(status, set()).add(code)
            responses = operation.setdefault("responses", {})
            for status, codes in sorted(by_status.items()):
                response = responses.setdefault(str(status), _problem(_ERRORS.get(str(status), "Error")))
                response["x-problem-codes"] = sorted(codes)
                response["description"] = f"{response['description']}. Codes: {', '.join(sorted(codes))}"


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        components["schemas"].pop("HTTPValidationError", None)
        components["schemas"].pop("ValidationError", None)
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (dpk_…), a login token from /api/Auth/login, or a Phone "
                "channel's phoneAuthToken (dpp_…) where the policy allows phone auth.",
            }
        }
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, description in _ERRORS.items():
                    responses.setdefault(status, _problem(description))
                if path.startswith(("/api/", "/helpdesk/")):
                    operation.setdefault("security", [{"bearer": []}])
        _document_codes(app, schema)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
