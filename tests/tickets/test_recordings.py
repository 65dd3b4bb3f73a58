"""Call recordings: attach through the API, play with Range support."""

from __future__ import annotations

import httpx
import pytest

from deskpal.core.context import Role
from deskpal.tickets import recordings
from tests.support import Tenant, db_of, run_jobs_until_idle
from tests.tickets.helpers import create_ticket

AUDIO = bytes(range(256)) * 40  # 10 KiB


async def _phone_ticket(client: httpx.AsyncClient, tenant: Tenant) -> int:
    return int((await create_ticket(client, tenant.headers, channelType="Phone"))["ticketID"])


async def _upload(
    client: httpx.AsyncClient, tenant: Tenant, ticket_id: int, body: bytes = AUDIO, ctype: str = "audio/mpeg"
) -> httpx.Response:
    return await client.put(
        f"/api/Tickets/{ticket_id}/recording", content=body, headers={**tenant.headers, "Content-Type": ctype}
    )


class TestRecordings:
    async def test_upload_then_play_whole_and_by_range(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket_id = await _phone_ticket(client, tenant)
        uploaded = await _upload(client, tenant, ticket_id)
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["hasRecording"] is True
        whole = await client.get(f"/api/Tickets/{ticket_id}/play", headers=tenant.headers)
        assert whole.status_code == 200
        assert whole.content == AUDIO and whole.headers["content-type"] == "audio/mpeg"
        assert whole.headers["accept-ranges"] == "bytes"
        part = await client.get(
            f"/api/Tickets/{ticket_id}/play", headers={**tenant.headers, "Range": "bytes=100-199"}
        )
        assert part.status_code == 206
        assert part.content == AUDIO[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(AUDIO)}"

    async def test_play_without_recording_is_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket_id = await _phone_ticket(client, tenant)
        response = await client.get(f"/api/Tickets/{ticket_id}/play", headers=tenant.headers)
        assert response.status_code == 404 and response.json()["code"] == "NO_RECORDING"

    async def test_only_audio_on_phone_tickets(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket_id = await _phone_ticket(client, tenant)
        assert (await _upload(client, tenant, ticket_id, ctype="text/plain")).status_code == 415
        email = (await create_ticket(client, tenant.headers))["ticketID"]
        response = await _upload(client, tenant, email)
        assert response.status_code == 422 and response.json()["code"] == "NOT_A_PHONE_TICKET"

    async def test_oversized_recording_is_413_and_leaves_nothing(
        self, client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, app: object
    ) -> None:
        monkeypatch.setattr(recordings, "MAX_RECORDING_BYTES", 1000)
        ticket_id = await _phone_ticket(client, tenant)
        before = await _stored(app, tenant)
        response = await _upload(client, tenant, ticket_id)
        assert response.status_code == 413
        assert await _stored(app, tenant) == before
        got = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
        assert got.json()["hasRecording"] is False

    async def test_viewer_plays_but_cannot_upload(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket_id = await _phone_ticket(client, tenant)
        await _upload(client, tenant, ticket_id)
        viewer = await tenant.headers_for(Role.VIEWER)
        assert (await client.get(f"/api/Tickets/{ticket_id}/play", headers=viewer)).status_code == 200
        response = await client.put(
            f"/api/Tickets/{ticket_id}/recording",
            content=AUDIO,
            headers={**viewer, "Content-Type": "audio/wav"},
        )
        assert response.status_code == 403

    async def test_replaced_and_deleted_recordings_leave_no_file(
        self, client: httpx.AsyncClient, tenant: Tenant, app: object
    ) -> None:
        from deskpal.tickets.models import Ticket

        storage = app.state.storage  # type: ignore[attr-defined]
        ticket_id = await _phone_ticket(client, tenant)

        await _upload(client, tenant, ticket_id)
        first = await _stored_key(app, tenant, ticket_id, Ticket)
        await _upload(client, tenant, ticket_id, body=b"second")
        second = await _stored_key(app, tenant, ticket_id, Ticket)
        await run_jobs_until_idle(app)
        assert first and second
        assert not await storage.exists(first) and await storage.exists(second)
        assert (await client.delete(f"/api/Tickets/{ticket_id}", headers=tenant.headers)).status_code == 204
        await run_jobs_until_idle(app)
        assert not await storage.exists(second)


async def _stored(app: object, tenant: Tenant) -> set[str]:
    storage = app.state.storage  # type: ignore[attr-defined]
    prefix = f"{recordings.AREA}/{tenant.customer_id}"
    return {info.key async for info in storage.list(prefix)}


async def _stored_key(app: object, tenant: Tenant, ticket_id: int, model: type) -> str | None:
    from deskpal.core.db import transaction

    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        row = await db.get(model, ticket_id)
        return row.recording_key if row else None
