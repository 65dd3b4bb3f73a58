"""A mail that cannot be filed: kept failed with its raw bytes and a readable error, listed,
downloadable and retryable, and never in the way of the mails after it."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from deskpal.email.inbound.receive import RECEIVE_KIND
from tests.mail_in_pipeline.helpers import inbound_mail, jobs, raw_mail, received, rows
from tests.support import Tenant, run_jobs_until_idle


class TestFailedMail:
    async def test_a_mail_whose_bytes_went_missing_fails_is_listed_and_retried_once_they_are_back(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        storage = app.state.storage
        broken_raw = raw_mail(subject="first")
        broken = await received(client, tenant, mail_channel["channelID"], broken_raw)
        after = await received(client, tenant, mail_channel["channelID"], raw_mail(subject="second"))
        [row, _] = await rows(app, tenant)
        path = storage.path_of(row.storage_key)
        path.unlink()  # a storage outage, a restore from an older backup

        await run_jobs_until_idle(app)
        failed = await inbound_mail(client, tenant, broken["inboundMailID"])
        assert failed["status"] == "failed" and failed["messageID"] is None
        assert "missing from storage" in failed["error"]
        # The mail after it went in regardless.
        assert (await inbound_mail(client, tenant, after["inboundMailID"]))["status"] == "stored"
        listed = await client.get("/api/InboundMails?status=failed", headers=tenant.headers)
        assert [m["inboundMailID"] for m in listed.json()["items"]] == [broken["inboundMailID"]]

        path.write_bytes(broken_raw)  # the bytes restored
        r = await client.post(f"/api/InboundMails/{broken['inboundMailID']}/retry", headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending" and r.json()["error"] is None
        await run_jobs_until_idle(app)
        retried = await inbound_mail(client, tenant, broken["inboundMailID"])
        assert retried["status"] == "stored" and retried["messageID"] is not None
        assert retried["attempts"] == 2
        assert len(await jobs(app, tenant, RECEIVE_KIND)) == 3  # two first runs, one retry

    async def test_only_a_failed_mail_is_retried(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        answer = await received(client, tenant, mail_channel["channelID"], raw_mail())
        r = await client.post(f"/api/InboundMails/{answer['inboundMailID']}/retry", headers=tenant.headers)
        assert r.status_code == 409 and r.json()["code"] == "NOT_RETRYABLE"
        await run_jobs_until_idle(app)
        r = await client.post(f"/api/InboundMails/{answer['inboundMailID']}/retry", headers=tenant.headers)
        assert r.status_code == 409
