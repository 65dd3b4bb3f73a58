"""POST /api/Channels/{id}/test-imap through HTTP, against the tests' Dovecot, on both databases;
and the channel DTO's imapStatus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.admin.helpers import NON_ADMIN_ROLES, problem
from tests.mail.test_smtp import free_port
from tests.mail_in_imap.conftest import make_channel
from tests.mail_in_imap.dovecot import ImapAccount
from tests.support import Tenant, db_of


async def try_imap(client: httpx.AsyncClient, tenant: Tenant, channel_id: int, **kw: Any) -> httpx.Response:
    return await client.post(f"/api/Channels/{channel_id}/test-imap", headers=tenant.headers, **kw)


async def test_working_settings_answer_ok_and_read_nothing(
    client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
) -> None:
    uid = imap_account.deliver(b"Subject: unread\r\nMessage-ID: <t1@x.test>\r\n\r\nhi\r\n")
    for security in ("ssl", "starttls"):
        channel = await make_channel(client, tenant, imap_account, security)
        for kw in ({}, {"json": {}}):  # no body, or an empty object
            r = await try_imap(client, tenant, channel["channelID"], **kw)
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) == {"ok", "stage", "message", "serverText"}
            assert (body["ok"], body["stage"]) == (True, None), body
            port = imap_account.server.ssl_port if security == "ssl" else imap_account.server.port
            assert body["message"].startswith(f"Connected to 127.0.0.1:{port}, ")
            assert f"signed in as {imap_account.user}; folder INBOX: 1 message" in body["message"]
            assert "Dovecot" in body["serverText"]
    assert "\\Seen" not in imap_account.flags(uid)


async def test_a_wrong_password_names_the_sign_in_and_not_the_password(
    client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
) -> None:
    channel = await make_channel(client, tenant, imap_account, imapPassword="wrong-secret")
    body = (await try_imap(client, tenant, channel["channelID"])).json()
    assert (body["ok"], body["stage"]) == (False, "auth")
    assert body["serverText"] == "[AUTHENTICATIONFAILED] Authentication failed."
    assert "check imapUser/imapPassword" in body["message"]
    assert "wrong-secret" not in str(body)


async def test_a_refused_port_names_the_connection(
    client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
) -> None:
    port = free_port()
    channel = await make_channel(client, tenant, imap_account, "ssl", imapPort=port)
    body = (await try_imap(client, tenant, channel["channelID"])).json()
    assert (body["ok"], body["stage"], body["serverText"]) == (False, "connect", None)
    assert f"Could not connect to 127.0.0.1:{port} (Connection refused)" in body["message"]


async def test_an_untrusted_certificate_names_the_ca_setting(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    imap_account: ImapAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.settings, "imap_ca_file", None)
    channel = await make_channel(client, tenant, imap_account, "ssl")
    body = (await try_imap(client, tenant, channel["channelID"])).json()
    assert (body["ok"], body["stage"], body["serverText"]) == (False, "tls", None)
    assert "DESKPAL_IMAP_CA_FILE" in body["message"]


async def test_a_missing_folder_lists_the_accounts_folders(
    client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
) -> None:
    imap_account.create_folder("Helpdesk")
    channel = await make_channel(client, tenant, imap_account, imapFolder="Help desk")
    body = (await try_imap(client, tenant, channel["channelID"])).json()
    assert (body["ok"], body["stage"]) == (False, "select")
    assert "check imapFolder" in body["message"] and "Helpdesk" in body["message"]


async def test_a_channel_without_imap_is_422_naming_imap_host(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    email = await client.post(
        "/api/Channels",
        json={"name": "Out only", "channelType": "Email", "settings": {"smtpHost": "smtp.example.com"}},
        headers=tenant.headers,
    )
    phone = await client.post(
        "/api/Channels", json={"name": "Hotline", "channelType": "Phone"}, headers=tenant.headers
    )
    for r in (email, phone):
        body = problem(await try_imap(client, tenant, r.json()["channelID"]), 422, "IMAP_NOT_CONFIGURED")
        assert [e["field"] for e in body["errors"]] == ["settings.imapHost"]


async def test_another_customer_s_channel_and_an_unknown_id_are_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, imap_account: ImapAccount
) -> None:
    channel = await make_channel(client, tenant, imap_account)
    problem(await try_imap(client, other_tenant, channel["channelID"]), 404, "NOT_FOUND")
    problem(await try_imap(client, tenant, 424242), 404, "NOT_FOUND")
    assert (await try_imap(client, tenant, channel["channelID"])).json()["ok"] is True


async def test_only_admins_may_test(
    client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
) -> None:
    channel = await make_channel(client, tenant, imap_account)
    url = f"/api/Channels/{channel['channelID']}/test-imap"
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
    imap_account: ImapAccount,
    silent_server: tuple[int, asyncio.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, connected = silent_server
    monkeypatch.setattr(app.state.settings, "imap_timeout_seconds", 2.0)
    channel = await make_channel(client, tenant, imap_account, "none", imapPort=port)
    checking = asyncio.create_task(try_imap(client, tenant, channel["channelID"]))
    await asyncio.wait_for(connected.wait(), 5)
    assert db_of(app).engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not db_of(app).write_lock().locked()
    r = await client.post("/api/Topics", json={"name": "written meanwhile"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert not checking.done()
    body = (await checking).json()
    assert (body["ok"], body["stage"]) == (False, "timeout")


class TestImapStatus:
    async def test_an_email_channel_with_imap_shows_its_status_and_others_none(
        self, client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
    ) -> None:
        channel = await make_channel(client, tenant, imap_account, imapFolder="Support")
        assert channel["imapStatus"] == {
            "folder": "Support",
            "lastFetchAt": None,
            "lastError": None,
            "lastErrorAt": None,
            "backlog": None,
            "nextPollAt": channel["imapStatus"]["nextPollAt"],
        }
        assert channel["imapStatus"]["nextPollAt"] is not None  # due at once
        phone = await client.post(
            "/api/Channels", json={"name": "Hotline", "channelType": "Phone"}, headers=tenant.headers
        )
        assert phone.json()["imapStatus"] is None
        listed = (await client.get("/api/Channels", headers=tenant.headers)).json()["items"]
        by_id = {c["channelID"]: c for c in listed}
        assert by_id[channel["channelID"]]["imapStatus"]["folder"] == "Support"
        assert by_id[phone.json()["channelID"]]["imapStatus"] is None

    async def test_clearing_imap_host_stops_polling(
        self, client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
    ) -> None:
        channel = await make_channel(client, tenant, imap_account)
        settings = {k: v for k, v in imap_account.channel_settings().items() if k != "imapHost"}
        r = await client.put(  # imapStatus sent back, as a client echoing the GET would: ignored
            f"/api/Channels/{channel['channelID']}",
            json={"name": "no more IMAP", "settings": settings, "imapStatus": channel["imapStatus"]},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["imapStatus"] is None
