"""Blob removal: the sweeper removes old blobs no row references, and only those."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from deskpal.core.jobs import JobRow, JobStatus
from deskpal.storage import LocalStorage, Storage
from deskpal.storage.jobs import DeleteBlobs, Sweep
from tests.attachments.helpers import make_message, upload
from tests.cross_tenant import in_tenant
from tests.support import Tenant, db_of, run_jobs_until_idle


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _age(storage: LocalStorage, key: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(storage.path_of(key), (then, then))


async def _sweeps(app: FastAPI, tenant: Tenant) -> list[JobRow]:
    async def find(ctx: object) -> list[JobRow]:
        stmt = select(JobRow).where(JobRow.kind == "storage.sweep", JobRow.status == JobStatus.QUEUED)
        return list((await ctx.db.scalars(stmt)).all())  # type: ignore[attr-defined]

    result: list[JobRow] = await in_tenant(app, tenant, find)
    return result


class TestSweep:
    async def test_removes_old_orphans_and_keeps_young_and_referenced_blobs(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, storage: LocalStorage
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        await upload(client, tenant.headers, message_id)
        [kept] = [i.key async for i in storage.list(f"attachments/{tenant.customer_id}")]
        old_orphan = (await storage.put(f"attachments/{tenant.customer_id}", _bytes(b"o"), max_bytes=9)).key
        young_orphan = (await storage.put(f"attachments/{tenant.customer_id}", _bytes(b"y"), max_bytes=9)).key
        old_recording = (await storage.put(f"recordings/{tenant.customer_id}", _bytes(b"r"), max_bytes=9)).key
        for key in (kept, old_orphan, old_recording):
            _age(storage, key, 2 * 3600)

        async def enqueue(ctx: object) -> None:
            await ctx.enqueue("storage.sweep", Sweep(storage=storage.locator))  # type: ignore[attr-defined]

        await in_tenant(app, tenant, enqueue)
        await run_jobs_until_idle(app)
        assert await storage.exists(kept) and await storage.exists(young_orphan)
        assert not await storage.exists(old_orphan) and not await storage.exists(old_recording)

    async def test_an_upload_starts_one_sweep_chain_per_customer(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        await upload(client, tenant.headers, message_id)
        await upload(client, tenant.headers, message_id)
        [sweep] = await _sweeps(app, tenant)
        assert sweep.payload["storage"] == app.state.storage.locator
        assert (sweep.run_at - sweep.created_at).total_seconds() >= 3599

    async def test_a_sweep_schedules_the_next(self, app: FastAPI, tenant: Tenant, storage: Storage) -> None:
        async def enqueue(ctx: object) -> None:
            await ctx.enqueue("storage.sweep", Sweep(storage=storage.locator, grace_seconds=120))  # type: ignore[attr-defined]

        await in_tenant(app, tenant, enqueue)
        await run_jobs_until_idle(app)
        [following] = await _sweeps(app, tenant)
        assert following.payload["grace_seconds"] == 120

    async def test_never_touches_another_customers_blobs(
        self, app: FastAPI, tenant: Tenant, other_tenant: Tenant, storage: LocalStorage
    ) -> None:
        theirs = (await storage.put(f"attachments/{other_tenant.customer_id}", _bytes(b"t"), max_bytes=9)).key
        _age(storage, theirs, 2 * 3600)

        async def enqueue(ctx: object) -> None:
            await ctx.enqueue("storage.sweep", Sweep(storage=storage.locator))  # type: ignore[attr-defined]
            await ctx.enqueue("storage.delete_blobs", DeleteBlobs(storage=storage.locator, keys=[theirs]))  # type: ignore[attr-defined]

        await in_tenant(app, tenant, enqueue)
        await run_jobs_until_idle(app)
        assert await storage.exists(theirs)


class TestDeleteBlobs:
    async def test_a_key_still_referenced_is_kept(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, storage: Storage
    ) -> None:
        _, message_id = await make_message(app, client, tenant)
        await upload(client, tenant.headers, message_id)
        [key] = [i.key async for i in storage.list(f"attachments/{tenant.customer_id}")]

        async def enqueue(ctx: object) -> None:
            await ctx.enqueue("storage.delete_blobs", DeleteBlobs(storage=storage.locator, keys=[key]))  # type: ignore[attr-defined]

        await in_tenant(app, tenant, enqueue)
        await run_jobs_until_idle(app)
        assert await storage.exists(key)
        assert db_of(app) is app.state.db
