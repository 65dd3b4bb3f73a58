"""Admin view of the job queue: see what failed, and send a dead job round again."""

from __future__ import annotations

from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.db import utcnow
from deskpal.core.errors import Conflict
from deskpal.core.jobs import JobRow, JobStatus
from deskpal.core.schemas import PageParams, PageResult, paginate


async def list_jobs(ctx: Ctx, params: PageParams, *, status: JobStatus | None = None) -> PageResult[JobRow]:
    stmt = select(JobRow).order_by(JobRow.job_id.desc())
    if status is not None:
        stmt = stmt.where(JobRow.status == status.value)
    return await paginate(ctx.db, stmt, params)


async def get_job(ctx: Ctx, job_id: int) -> JobRow:
    return await get_or_404(ctx.db, JobRow, job_id, what="job")


async def retry_job(ctx: Ctx, job_id: int) -> JobRow:
    job = await get_job(ctx, job_id)
    if job.status != JobStatus.DEAD:
        raise Conflict(f"job {job_id} is {job.status}; only dead jobs can be retried", code="JOB_NOT_DEAD")
    job.status, job.attempts, job.run_at, job.finished_at = JobStatus.QUEUED, 0, utcnow(), None
    await ctx.db.flush()
    return job
