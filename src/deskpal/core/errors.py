"""Errors services raise, and the one place that renders them as RFC 9457 problem+json."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("deskpal")

PROBLEM_JSON = "application/problem+json"


class DeskpalError(Exception):
    status: int = 400
    code: str = "BAD_REQUEST"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        errors: Sequence[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.headers = headers or {}
        self.errors = list(errors or [])


class BadRequest(DeskpalError):
    pass


class ValidationFailed(DeskpalError):
    code, title = "VALIDATION_FAILED", "Validation failed"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


class Unauthorized(DeskpalError):
    status, code, title = 401, "UNAUTHORIZED", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(DeskpalError):
    status, code, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(DeskpalError):
    status, code, title = 404, "NOT_FOUND", "Not found"


class Gone(DeskpalError):
    status, code, title = 410, "GONE", "Gone"


class Conflict(DeskpalError):
    status, code, title = 409, "CONFLICT", "Conflict"


class PayloadTooLarge(DeskpalError):
    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Payload too large"


class UnsupportedMediaType(DeskpalError):
    status, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class Unprocessable(DeskpalError):
    status, code, title = 422, "UNPROCESSABLE", "Request cannot be processed"


class TooManyRequests(DeskpalError):
    status, code, title = 429, "RATE_LIMITED", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    code: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field_name(loc: Sequence[Any]) -> str:
    # FastAPI locations start with where the value came from; the rest is the JSON path by alias.
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in {"body", "query", "path", "header"} else list(loc)
    return ".".join(str(p) for p in parts) or str(loc[0] if loc else "body")


def readable(error: Any) -> str:
    """A Pydantic error's message as a person reads it.

    A length limit applied after a validator (CleanStr) is Pydantic's generic one, which counts
    "items after validation" even for text; a validator's ValueError is prefixed "Value error, ".
    """
    kind, ctx, given = error.get("type"), error.get("ctx") or {}, error.get("input")
    if kind == "too_long" and isinstance(given, str):
        return f"should have at most {ctx.get('max_length')} characters, not {len(given)}"
    if kind == "too_short" and isinstance(given, str):
        least = ctx.get("min_length")
        if least == 1:
            return "must not be empty"
        return f"should have at least {least} characters, not {len(given)}"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def field_errors(errors: Sequence[Any], *, prefix: str = "") -> list[dict[str, str]]:
    """{field, message} for each Pydantic error of a model validated outside FastAPI (loc has no
    "body"/"query" head), the field spelled by JSON name."""
    return [
        {"field": prefix + (".".join(str(p) for p in e.get("loc", ())) or "body"), "message": readable(e)}
        for e in errors
    ]


_TRANSIENT_PGCODES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


def is_transient(exc: DBAPIError) -> bool:
    """A deadlock, serialization failure or busy lock: retrying the whole transaction can succeed."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _TRANSIENT_PGCODES:
        return True
    return "database is locked" in str(orig)


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
    return str(rid)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DeskpalError)
    async def _deskpal(request: Request, exc: DeskpalError) -> JSONResponse:
        return problem(
            request,
            exc.status,
            exc.title,
            exc.detail,
            exc.code,
            headers=exc.headers,
            errors=exc.errors or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = err.get("loc", ())
            if err.get("type") == "json_invalid":
                errors.append({"field": "body", "message": "malformed JSON: " + str(err.get("msg"))})
                continue
            errors.append({"field": _field_name(loc), "message": readable(err)})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(request, 400, "Validation failed", detail, "VALIDATION_FAILED", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
        return problem(
            request,
            exc.status_code,
            str(exc.detail) if exc.status_code != 404 else "Not found",
            str(exc.detail),
            codes.get(exc.status_code, f"HTTP_{exc.status_code}"),
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error on %s: %s", request.url.path, exc.orig)
        return problem(request, 409, "Conflict", "the change conflicts with existing data", "CONFLICT")

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_transient(exc):
            # Nothing was written (the transaction rolled back); the same request can simply be retried.
            log.info("transient database conflict on %s: %s", request.url.path, exc.orig)
            return problem(
                request,
                503,
                "Concurrent update",
                "the change collided with a concurrent one and was rolled back; retry it",
                "TRY_AGAIN",
                headers={"Retry-After": "1"},
            )
        rid = request_id(request)
        log.exception("database error (request %s)", rid, exc_info=exc)
        return problem(
            request,
            500,
            "Internal server error",
            "database error",
            "INTERNAL_ERROR",
            headers={"X-Request-ID": rid},
            requestId=rid,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.exception("unhandled error (request %s)", rid, exc_info=exc)
        # This handler runs outside the request-id middleware, so it sets the header itself.
        return problem(
            request,
            500,
            "Internal server error",
            "unexpected error",
            "INTERNAL_ERROR",
            headers={"X-Request-ID": rid},
            requestId=rid,
        )
