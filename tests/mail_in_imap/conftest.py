"""Fixtures: the Dovecot server (once per session), a fresh IMAP account per test, Email channels
polling it, the poller, and what the inbound pipeline recorded (inbox.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.email.inbound.polling import Poller, PollSettings, RoundResult
from tests.mail.smtp_sink import Certificates
from tests.mail_in_imap.dovecot import DOVECOT, Dovecot, ImapAccount
from tests.mail_in_imap.inbox import Inbox
from tests.support import Tenant, db_of

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def dovecot(smtp_certificates: Certificates) -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        message = f"Dovecot is not installed ({DOVECOT}): `make test` installs dovecot-imapd"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = Dovecot(smtp_certificates).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    return dovecot.add_account()


@pytest.fixture
def inbox(app: FastAPI, tenant: Tenant) -> Inbox:
    """The tenant's InboundMail rows and their bytes."""
    return Inbox(app, tenant)


def poll_settings(dovecot: Dovecot, **overrides: Any) -> PollSettings:
    values: dict[str, Any] = {
        "poll_seconds": 0.2,
        "lease_seconds": 5.0,
        "timeout": 5.0,
        "ca_file": dovecot.ca_file,
    }
    return PollSettings(**(values | overrides))


async def poll_now(app: FastAPI, dovecot: Dovecot, **overrides: Any) -> list[RoundResult]:
    """Every mailbox that is due, polled to the end of its backlog (the poller's one-off run)."""
    return await Poller(db_of(app), poll_settings(dovecot, **overrides)).poll_due()


async def make_channel(
    client: httpx.AsyncClient,
    tenant: Tenant,
    account: ImapAccount,
    security: str = "starttls",
    **settings: Any,
) -> dict[str, Any]:
    body = {
        "name": f"Mail {account.user}",
        "channelType": "Email",
        "settings": account.channel_settings(security, **settings),
    }
    response = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def imap_channel(
    client: httpx.AsyncClient, tenant: Tenant, imap_account: ImapAccount
) -> dict[str, Any]:
    """The tenant's Email channel polling `imap_account` (STARTTLS)."""
    return await make_channel(client, tenant, imap_account)
