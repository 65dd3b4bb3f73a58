"""Fixtures: every database test runs on SQLite and on PostgreSQL, through the real app."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

# Cheap password hashing for tests only; production keeps Argon2's defaults (see README).
os.environ.setdefault("DESKPAL_ARGON2_TIME_COST", "1")
os.environ.setdefault("DESKPAL_ARGON2_MEMORY_KIB", "1024")
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deskpal.app import create_app
from deskpal.config import Settings
from deskpal.email import runtime as email_runtime
from deskpal.migrate import upgrade_async
from tests.mail.smtp_sink import (
    Certificates,
    SmtpSink,
    _smtp_server_plain,
    _smtp_server_ssl,
    _smtp_server_starttls,
    email_channel_settings,
    smtp_certificates,
    smtp_sink,
    smtp_sink_plain,
    smtp_sink_ssl,
)
from tests.support import Tenant, make_tenant, truncate_all

# The SMTP sink's fixtures, for every test directory (tests/mail/smtp_sink.py).
__all__ = [
    "_smtp_server_plain",
    "_smtp_server_ssl",
    "_smtp_server_starttls",
    "smtp_certificates",
    "smtp_sink",
    "smtp_sink_plain",
    "smtp_sink_ssl",
]

PG_ADMIN_URL = os.environ.get("DESKPAL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def _pg_reachable() -> str | None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure to connect means "not reachable"
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


async def _pg_create_database(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _pg_drop_database(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@pytest.fixture
async def fresh_database(db_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A new, empty database of the kind under test (not migrated), dropped afterwards."""
    if db_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"deskpal_fresh_{uuid.uuid4().hex[:10]}"
    await _pg_create_database(name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _pg_drop_database(name)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated, empty database: once per run per kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'deskpal.db'}"
        await upgrade_async(url)
        yield url
        return
    problem = await _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but unreachable at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL} ({problem}); PostgreSQL half skipped")
    name = f"deskpal_test_{uuid.uuid4().hex[:10]}"
    await _pg_create_database(name)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        await upgrade_async(url)
        yield url
    finally:
        await _pg_drop_database(name)


def test_settings(db_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=db_url, data_dir=data_dir, secret_key="test-secret-key-" + "x" * 32, run_worker=False
    )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def settings(db_url: str, data_dir: Path) -> Settings:
    return test_settings(db_url, data_dir)


@pytest.fixture(scope="session")
async def shared_app(db_url: str, data_dir: Path, smtp_certificates: Certificates) -> AsyncIterator[FastAPI]:
    # Mail jobs trust the tests' SMTP servers' self-signed CA, as DESKPAL_SMTP_CA_FILE would; the
    # tests' IMAP server (tests/mail_in_imap/dovecot.py) has a certificate of the same CA.
    ca = smtp_certificates.ca_file
    settings = test_settings(db_url, data_dir).model_copy(update={"smtp_ca_file": ca, "imap_ca_file": ca})
    application = create_app(settings)
    try:
        yield application
    finally:
        await application.state.db.dispose()


@pytest.fixture
async def app(shared_app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app on a clean database: one app per database kind, every table emptied after each test."""
    # What jobs read where no request is (email/runtime.py) is the process's: another app a test made
    # since (tests/core, tests/admin) may have set its own.
    email_runtime.configure(shared_app.state.settings, shared_app.state.storage)
    try:
        yield shared_app
    finally:
        await truncate_all(shared_app.state.db)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant(app: FastAPI) -> Tenant:
    return await make_tenant(app, "Acme")


@pytest.fixture
async def mail_channel(client: httpx.AsyncClient, tenant: Tenant, smtp_sink: SmtpSink) -> dict[str, Any]:
    """The tenant's Email channel, sending through the tests' SMTP server (STARTTLS, AUTH)."""
    body = {"name": "Support mail", "channelType": "Email", "settings": email_channel_settings(smtp_sink)}
    response = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def other_tenant(app: FastAPI) -> Tenant:
    return await make_tenant(app, "Globex")
