"""Every deskpal job type that talks to the network does it with no transaction open (both databases).

The storage jobs run against the local S3 server through a proxy that, at each request deskpal
sends, checks from outside that nothing holds a transaction. A test fails for a new job type that is
neither walked here nor exempted with its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.jobs import REGISTRY, JobStatus
from deskpal.core.worker import Worker
from deskpal.storage import register
from deskpal.storage.jobs import DeleteBlobs, Sweep
from deskpal.storage.s3 import S3Storage
from deskpal.tickets.jobs import DeleteRecordings
from tests.core.job_helpers import enqueue_job, open_transactions, read_job
from tests.storage.observing_proxy import ObservingProxy
from tests.storage.s3server import make_bucket
from tests.support import Tenant, db_of

# Job types whose handlers make no network call, and why.
EXEMPT = {
    "system.noop": "does nothing",
    "tickets.delete_recordings": "unlinks files of the local data dir (inside call_out(), tested below)",
}
# The email jobs are walked in tests/mail/test_send.py (TestMailJobsCallOutWithNoTransaction).
WALKED = {"storage.delete_blobs", "storage.sweep", "email.send", "email.escalation_notice", "email.receive"}


def test_every_job_type_of_deskpal_is_walked_or_exempt() -> None:
    from deskpal.job_types import register_all

    register_all()
    ours = {
        kind
        for kind, t in REGISTRY.items()
        if (t.handler or t.batch_handler).__module__.startswith("deskpal.")  # type: ignore[union-attr]
    }
    assert ours == WALKED | set(EXEMPT), "walk a new job type's network step here, or exempt it with a reason"


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Observed:
    """The S3 store as deskpal's jobs see it: every request first checks the database from outside."""

    def __init__(self, app: FastAPI, endpoint: str, loop: asyncio.AbstractEventLoop) -> None:
        self.requests: list[tuple[str, list[str]]] = []
        self._app, self._loop = app, loop
        self.proxy = ObservingProxy(endpoint, self._observe)
        bucket = make_bucket(endpoint)
        self.direct = S3Storage(bucket, "deskpal", endpoint_url=endpoint)  # for the test's own setup
        self.store = register(S3Storage(bucket, "deskpal", endpoint_url=self.proxy.url))

    def _observe(self, line: str) -> None:
        seen = asyncio.run_coroutine_threadsafe(open_transactions(self._app), self._loop).result(timeout=10)
        self.requests.append((line, seen))

    def methods(self) -> set[str]:
        return {line.split()[0] for line, _ in self.requests}

    def held(self) -> list[tuple[str, list[str]]]:
        return [(line, seen) for line, seen in self.requests if seen]


@pytest.fixture
async def observed(app: FastAPI, s3_endpoint: str) -> AsyncIterator[Observed]:
    o = Observed(app, s3_endpoint, asyncio.get_running_loop())
    yield o
    o.proxy.close()
    o.store._client.close()  # type: ignore[attr-defined]
    o.direct._client.close()  # type: ignore[attr-defined]


async def _run_alone(app: FastAPI) -> None:
    await Worker(db_of(app), concurrency=1).run_pending()  # one at a time: observations are its own


class TestStorageJobsCallOutWithNoTransaction:
    async def test_delete_blobs(self, app: FastAPI, tenant: Tenant, observed: Observed) -> None:
        blob = await observed.direct.put(f"attachments/{tenant.customer_id}", _bytes(b"x"), max_bytes=9)
        payload = DeleteBlobs(storage=observed.store.locator, keys=[blob.key]).model_dump()
        job_id = await enqueue_job(app, tenant, "storage.delete_blobs", payload)
        await _run_alone(app)
        assert (await read_job(app, tenant, job_id)).status == JobStatus.DONE
        assert not await observed.direct.exists(blob.key)
        assert "DELETE" in observed.methods()
        assert observed.held() == []

    async def test_sweep(self, app: FastAPI, tenant: Tenant, observed: Observed) -> None:
        orphan = await observed.direct.put(f"attachments/{tenant.customer_id}", _bytes(b"o"), max_bytes=9)
        await asyncio.sleep(0.01)
        payload = Sweep(storage=observed.store.locator, grace_seconds=0).model_dump()
        job_id = await enqueue_job(app, tenant, "storage.sweep", payload)
        await _run_alone(app)
        assert (await read_job(app, tenant, job_id)).status == JobStatus.DONE
        assert not await observed.direct.exists(orphan.key)
        assert {"GET", "DELETE"} <= observed.methods()  # the listing and the delete
        assert observed.held() == []


_MAIL = (
    b"From: Jane <jane@customer.test>\r\nTo: support@files.test\r\nSubject: The invoice\r\n"
    b"Message-ID: <walk-1@customer.test>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nHere it is.\r\n"
    b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="i.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
)


class TestMailInCallsOutWithNoTransaction:
    async def test_email_receive(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, observed: Observed
    ) -> None:
        saved = app.state.storage
        app.state.storage = observed.store  # the raw mail and its attachment go to S3
        try:
            r = await client.post(
                "/api/Channels",
                json={
                    "name": "Walk",
                    "channelType": "Email",
                    "settings": {"fromAddress": "support@files.test"},
                },
                headers=tenant.headers,
            )
            assert r.status_code == 201, r.text
            r = await client.post(
                f"/api/Channels/{r.json()['channelID']}/inbound",
                content=_MAIL,
                headers={**tenant.headers, "Content-Type": "message/rfc822"},
            )
            assert r.status_code == 202, r.text
            observed.requests.clear()  # the request's own upload is not the job's
            await _run_alone(app)
        finally:
            app.state.storage = saved
        got = await client.get(f"/api/InboundMails/{r.json()['inboundMailID']}", headers=tenant.headers)
        assert got.json()["status"] == "stored", got.text
        assert {"GET", "PUT"} <= observed.methods()  # the raw mail read, the attachment stored
        assert observed.held() == []


class TestLegacyRecordingDeletes:
    @pytest.fixture
    def recordings(self, tmp_path: Path, tenant: Tenant) -> Path:
        folder = tmp_path / "recordings" / str(tenant.customer_id)
        folder.mkdir(parents=True)
        return folder

    async def test_unreferenced_files_go_and_odd_keys_are_never_touched(
        self, app: FastAPI, tenant: Tenant, recordings: Path, tmp_path: Path
    ) -> None:
        for name in ("abc123", "def456"):
            (recordings / name).write_bytes(b"r")
        outside = tmp_path / "recordings" / "keep.me"
        outside.write_bytes(b"k")
        payload: dict[str, Any] = DeleteRecordings(
            data_dir=str(tmp_path), keys=["abc123", "def456", "../keep.me"]
        ).model_dump()
        job_id = await enqueue_job(app, tenant, "tickets.delete_recordings", payload)
        await _run_alone(app)
        assert (await read_job(app, tenant, job_id)).status == JobStatus.DONE
        left = await asyncio.to_thread(lambda: sorted(p.name for p in recordings.iterdir()))
        assert left == []
        assert await asyncio.to_thread(outside.exists)
