"""The whole attachment path on the S3 back end, against a local S3-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from deskpal.storage import Storage
from tests.attachments.helpers import make_message, upload
from tests.support import Tenant, run_jobs_until_idle


@pytest.fixture
def on_s3(app: FastAPI, s3_storage: Storage) -> Iterator[Storage]:
    saved = app.state.storage
    app.state.storage = s3_storage
    try:
        yield s3_storage
    finally:
        app.state.storage = saved


class TestOnS3:
    async def test_upload_download_range_and_delete(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, on_s3: Storage
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        data = bytes(range(256)) * 100
        body = (await upload(client, tenant.headers, message_id, data, "log.txt", "text/plain")).json()
        [info] = [i async for i in on_s3.list(f"attachments/{tenant.customer_id}")]
        assert info.size == len(data)
        whole = await client.get(f"/api/File/{body['accessToken']}")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "text/plain"
        part = await client.get(f"/api/File/{body['accessToken']}", headers={"Range": "bytes=-100"})
        assert part.status_code == 206 and part.content == data[-100:]
        url = f"/api/TicketMessages/{message_id}/attachments/{body['ticketMessageAttachmentID']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        await run_jobs_until_idle(app)
        assert not await on_s3.exists(info.key)

    async def test_oversized_upload_leaves_nothing_in_the_bucket(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        on_s3: Storage,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(app.state.settings, "attachment_max_bytes", 1000)
        _, message_id = await make_message(app, client, tenant)
        assert (await upload(client, tenant.headers, message_id, b"x" * 1001)).status_code == 413
        assert [i async for i in on_s3.list(f"attachments/{tenant.customer_id}")] == []
