"""Automatic mail and loops (issue 13, part 7): at most DESKPAL_AUTO_MAIL_PER_ADDRESS_PER_HOUR
automatic mails per address an hour, never to deskpal's own addresses; human replies are never
limited. Real SMTP sink, both databases."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.context import Ctx
from deskpal.core.db import Database, transaction
from deskpal.core.jobs import JobStatus
from deskpal.email import automail
from deskpal.email.runtime import runtime
from tests.mail.helpers import create_message, jobs_of
from tests.mail.smtp_sink import FROM_ADDRESS, email_channel_settings
from tests.support import Tenant, run_jobs_until_idle

CUSTOMER = "zoe@customer.test"


async def reply(
    client: httpx.AsyncClient, tenant: Tenant, *, to: str = CUSTOMER, sender: str = "AI", **fields: Any
) -> dict[str, Any]:
    """An outgoing mail in a new ticket, written as `sender` (AI and System: automatic), and sent."""
    draft = await create_message(
        client, tenant.headers, incoming=False, isDraft=True, senderType=sender, toAddress=to,
        subject="About your order", message="Your order ships today.", **fields,
    )  # fmt: skip
    r = await client.post(
        f"/api/TicketMessages/{draft['messageID']}/send-new", json={}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    return draft


async def shown(client: httpx.AsyncClient, tenant: Tenant, message_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/TicketMessages/{message_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class TestPerAddressLimit:
    async def test_over_the_limit_is_not_sent_and_the_next_hour_is(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any, monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        limit = runtime().auto_mail_per_address_per_hour
        start = (time.time() // 3600) * 3600 + 60  # early in an hour: the test never straddles two
        monkeypatch.setattr(automail, "clock", lambda: start)
        sent = [await reply(client, tenant) for _ in range(limit)]
        await run_jobs_until_idle(app)
        over = await reply(client, tenant, sender="System")
        await run_jobs_until_idle(app)
        assert [m.recipients for m in smtp_sink.messages] == [[CUSTOMER]] * limit
        for draft in sent:
            assert (await shown(client, tenant, draft["messageID"]))["deliveryStatus"] == "sent"
        refused = await shown(client, tenant, over["messageID"])
        assert refused["deliveryStatus"] == "suppressed" and refused["sendPending"] is False
        assert CUSTOMER in refused["deliveryError"]
        assert f"had {limit} automatic mails this hour" in refused["deliveryError"]
        monkeypatch.setattr(automail, "clock", lambda: start + 3600)
        later = await reply(client, tenant)
        await run_jobs_until_idle(app)
        assert (await shown(client, tenant, later["messageID"]))["deliveryStatus"] == "sent"
        assert len(smtp_sink.messages) == limit + 1

    async def test_the_limit_counts_each_address_alone(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:  # fmt: skip
        limit = runtime().auto_mail_per_address_per_hour
        for _ in range(limit):
            await reply(client, tenant)
        both = await reply(client, tenant, ccAddress="bob@customer.test")
        await run_jobs_until_idle(app)
        assert smtp_sink.messages[-1].recipients == ["bob@customer.test"]
        row = await shown(client, tenant, both["messageID"])
        assert row["deliveryStatus"] == "sent"
        assert "automatic mail not sent to zoe@customer.test" in row["deliveryError"]

    async def test_a_human_reply_is_never_limited(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:  # fmt: skip
        limit = runtime().auto_mail_per_address_per_hour
        for _ in range(limit + 1):
            await reply(client, tenant)
        human = [await reply(client, tenant, sender="CustomerRep") for _ in range(limit + 1)]
        await run_jobs_until_idle(app)
        for draft in human:
            row = await shown(client, tenant, draft["messageID"])
            assert row["deliveryStatus"] == "sent" and row["deliveryError"] is None
        assert len(smtp_sink.messages) == limit + limit + 1

    async def test_an_escalation_notice_counts_as_automatic(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:  # fmt: skip
        limit = runtime().auto_mail_per_address_per_hour
        incoming = await create_message(client, tenant.headers, fromAddress=CUSTOMER, toAddress=FROM_ADDRESS)
        for n in range(limit + 1):
            r = await client.post(
                f"/api/TicketMessages/{incoming['messageID']}/escalate-by-id",
                json={"feedbackComment": f"comment {n}", "email": "manager@acme.test"},
                headers=tenant.headers,
            )
            assert r.status_code == 200, r.text
            await run_jobs_until_idle(app)
        assert [m.recipients for m in smtp_sink.messages] == [["manager@acme.test"]] * limit
        jobs = await jobs_of(app, tenant)
        assert [j.status for j in jobs] == [JobStatus.DONE] * limit + [JobStatus.DEAD]
        assert f"had {limit} automatic mails this hour" in (jobs[-1].last_error or "")


class TestOwnAddresses:
    async def test_automatic_mail_never_goes_to_the_channels_own_address(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:  # fmt: skip
        only_own = await reply(client, tenant, to=f"Support <{FROM_ADDRESS.upper()}>")
        mixed = await reply(client, tenant, ccAddress=FROM_ADDRESS)
        await run_jobs_until_idle(app)
        assert [m.recipients for m in smtp_sink.messages] == [[CUSTOMER]]
        row = await shown(client, tenant, only_own["messageID"])
        assert row["deliveryStatus"] == "suppressed"
        assert f"{FROM_ADDRESS}: one of deskpal's own channel addresses" in row["deliveryError"]
        assert (await shown(client, tenant, mixed["messageID"]))["deliveryStatus"] == "sent"

    async def test_nor_to_another_customers_channel_or_a_mailbox_login(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
        mail_channel: dict[str, Any], smtp_sink: Any,
    ) -> None:  # fmt: skip
        body = {
            "name": "Globex mail", "channelType": "Email",
            "settings": email_channel_settings(smtp_sink, fromAddress="help@globex.test"),
        }  # fmt: skip
        r = await client.post("/api/Channels", json=body, headers=other_tenant.headers)
        assert r.status_code == 201, r.text
        settings = {"imapHost": "imap.acme.test", "imapUser": "inbox@acme.test"}
        r = await client.put(
            f"/api/Channels/{mail_channel['channelID']}",
            json={
                "name": mail_channel["name"],
                "settings": {**email_channel_settings(smtp_sink), **settings},
            },
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        to_globex = await reply(client, tenant, to="help@globex.test")
        to_login = await reply(client, tenant, to="inbox@acme.test")
        await run_jobs_until_idle(app)
        assert smtp_sink.messages == []
        for draft in (to_globex, to_login):
            assert (await shown(client, tenant, draft["messageID"]))["deliveryStatus"] == "suppressed"

    async def test_a_human_may_write_to_an_own_address(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:  # fmt: skip
        await reply(client, tenant, to=FROM_ADDRESS, sender="CustomerRep")
        await run_jobs_until_idle(app)
        assert [m.recipients for m in smtp_sink.messages] == [[FROM_ADDRESS]]

    async def test_an_escalation_notice_to_an_own_address_is_not_sent(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:  # fmt: skip
        incoming = await create_message(client, tenant.headers, fromAddress=CUSTOMER, toAddress=FROM_ADDRESS)
        r = await client.post(
            f"/api/TicketMessages/{incoming['messageID']}/escalate-by-id",
            json={"email": FROM_ADDRESS}, headers=tenant.headers,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        await run_jobs_until_idle(app)
        assert smtp_sink.messages == []
        (job,) = await jobs_of(app, tenant)
        assert job.status == JobStatus.DEAD and "own channel addresses" in (job.last_error or "")


class TestAcrossProcesses:
    async def test_two_workers_share_one_count(self, app: FastAPI, db_url: str, tenant: Tenant) -> None:
        """Two engines (as two worker processes have) screen at once: together they admit the
        limit, no more. On PostgreSQL the second waits on the first's row lock until it commits."""
        limit = runtime().auto_mail_per_address_per_hour
        first_in = asyncio.Event()

        async def worker(db: Database, lead: bool) -> int:
            if not lead:
                await first_in.wait()
            async with transaction(db, customer_id=tenant.customer_id) as session:
                mails = [automail.Screened(["Loop@Responder.test"]) for _ in range(limit - 1)]
                await automail.screen(Ctx.system(session, tenant.customer_id), mails)
                if lead:
                    first_in.set()
                    await asyncio.sleep(0.3)  # the other is waiting now, or counting on its own
            return sum(1 for m in mails if m.kept)

        one, two = Database(db_url, pool_size=1), Database(db_url, pool_size=1)
        try:
            admitted = await asyncio.gather(worker(one, True), worker(two, False))
        finally:
            await one.engine.dispose()
            await two.engine.dispose()
        assert admitted[0] == limit - 1 and admitted[1] == 1
