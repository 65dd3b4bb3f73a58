"""POST /api/Channels/{id}/test-smtp through HTTP, against the tests' SMTP server, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import NON_ADMIN_ROLES, problem
from tests.mail.smtp_sink import SmtpSink, email_channel_settings
from tests.mail.test_smtp import free_port
from tests.support import Tenant, db_of


@pytest.fixture
def trusted(app: FastAPI, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> SmtpSink:
    """The app trusts the sink's CA, as DESKPAL_SMTP_CA_FILE would make it."""
    monkeypatch.setattr(app.state.settings, "smtp_ca_file", smtp_sink.ca_file)
    return smtp_sink


async def email_channel(client: httpx.AsyncClient, tenant: Tenant, settings: dict[str, Any]) -> int:
    body = {"name": "Support mail", "channelType": "Email", "settings": settings}
    r = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["channelID"])


async def try_smtp(client: httpx.AsyncClient, tenant: Tenant, channel_id: int, **kw: Any) -> httpx.Response:
    return await client.post(f"/api/Channels/{channel_id}/test-smtp", headers=tenant.headers, **kw)


async def test_working_settings_answer_ok(
    client: httpx.AsyncClient, tenant: Tenant, trusted: SmtpSink
) -> None:
    channel_id = await email_channel(client, tenant, email_channel_settings(trusted))
    for kw in ({}, {"json": {}}):  # no body, or an empty object
        r = await try_smtp(client, tenant, channel_id, **kw)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "ok": True,
            "stage": None,
            "message": f"Connected to 127.0.0.1:{trusted.port}, STARTTLS, signed in as agent.",
            "serverText": "localhost Python SMTP 1.4.6",
        }
    assert trusted.messages == []  # a check sends nothing


async def test_a_wrong_password_names_the_sign_in(
    client: httpx.AsyncClient, tenant: Tenant, trusted: SmtpSink
) -> None:
    channel_id = await email_channel(client, tenant, email_channel_settings(trusted, smtpPassword="wrong"))
    body = (await try_smtp(client, tenant, channel_id)).json()
    assert (body["ok"], body["stage"]) == (False, "auth")
    assert body["serverText"] == "5.7.8 Authentication credentials invalid"
    assert "check smtpUser/smtpPassword; Gmail needs an app password" in body["message"]
    assert "wrong" not in str(body)


async def test_a_refused_port_names_the_connection(
    client: httpx.AsyncClient, tenant: Tenant, trusted: SmtpSink
) -> None:
    port = free_port()
    channel_id = await email_channel(client, tenant, email_channel_settings(trusted, smtpPort=port))
    body = (await try_smtp(client, tenant, channel_id)).json()
    assert (body["ok"], body["stage"], body["serverText"]) == (False, "connect", None)
    assert f"Could not connect to 127.0.0.1:{port} (Connection refused)" in body["message"]


async def test_an_untrusted_certificate_names_the_certificate(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.settings, "smtp_ca_file", None)  # the sink's CA is not trusted
    channel_id = await email_channel(client, tenant, email_channel_settings(smtp_sink))
    body = (await try_smtp(client, tenant, channel_id)).json()
    assert (body["ok"], body["stage"], body["serverText"]) == (False, "tls", None)
    assert "certificate" in body["message"] and "DESKPAL_SMTP_CA_FILE" in body["message"]


async def test_a_channel_without_smtp_is_422_naming_smtp_host(
    client: httpx.AsyncClient, tenant: Tenant, smtp_sink: SmtpSink
) -> None:
    without_host = email_channel_settings(smtp_sink)
    del without_host["smtpHost"]
    email_id = await email_channel(client, tenant, without_host)
    phone = await client.post(
        "/api/Channels", json={"name": "Hotline", "channelType": "Phone"}, headers=tenant.headers
    )
    for channel_id in (email_id, phone.json()["channelID"]):
        body = problem(await try_smtp(client, tenant, channel_id), 422, "SMTP_NOT_CONFIGURED")
        assert [e["field"] for e in body["errors"]] == ["settings.smtpHost"]


async def test_another_customer_s_channel_and_an_unknown_id_are_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, trusted: SmtpSink
) -> None:
    channel_id = await email_channel(client, tenant, email_channel_settings(trusted))
    problem(await try_smtp(client, other_tenant, channel_id), 404, "NOT_FOUND")
    problem(await try_smtp(client, tenant, 424242), 404, "NOT_FOUND")
    assert (await try_smtp(client, tenant, channel_id)).json()["ok"] is True


async def test_only_admins_may_test(client: httpx.AsyncClient, tenant: Tenant, trusted: SmtpSink) -> None:
    channel_id = await email_channel(client, tenant, email_channel_settings(trusted))
    url = f"/api/Channels/{channel_id}/test-smtp"
    for role in NON_ADMIN_ROLES:
        problem(await client.post(url, headers=await tenant.headers_for(role)), 403, "FORBIDDEN")
    problem(await client.post(url), 401, "UNAUTHORIZED")


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """Accepts connections and never says a word: a check waits on it until its timeout."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connected
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_no_transaction_or_connection_is_held_while_the_server_answers(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    smtp_sink_plain: SmtpSink,
    silent_server: tuple[int, asyncio.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, connected = silent_server
    monkeypatch.setattr(app.state.settings, "smtp_timeout_seconds", 2.0)
    settings = email_channel_settings(smtp_sink_plain, smtpPort=port)
    channel_id = await email_channel(client, tenant, settings)

    checking = asyncio.create_task(try_smtp(client, tenant, channel_id))
    await asyncio.wait_for(connected.wait(), 5)
    # While the check waits on the network: no pooled connection is out, and a write (which on
    # SQLite queues on the process's one write lock) goes through at once.
    assert db_of(app).engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not db_of(app).write_lock().locked()
    r = await client.post("/api/Topics", json={"name": "written meanwhile"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert not checking.done()

    body = (await checking).json()
    assert (body["ok"], body["stage"]) == (False, "timeout")
    assert "did not answer in time" in body["message"]
