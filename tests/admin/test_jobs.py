"""/api/Jobs: admins see the queue and send dead jobs round again."""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from deskpal.core.db import transaction
from deskpal.core.jobs import JobContext, enqueue, job
from tests.admin.helpers import NON_ADMIN_ROLES, invalid, problem
from tests.support import Tenant, db_of, run_jobs_until_idle


class FailPayload(BaseModel):
    reason: str = "boom"


@job("test.fail", payload=FailPayload, max_attempts=1)
async def always_fails(job: JobContext, payload: FailPayload) -> None:
    raise RuntimeError(payload.reason)


async def _dead_job(app: object, tenant: Tenant) -> int:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        row = await enqueue(db, "test.fail", FailPayload(reason="kaput"))
        job_id = row.job_id
    await run_jobs_until_idle(app)
    return job_id


class TestListJobs:
    async def test_lists_and_filters_by_status(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        job_id = await _dead_job(app, tenant)
        dead = (await client.get("/api/Jobs?status=dead", headers=tenant.headers)).json()
        assert [j["jobID"] for j in dead["items"]] == [job_id]
        assert dead["items"][0]["kind"] == "test.fail"
        assert "kaput" in dead["items"][0]["lastError"]
        assert (await client.get("/api/jobs?status=queued", headers=tenant.headers)).json()["items"] == []
        invalid(await client.get("/api/Jobs?status=exploded", headers=tenant.headers), "status")

    async def test_non_admins_cannot_see_jobs(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        job_id = await _dead_job(app, tenant)
        for role in NON_ADMIN_ROLES:
            headers = await tenant.headers_for(role)
            problem(await client.get("/api/Jobs", headers=headers), 403, "FORBIDDEN")
            problem(await client.get(f"/api/Jobs/{job_id}", headers=headers), 403, "FORBIDDEN")
            problem(await client.post(f"/api/Jobs/{job_id}/retry", headers=headers), 403, "FORBIDDEN")
        problem(await client.get("/api/Jobs"), 401, "UNAUTHORIZED")


class TestGetJob:
    async def test_returns_the_job_and_hides_it_from_other_tenants(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        job_id = await _dead_job(app, tenant)
        got = (await client.get(f"/api/Jobs/{job_id}", headers=tenant.headers)).json()
        assert (got["jobID"], got["status"], got["attempts"], got["maxAttempts"]) == (job_id, "dead", 1, 1)
        assert got["payload"] == {"reason": "kaput"}
        problem(await client.get(f"/api/Jobs/{job_id}", headers=other_tenant.headers), 404, "NOT_FOUND")
        problem(
            await client.post(f"/api/Jobs/{job_id}/retry", headers=other_tenant.headers), 404, "NOT_FOUND"
        )
        assert (await client.get("/api/Jobs", headers=other_tenant.headers)).json()["items"] == []


class TestRetryJob:
    async def test_dead_job_is_queued_again_and_runs(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        job_id = await _dead_job(app, tenant)
        r = await client.post(f"/api/Jobs/{job_id}/retry", headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["attempts"], r.json()["finishedAt"]) == ("queued", 0, None)
        assert await run_jobs_until_idle(app) == 1
        again = (await client.get(f"/api/Jobs/{job_id}", headers=tenant.headers)).json()
        assert (again["status"], again["attempts"]) == ("dead", 1)

    async def test_job_that_is_not_dead_is_409(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        job_id = await _dead_job(app, tenant)
        await client.post(f"/api/Jobs/{job_id}/retry", headers=tenant.headers)
        problem(await client.post(f"/api/Jobs/{job_id}/retry", headers=tenant.headers), 409, "JOB_NOT_DEAD")

    async def test_unknown_job_is_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        problem(await client.post("/api/Jobs/987654/retry", headers=tenant.headers), 404, "NOT_FOUND")
