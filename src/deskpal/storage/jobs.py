"""Removing blobs no row needs: after a delete (a job in the deleting transaction), and a sweeper.

Blobs are written before the rows that point at them, so a request that fails after its upload,
or a process that dies between the two, leaves a blob no row references. Every domain that keeps
blobs registers, per key area ("attachments", "recordings"), how to tell which keys its rows still
reference; the sweeper removes the others once they are older than the grace period.

Keys are <area>/<customer id>/<uuid>: a job runs bound to one customer and only ever lists, checks
and deletes that customer's keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.jobs import JobContext, JobRow, JobStatus, job
from deskpal.storage import Storage, storage_for

SWEEP_BATCH = 500
MIN_SWEEP_INTERVAL = 60

ReferenceCheck = Callable[[Ctx, Sequence[str]], Awaitable[set[str]]]
_AREAS: dict[str, ReferenceCheck] = {}


def area(name: str) -> Callable[[ReferenceCheck], ReferenceCheck]:
    """Register the reference check of a key area: given keys, return those rows still use."""

    def register(fn: ReferenceCheck) -> ReferenceCheck:
        _AREAS[name] = fn
        return fn

    return register


def prefix_of(area_name: str, customer_id: int) -> str:
    return f"{area_name}/{customer_id}"


def _owned(ctx: Ctx, key: str) -> str | None:
    """The key's area if the key belongs to ctx's customer and a known area; else None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] in _AREAS and parts[1] == str(ctx.customer_id):
        return parts[0]
    return None


async def referenced(ctx: Ctx, keys: Iterable[str]) -> set[str]:
    by_area: dict[str, list[str]] = {}
    for key in keys:
        if (name := _owned(ctx, key)) is not None:
            by_area.setdefault(name, []).append(key)
    used: set[str] = set()
    for name, wanted in by_area.items():
        used |= await _AREAS[name](ctx, wanted)
    return used


class DeleteBlobs(BaseModel):
    storage: str  # the store's locator: the worker may run in another process
    keys: list[str]


class Sweep(BaseModel):
    storage: str
    grace_seconds: int = 3600


@job("storage.delete_blobs", payload=DeleteBlobs, max_attempts=10)
async def delete_blobs(job: JobContext, p: DeleteBlobs) -> None:
    """Delete blobs whose rows a committed change removed (idempotent: absent blobs are fine)."""
    store = storage_for(p.storage)
    async with job.db(write=False) as ctx:
        keep = await referenced(ctx, p.keys)
        # A key of another customer or of no known area is never touched: the payload is not trusted.
        doomed = [key for key in p.keys if _owned(ctx, key) is not None and key not in keep]
    async with job.call_out():
        for key in doomed:
            await store.delete(key)


@job("storage.sweep", payload=Sweep, max_attempts=3, backoff_seconds=60)
async def sweep(job: JobContext, p: Sweep) -> None:
    """Delete this customer's blobs that no row references and that are older than the grace
    period, then schedule the next sweep (one chain per customer and store).

    The listing and the deletes talk to the store with no transaction open; each batch's reference
    check is a read of its own.
    """
    store = storage_for(p.storage)
    cutoff = utcnow() - timedelta(seconds=p.grace_seconds)
    for name in list(_AREAS):
        batch: list[str] = []
        async for info in store.list(prefix_of(name, job.customer_id)):
            if info.modified_at < cutoff:
                batch.append(info.key)
            if len(batch) >= SWEEP_BATCH:
                await _remove_unreferenced(job, store, batch)
                batch = []
        if batch:
            await _remove_unreferenced(job, store, batch)
    async with job.db() as ctx:
        if not await _queued_sweeps(ctx, p.storage, statuses=(JobStatus.QUEUED,)):
            every = max(p.grace_seconds, MIN_SWEEP_INTERVAL)
            await ctx.enqueue("storage.sweep", p, run_at=utcnow() + timedelta(seconds=every))


async def _remove_unreferenced(job: JobContext, store: Storage, keys: list[str]) -> None:
    async with job.db(write=False) as ctx:
        keep = await referenced(ctx, keys)
    async with job.call_out():
        for key in keys:
            if key not in keep:
                await store.delete(key)


async def _queued_sweeps(ctx: Ctx, locator: str, *, statuses: Sequence[JobStatus]) -> list[int]:
    rows = await ctx.db.execute(
        select(JobRow.job_id, JobRow.payload).where(
            JobRow.kind == "storage.sweep", JobRow.status.in_(statuses)
        )
    )
    return [job_id for job_id, payload in rows.all() if payload.get("storage") == locator]


async def drop_blobs(ctx: Ctx, storage: Storage, keys: Iterable[str | None]) -> None:
    """Delete these blobs once this transaction commits (by a job written in it)."""
    wanted = sorted({k for k in keys if k})
    if wanted:
        await ctx.enqueue("storage.delete_blobs", DeleteBlobs(storage=storage.locator, keys=wanted))


async def ensure_sweep(ctx: Ctx, storage: Storage) -> None:
    """Start this customer's sweeper chain if none is scheduled (called where blobs are written)."""
    if await _queued_sweeps(ctx, storage.locator, statuses=(JobStatus.QUEUED, JobStatus.RUNNING)):
        return
    grace = storage.orphan_grace_seconds
    await ctx.enqueue(
        "storage.sweep",
        Sweep(storage=storage.locator, grace_seconds=grace),
        run_at=utcnow() + timedelta(seconds=grace),
    )
