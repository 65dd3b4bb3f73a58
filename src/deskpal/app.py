"""The FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deskpal import __version__
from deskpal.apidocs import install_docs
from deskpal.auth.service import make_authenticator
from deskpal.config import Settings
from deskpal.core import secretbox
from deskpal.core.db import Database
from deskpal.core.errors import install_error_handlers
from deskpal.core.head import HeadAsGet
from deskpal.core.routing import discover
from deskpal.core.strict_requests import strict_request
from deskpal.core.worker import Worker
from deskpal.email import runtime as email_runtime
from deskpal.job_types import register_all
from deskpal.openapi import install_openapi
from deskpal.storage import build_storage

log = logging.getLogger("deskpal")


class CaseInsensitivePaths:
    """Matches paths without regard to case, as the reference service does (/api/tickets = /api/Tickets).

    Each path segment that spells a literal segment of some route in another case is rewritten to
    the route's spelling before routing; path parameter values (ids, tokens) pass unchanged unless
    they collide with a literal segment's spelling.
    """

    def __init__(self, app: ASGIApp, segments: dict[str, str]) -> None:
        self.app = app
        self.segments = segments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            parts = path.split("/")
            fixed = [self.segments.get(p.lower(), p) if p else p for p in parts]
            if fixed != parts:
                new_path = "/".join(fixed)
                scope = dict(scope, path=new_path, raw_path=new_path.encode())
        await self.app(scope, receive, send)


class RequestIds:
    """X-Request-ID in and out: the client's, else a new one, kept in request.state for the logs.

    Plain ASGI: @app.middleware("http") runs every request through a task group and a memory
    stream, which cost a measurable share of a small request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = (given.decode("latin-1") or uuid.uuid4().hex)[:64]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def _literal_segments(app: FastAPI) -> dict[str, str]:
    segments: dict[str, str] = {}
    paths = [getattr(r, "path", "") for r in app.router.routes] + list(app.openapi()["paths"])
    for path in paths:
        for part in path.split("/"):
            if part and "{" not in part:
                segments.setdefault(part.lower(), part)
    return segments


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> FastAPI:
    settings = settings or Settings()
    register_all()
    secretbox.configure(settings.resolved_secret_key, settings.old_secret_key_list)
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    start_worker = settings.run_worker if run_worker is None else run_worker
    storage = build_storage(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = None
        if start_worker:
            worker = Worker(
                db,
                lease_seconds=settings.job_lease_seconds,
                poll_seconds=settings.worker_poll_seconds,
                concurrency=settings.worker_concurrency,
            )
            task = asyncio.create_task(worker.run_forever(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await db.dispose()

    app = FastAPI(
        title="deskpal",
        version=__version__,
        description="Self-hostable, AI-powered customer-support helpdesk. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        docs_url=None,  # deskpal serves /docs itself, with no outside asset (apidocs/)
        redoc_url=None,
        # Runs before each route's own parameters are read (core/strict_requests.py).
        dependencies=[Depends(strict_request)],
    )
    app.state.settings = settings
    app.state.db = db
    app.state.storage = storage
    email_runtime.configure(settings, storage)  # what mail jobs need where no request is
    app.state.authenticate = make_authenticator(settings, db)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)

    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestIds)

    @app.get("/health", tags=["Health"])
    async def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/ready", tags=["Health"], responses={503: {"description": "database unreachable"}})
    async def ready() -> JSONResponse:
        """The database answers."""
        try:
            await db.ping()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    for router in discover():  # each package mounts its own routers (core/routing.py)
        app.include_router(router)
    app.add_middleware(CaseInsensitivePaths, segments=_literal_segments(app))
    return app
