"""POST /api/Channels/{id}/inbound and /api/InboundMails through the app, on both databases: the
raw bytes durable before parsing, duplicates stored once, the limit enforced while streaming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.context import Role
from deskpal.email.inbound.receive import AREA
from tests.mail_in_pipeline.helpers import (
    CUSTOMER,
    inbound_mail,
    message,
    new_id,
    post_mail,
    raw_mail,
    received,
    rows,
    ticket,
)
from tests.support import Tenant, run_jobs_until_idle


class TestReceive:
    async def test_a_raw_mail_is_202_pending_then_becomes_a_message_in_a_new_ticket(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        mid = new_id()
        raw = raw_mail(message_id=mid, body="Where is order 1234?\nThanks, Zoë")
        r = await post_mail(client, tenant.headers, mail_channel["channelID"], raw)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["status"] == "pending" and answer["duplicateOfID"] is None
        [row] = await rows(app, tenant)
        assert row.inbound_mail_id == answer["inboundMailID"]
        assert (row.status, row.size, row.header_message_id, row.source) == (
            "pending",
            len(raw),
            mid,
            "endpoint",
        )
        # Durable before any parsing: the bytes are in storage already, exactly as sent.
        assert await app.state.storage.read_all(row.storage_key) == raw

        await run_jobs_until_idle(app)
        mail = await inbound_mail(client, tenant, answer["inboundMailID"])
        assert mail["status"] == "stored" and mail["kind"] == "message" and mail["error"] is None
        assert mail["messageIdentifier"] == mid and mail["attempts"] == 1
        msg = await message(client, tenant, mail["messageID"])
        assert msg["ticketID"] == mail["ticketID"]
        assert msg["incoming"] is True and msg["channelID"] == mail_channel["channelID"]
        assert msg["fromAddress"] == CUSTOMER and msg["fromName"] == "Zoë Customer"
        assert msg["subject"] == "My order is late" and msg["messageIdentifier"] == mid
        assert "Where is order 1234?" in msg["textBody"]
        assert msg["threadingReason"] == "new" and msg["isAutoReply"] is False
        assert "Message-ID: " + mid in msg["headers"]
        opened = await ticket(client, tenant, mail["ticketID"])
        assert opened["subject"] == "My order is late" and opened["channelID"] == mail_channel["channelID"]
        assert opened["uid"] == CUSTOMER

    async def test_the_same_message_id_twice_is_stored_once_and_the_second_says_duplicate(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        mid = new_id()
        first = await received(client, tenant, mail_channel["channelID"], raw_mail(message_id=mid))
        # The same mail again, as a relay that added a header of its own delivers it.
        again = raw_mail(message_id=mid, headers={"Received": "from relay.example by mx.acme.test"})
        second = await received(client, tenant, mail_channel["channelID"], again)
        assert second["status"] == "duplicate" and second["duplicateOfID"] == first["inboundMailID"]
        await run_jobs_until_idle(app)
        stored = await rows(app, tenant)
        assert [r.status for r in stored] == ["stored", "duplicate"]
        assert stored[1].duplicate_of == stored[0].inbound_mail_id and stored[1].message_id is None
        # Bytes that differ are kept with the duplicate: nothing that came in is lost.
        assert await app.state.storage.read_all(stored[1].storage_key) == again
        r = await client.get(f"/api/TicketMessages?ticketId={stored[0].ticket_id}", headers=tenant.headers)
        assert r.json()["totalCount"] == 1

    async def test_arrivals_at_the_same_time_store_one_original(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        """Five deliveries of one mail at once (on PostgreSQL each in its own transaction and
        connection): the partial unique index lets one original in, the others are duplicates."""
        raw = raw_mail(message_id=new_id())
        answers = await asyncio.gather(
            *(post_mail(client, tenant.headers, mail_channel["channelID"], raw) for _ in range(5))
        )
        assert [a.status_code for a in answers] == [202] * 5
        statuses = sorted(a.json()["status"] for a in answers)
        assert statuses == ["duplicate"] * 4 + ["pending"]
        original = next(a.json()["inboundMailID"] for a in answers if a.json()["status"] == "pending")
        assert {a.json()["duplicateOfID"] for a in answers if a.json()["status"] == "duplicate"} == {original}
        await run_jobs_until_idle(app)
        stored = await rows(app, tenant)
        assert sum(r.message_id is not None for r in stored) == 1

    async def test_a_mail_without_message_id_is_deduplicated_by_its_bytes(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        raw = raw_mail(no_message_id=True)
        first = await received(client, tenant, mail_channel["channelID"], raw)
        second = await received(client, tenant, mail_channel["channelID"], raw)
        other = await received(
            client, tenant, mail_channel["channelID"], raw_mail(no_message_id=True, body="x")
        )
        assert second["status"] == "duplicate" and second["duplicateOfID"] == first["inboundMailID"]
        assert other["status"] == "pending"
        await run_jobs_until_idle(app)
        stored = await rows(app, tenant)
        assert [r.status for r in stored] == ["stored", "duplicate", "stored"]
        assert stored[0].ticket_id != stored[2].ticket_id
        # Byte for byte the same: the duplicate shares the original's blob.
        assert stored[1].storage_key == stored[0].storage_key

    async def test_the_same_mail_on_another_channel_is_not_a_duplicate(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        second_channel = await client.post(
            "/api/Channels", json={"name": "Sales", "channelType": "Email"}, headers=tenant.headers
        )
        mid = new_id()
        await received(client, tenant, mail_channel["channelID"], raw_mail(message_id=mid))
        other = await received(client, tenant, second_channel.json()["channelID"], raw_mail(message_id=mid))
        assert other["status"] == "pending"
        await run_jobs_until_idle(app)
        stored = await rows(app, tenant)
        # Recorded on both; filed once: the second finds the message its Message-ID already is.
        assert [r.status for r in stored] == ["stored", "stored"]
        assert stored[1].message_id == stored[0].message_id

    async def test_raw_download_is_the_mail_as_it_came(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        raw = raw_mail()
        answer = await received(client, tenant, mail_channel["channelID"], raw)
        r = await client.get(f"/api/InboundMails/{answer['inboundMailID']}/raw", headers=tenant.headers)
        assert r.status_code == 200 and r.content == raw
        assert r.headers["content-type"].startswith("message/rfc822")

    async def test_octet_stream_and_text_plain_are_taken_and_json_is_415(
        self, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        for content_type in ("application/octet-stream", "text/plain; charset=utf-8"):
            r = await post_mail(
                client, tenant.headers, mail_channel["channelID"], raw_mail(), content_type=content_type
            )
            assert r.status_code == 202, r.text
        r = await post_mail(
            client, tenant.headers, mail_channel["channelID"], b'{"a": 1}', content_type="application/json"
        )
        assert r.status_code == 415 and r.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"

    async def test_an_empty_body_is_400_naming_body(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        r = await post_mail(client, tenant.headers, mail_channel["channelID"], b"")
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "body"
        assert await rows(app, tenant) == []


class TestWhoMaySend:
    async def test_another_customers_channel_is_404(
        self, client: httpx.AsyncClient, other_tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        r = await post_mail(client, other_tenant.headers, mail_channel["channelID"], raw_mail())
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"

    async def test_a_chat_channel_is_422(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        chat = await client.post(
            "/api/Channels", json={"name": "c", "channelType": "Chat"}, headers=tenant.headers
        )
        r = await post_mail(client, tenant.headers, chat.json()["channelID"], raw_mail())
        assert r.status_code == 422 and r.json()["code"] == "NOT_AN_EMAIL_CHANNEL"

    async def test_an_agent_may_and_a_restricted_rep_or_viewer_may_not(
        self, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        r = await post_mail(
            client, await tenant.headers_for(Role.AGENT), mail_channel["channelID"], raw_mail()
        )
        assert r.status_code == 202, r.text
        for role in (Role.RESTRICTED, Role.VIEWER):
            r = await post_mail(client, await tenant.headers_for(role), mail_channel["channelID"], raw_mail())
            assert r.status_code == 403, (role, r.text)
            listed = await client.get("/api/InboundMails", headers=await tenant.headers_for(role))
            assert listed.status_code == 403


class TestLimit:
    @pytest.fixture
    def small_limit(self, app: FastAPI) -> Iterator[int]:
        # The app is shared by the session: its settings come back after the test.
        limit, kept = 64 * 1024, app.state.settings
        app.state.settings = kept.model_copy(update={"max_inbound_mail_bytes": limit})
        try:
            yield limit
        finally:
            app.state.settings = kept

    async def test_a_body_over_the_limit_is_413_while_it_streams_and_nothing_is_kept(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        small_limit: int,
    ) -> None:
        chunk = b"x" * 16 * 1024
        total_chunks = 100 * 1024 * 1024 // len(chunk)  # 100 MB, if it were all read
        pulled = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal pulled
            yield raw_mail()
            for _ in range(total_chunks):
                pulled += 1
                yield chunk

        r = await post_mail(client, tenant.headers, mail_channel["channelID"], body())
        assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
        # Refused once past the limit: a few chunks were read, not 100 MB.
        assert pulled * len(chunk) < 4 * small_limit
        assert await rows(app, tenant) == []
        root = Path(app.state.storage.root) / AREA / str(tenant.customer_id)
        assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))

    async def test_a_declared_length_over_the_limit_is_413_before_reading(
        self, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any], small_limit: int
    ) -> None:
        r = await post_mail(client, tenant.headers, mail_channel["channelID"], b"x" * (small_limit + 1))
        assert r.status_code == 413


class TestList:
    async def test_filters_and_paging(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        for i in range(3):
            await received(client, tenant, mail_channel["channelID"], raw_mail(subject=f"mail {i}"))
        r = await client.get("/api/InboundMails?status=pending&pageSize=2", headers=tenant.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["totalCount"] == 3 and page["totalPages"] == 2 and len(page["items"]) == 2
        assert [m["subject"] for m in page["items"]] == ["mail 2", "mail 1"]  # newest first
        await run_jobs_until_idle(app)
        stored = await client.get(
            f"/api/InboundMails?status=stored&kind=message&channelID={mail_channel['channelID']}",
            headers=tenant.headers,
        )
        assert stored.json()["totalCount"] == 3
        assert (await client.get("/api/InboundMails?status=failed", headers=tenant.headers)).json()[
            "totalCount"
        ] == 0
        bad = await client.get("/api/InboundMails?status=lost", headers=tenant.headers)
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"
