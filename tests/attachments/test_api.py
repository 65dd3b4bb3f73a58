"""Attachments of ticket messages: upload, list, download (with Range), delete, and who may."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.core.context import Role
from deskpal.core.db import transaction
from deskpal.storage import Storage
from tests.attachments.helpers import (
    BOUNDARY,
    make_message,
    multipart_head,
    multipart_tail,
    streamed_body,
    upload,
    upload_raw,
)
from tests.support import Tenant, db_of, run_jobs_until_idle

DTO_FIELDS = {
    "ticketMessageAttachmentID", "messageID", "fileName", "contentType", "fileSizeBytes",
    "createdDateTime", "isEndUserProvided", "isCustomerRepProvided", "convertedFromAttachmentID",
    "contentId", "accessToken",
}  # fmt: skip
MB = 1024 * 1024


async def stored_rows(app: FastAPI, tenant: Tenant) -> list[TicketMessageAttachment]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        return list((await db.scalars(select(TicketMessageAttachment))).all())


async def stored_blobs(app: FastAPI, tenant: Tenant) -> set[str]:
    storage: Storage = app.state.storage
    return {info.key async for info in storage.list(f"attachments/{tenant.customer_id}")}


class TestUpload:
    async def test_upload_returns_the_dto_and_stores_row_and_bytes(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await upload(client, tenant.headers, message_id, b"%PDF-1.4 abc")
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == DTO_FIELDS
        assert body["messageID"] == message_id and body["fileName"] == "invoice.pdf"
        assert body["contentType"] == "application/pdf" and body["fileSizeBytes"] == 12
        assert body["isCustomerRepProvided"] is True and body["isEndUserProvided"] is False
        assert str(uuid.UUID(body["accessToken"])) == body["accessToken"]
        [row] = await stored_rows(app, tenant)
        assert row.ticket_message_attachment_id == body["ticketMessageAttachmentID"]
        assert row.storage_key.startswith(f"attachments/{tenant.customer_id}/")
        assert await app.state.storage.read_all(row.storage_key) == b"%PDF-1.4 abc"

    async def test_content_type_defaults_to_octet_stream_and_file_name_is_made_safe(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        head = multipart_head("..\\..\\etc/pass\x07wd", content_type=None)
        response = await upload_raw(client, tenant.headers, message_id, head + b"data" + multipart_tail())
        assert response.status_code == 201, response.text
        assert response.json()["contentType"] == "application/octet-stream"
        assert response.json()["fileName"] == "passwd"

    async def test_malformed_content_type_is_not_stored(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        head = multipart_head("a.txt", content_type='text/html"; x=1, evil')
        response = await upload_raw(client, tenant.headers, message_id, head + b"<b>" + multipart_tail())
        assert response.json()["contentType"] == "application/octet-stream"

    async def test_other_fields_before_the_file_are_skipped(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await client.post(
            f"/api/TicketMessages/{message_id}/attachments",
            data={"note": "hello"},
            files={"file": ("a.txt", b"abc", "text/plain")},
            headers=tenant.headers,
        )
        assert response.status_code == 201 and response.json()["fileSizeBytes"] == 3

    async def test_missing_file_field_is_400_naming_it(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await client.post(
            f"/api/TicketMessages/{message_id}/attachments",
            files={"other": ("a.txt", b"abc", "text/plain")},
            headers=tenant.headers,
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "file"

    async def test_not_multipart_is_415(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await client.post(
            f"/api/TicketMessages/{message_id}/attachments", json={"file": "x"}, headers=tenant.headers
        )
        assert response.status_code == 415 and response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"

    async def test_truncated_body_is_400_and_nothing_is_kept(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await upload_raw(client, tenant.headers, message_id, multipart_head() + b"partial")
        assert response.status_code == 400
        assert await stored_rows(app, tenant) == [] and await stored_blobs(app, tenant) == set()

    async def test_unknown_message_is_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        response = await upload(client, tenant.headers, 987654)
        assert response.status_code == 404

    async def test_declared_oversize_body_is_refused_before_reading(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await client.post(
            f"/api/TicketMessages/{message_id}/attachments",
            content=b"x",
            headers={
                **tenant.headers,
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(60 * MB),
            },
        )
        assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def test_51_mb_stream_is_413_leaves_nothing_and_memory_stays_flat(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        partial_dir = getattr(app.state.storage, "partial_dir", None)
        gc.collect()
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            # No Content-Length: the body is sent chunked, so only counting while streaming can refuse it.
            response = await client.post(
                f"/api/TicketMessages/{message_id}/attachments",
                content=streamed_body(51 * MB),
                headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status_code == 413, response.text
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
        assert peak - baseline < 20 * MB, f"memory grew by {(peak - baseline) / MB:.1f} MB"
        assert await stored_rows(app, tenant) == [] and await stored_blobs(app, tenant) == set()
        if partial_dir is not None:
            assert list(partial_dir.iterdir()) == []

    async def test_limit_is_a_setting(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(app.state.settings, "attachment_max_bytes", 10)
        _, message_id = await make_message(app, client, tenant)
        assert (await upload(client, tenant.headers, message_id, b"x" * 10)).status_code == 201
        assert (await upload(client, tenant.headers, message_id, b"x" * 11)).status_code == 413


class TestList:
    async def test_lists_the_message_attachments_in_order(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        _, other_message = await make_message(app, client, tenant)
        first = (await upload(client, tenant.headers, message_id, file_name="a.pdf")).json()
        second = (await upload(client, tenant.headers, message_id, file_name="b.pdf")).json()
        await upload(client, tenant.headers, other_message)
        response = await client.get(f"/api/TicketMessages/{message_id}/attachments", headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == [first, second]

    async def test_empty_list(self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
        _, message_id = await make_message(app, client, tenant)
        response = await client.get(f"/api/TicketMessages/{message_id}/attachments", headers=tenant.headers)
        assert response.status_code == 200 and response.json() == []


class TestDownload:
    async def test_whole_file_with_headers(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        data = bytes(range(256)) * 4
        token = (await upload(client, tenant.headers, message_id, data, "scan.png", "image/png")).json()[
            "accessToken"
        ]
        response = await client.get(f"/api/File/{token}")  # no credentials: the token is one
        assert response.status_code == 200 and response.content == data
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-length"] == str(len(data))
        assert (
            response.headers["content-disposition"]
            == "inline; filename=\"scan.png\"; filename*=UTF-8''scan.png"
        )
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["x-content-type-options"] == "nosniff"

    async def test_byte_ranges(self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
        _, message_id = await make_message(app, client, tenant)
        data = bytes(range(256)) * 4
        token = (await upload(client, tenant.headers, message_id, data)).json()["accessToken"]
        url = f"/api/File/{token}"
        part = await client.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        assert part.headers["content-length"] == "100"
        suffix = await client.get(url, headers={"Range": "bytes=-10"})
        assert suffix.status_code == 206 and suffix.content == data[-10:]
        open_ended = await client.get(url, headers={"Range": "bytes=1000-"})
        assert open_ended.status_code == 206 and open_ended.content == data[1000:]
        past_end = await client.get(url, headers={"Range": "bytes=1000-5000"})
        assert past_end.status_code == 206 and past_end.content == data[1000:]
        ignored = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
        assert ignored.status_code == 200 and ignored.content == data
        stale = await client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
        assert stale.status_code == 200

    async def test_range_outside_the_file_is_416(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        token = (await upload(client, tenant.headers, message_id, b"0123456789")).json()["accessToken"]
        response = await client.get(f"/api/File/{token}", headers={"Range": "bytes=10-20"})
        assert response.status_code == 416
        assert response.headers["content-range"] == "bytes */10"
        assert response.json()["code"] == "RANGE_NOT_SATISFIABLE"

    @pytest.mark.parametrize("token", [str(uuid.uuid4()), "not-a-uuid", "0" * 64])
    async def test_wrong_token_is_404(self, client: httpx.AsyncClient, token: str) -> None:
        response = await client.get(f"/api/File/{token}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_active_content_is_a_download_never_rendered(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        for name, ctype in [
            ("x.html", "text/html"),
            ("x.svg", "image/svg+xml"),
            ("x.xml", "application/xml"),
        ]:
            body = b"<script>alert(1)</script>"
            token = (await upload(client, tenant.headers, message_id, body, name, ctype)).json()[
                "accessToken"
            ]
            response = await client.get(f"/api/File/{token}")
            assert response.headers["content-type"] == ctype  # as given: nothing sniffed, nothing changed
            assert response.headers["content-disposition"].startswith("attachment;")
            assert response.headers["x-content-type-options"] == "nosniff"

    @pytest.mark.parametrize(
        ("given", "fallback", "encoded"),
        [
            ('evil"\r\nSet-Cookie: a=b.txt', "evil_Set-Cookie: a=b.txt", "evil%22Set-Cookie%3A%20a%3Db.txt"),
            ("résumé ☃.pdf", "resume _.pdf", "r%C3%A9sum%C3%A9%20%E2%98%83.pdf"),
            ("a\\b;c.txt", "b_c.txt", None),
        ],
    )
    async def test_file_names_cannot_inject_headers(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        given: str,
        fallback: str,
        encoded: str | None,
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        escaped = given.replace('"', "%22")
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{escaped}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        if '"' in given:  # a quote as a browser would send it: raw UTF-8, the quote escaped
            head = head.replace(b"%22", b'\\"')
        if "\r\n" in given:  # the header parser ends a header at CRLF: send the worst it can carry
            head = head.replace(b"\r\nSet-Cookie", b"\x0bSet-Cookie")
        uploaded = await upload_raw(client, tenant.headers, message_id, head + b"hi" + multipart_tail())
        assert uploaded.status_code == 201, uploaded.text
        response = await client.get(f"/api/File/{uploaded.json()['accessToken']}")
        disposition = response.headers["content-disposition"]
        assert "\r" not in disposition and "\n" not in disposition and "set-cookie" not in response.headers
        assert disposition.count('"') == 2
        quoted = disposition.split('filename="', 1)[1].split('"', 1)[0]
        assert "\\" not in quoted and ";" not in quoted
        if encoded is not None:
            assert disposition.endswith("filename*=UTF-8''" + encoded)
        if "\r\n" not in given:
            assert quoted == fallback

    async def test_deleted_attachment_token_is_404(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        body = (await upload(client, tenant.headers, message_id)).json()
        url = f"/api/TicketMessages/{message_id}/attachments/{body['ticketMessageAttachmentID']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert (await client.get(f"/api/File/{body['accessToken']}")).status_code == 404


class TestDelete:
    async def test_delete_removes_the_row_now_and_the_bytes_by_a_job(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        body = (await upload(client, tenant.headers, message_id)).json()
        [row] = await stored_rows(app, tenant)
        url = f"/api/TicketMessages/{message_id}/attachments/{body['ticketMessageAttachmentID']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert await stored_rows(app, tenant) == []
        assert await app.state.storage.exists(row.storage_key)  # until the job runs
        await run_jobs_until_idle(app)
        assert not await app.state.storage.exists(row.storage_key)
        assert (await client.delete(url, headers=tenant.headers)).status_code == 404

    async def test_attachment_of_another_message_is_404(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        _, other_message = await make_message(app, client, tenant)
        body = (await upload(client, tenant.headers, message_id)).json()
        url = f"/api/TicketMessages/{other_message}/attachments/{body['ticketMessageAttachmentID']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 404

    async def test_deleting_the_ticket_removes_its_attachment_bytes(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket_id, message_id = await make_message(app, client, tenant)
        await upload(client, tenant.headers, message_id)
        token = (await upload(client, tenant.headers, message_id)).json()["accessToken"]
        assert len(await stored_blobs(app, tenant)) == 2
        assert (await client.delete(f"/api/Tickets/{ticket_id}", headers=tenant.headers)).status_code == 204
        assert await stored_rows(app, tenant) == []
        assert (await client.get(f"/api/File/{token}")).status_code == 404
        await run_jobs_until_idle(app)
        assert await stored_blobs(app, tenant) == set()

    async def test_deleting_the_message_removes_its_attachment_bytes(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        _, other_message = await make_message(app, client, tenant)
        await upload(client, tenant.headers, message_id)
        kept = (await upload(client, tenant.headers, other_message)).json()
        response = await client.delete(f"/api/TicketMessages/{message_id}", headers=tenant.headers)
        assert response.status_code == 204, response.text
        await run_jobs_until_idle(app)
        [row] = await stored_rows(app, tenant)
        assert row.ticket_message_attachment_id == kept["ticketMessageAttachmentID"]
        assert await stored_blobs(app, tenant) == {row.storage_key}

    async def test_bulk_delete_removes_attachment_bytes(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket_id, message_id = await make_message(app, client, tenant)
        await upload(client, tenant.headers, message_id)
        response = await client.put(
            "/api/Tickets/bulk", json={"ticketIDs": [ticket_id], "action": "delete"}, headers=tenant.headers
        )
        assert response.status_code == 204, response.text
        await run_jobs_until_idle(app)
        assert await stored_blobs(app, tenant) == set()


class TestAccess:
    @pytest.mark.parametrize(
        ("role", "assigned_to_other", "read", "write"),
        [
            (Role.ADMIN, True, 200, 201),
            (Role.AGENT, False, 200, 201),
            (Role.AGENT, True, 404, 404),
            (Role.RESTRICTED, False, 404, 404),  # unassigned: not theirs
            (Role.VIEWER, True, 200, 403),
        ],
    )
    async def test_role_matrix(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        role: Role,
        assigned_to_other: bool,
        read: int,
        write: int,
    ) -> None:
        fields = {"customerRepID": tenant.admin_rep_id} if assigned_to_other else {}
        _, message_id = await make_message(app, client, tenant, **fields)
        existing = (await upload(client, tenant.headers, message_id)).json()
        headers = await tenant.headers_for(role)
        base = f"/api/TicketMessages/{message_id}/attachments"
        assert (await client.get(base, headers=headers)).status_code == read
        assert (await upload(client, headers, message_id)).status_code == write
        deleted = await client.delete(f"{base}/{existing['ticketMessageAttachmentID']}", headers=headers)
        assert deleted.status_code == (204 if write == 201 else write)

    async def test_restricted_rep_reaches_own_ticket(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        headers = await tenant.headers_for(Role.RESTRICTED)
        _, message_id = await make_message(app, client, tenant, customerRepID=tenant.rep_ids[Role.RESTRICTED])
        assert (await upload(client, headers, message_id)).status_code == 201

    async def test_phone_auth_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        from tests.tickets.helpers import create_channel

        channel = await create_channel(client, tenant, "Phone")
        phone = {"Authorization": f"Bearer {channel['phoneAuthToken']}"}
        _, message_id = await make_message(
            app, client, tenant, channelType="Phone", channelID=channel["channelID"]
        )
        base = f"/api/TicketMessages/{message_id}/attachments"
        for response in (await client.get(base, headers=phone), await upload(client, phone, message_id)):
            assert response.status_code == 403 and response.json()["code"] == "PHONE_AUTH_NOT_ALLOWED"

    async def test_no_credentials_is_401(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        assert (await client.get(f"/api/TicketMessages/{message_id}/attachments")).status_code == 401

    async def test_other_customer_gets_404(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        body = (await upload(client, tenant.headers, message_id)).json()
        base = f"/api/TicketMessages/{message_id}/attachments"
        assert (await client.get(base, headers=other_tenant.headers)).status_code == 404
        assert (await upload(client, other_tenant.headers, message_id)).status_code == 404
        url = f"{base}/{body['ticketMessageAttachmentID']}"
        assert (await client.delete(url, headers=other_tenant.headers)).status_code == 404
        assert await stored_rows(app, other_tenant) == [] and await stored_blobs(app, other_tenant) == set()


class TestUploadHoldsNoWriteLock:
    """Streaming a body must not hold the request's write transaction: on SQLite every other writer
    of the process would wait for a slow client (the row is written after the bytes)."""

    async def test_a_write_goes_through_while_an_upload_stalls_mid_body(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        release = asyncio.Event()
        sent_head = asyncio.Event()

        async def stalling_body() -> AsyncIterator[bytes]:
            yield multipart_head("slow.bin", "application/octet-stream")
            yield b"x" * 1000
            sent_head.set()
            await release.wait()
            yield b"y" * 1000
            yield multipart_tail()

        headers = {**tenant.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        uploading = asyncio.create_task(
            client.post(
                f"/api/TicketMessages/{message_id}/attachments", content=stalling_body(), headers=headers
            )
        )
        await asyncio.wait_for(sent_head.wait(), timeout=10)
        await asyncio.sleep(0.05)
        write = await asyncio.wait_for(
            client.post(
                "/api/Tickets",
                json={"status": "Open", "subject": "Meanwhile", "channelType": "Email"},
                headers=tenant.headers,
            ),
            timeout=10,
        )
        assert write.status_code == 201, write.text
        assert not uploading.done()
        release.set()
        response = await asyncio.wait_for(uploading, timeout=10)
        assert response.status_code == 201, response.text
        assert response.json()["fileSizeBytes"] == 2000
