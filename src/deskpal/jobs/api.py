"""/api/Jobs (admins)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from deskpal.core.context import Ctx
from deskpal.core.jobs import JobStatus
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page
from deskpal.jobs import service
from deskpal.jobs.schemas import JobDTO

router = mount(APIRouter(prefix="/api/Jobs", tags=["Jobs"]), rank=130)

Admin = Annotated[Ctx, require(Perm.JOBS_ADMIN)]


@router.get("", response_model=Page[JobDTO])
async def list_jobs(
    ctx: Admin,
    paging: Annotated[PageParams, Depends(page_params)],
    status: Annotated[JobStatus | None, Query()] = None,
) -> Page[JobDTO]:
    return to_page(await service.list_jobs(ctx, paging, status=status), JobDTO.model_validate)


@router.get("/{id}", response_model=JobDTO)
async def get_job(ctx: Admin, id: IdPath) -> JobDTO:
    return JobDTO.model_validate(await service.get_job(ctx, id))


@router.post("/{id}/retry", response_model=JobDTO)
async def retry_job(ctx: Admin, id: IdPath) -> JobDTO:
    return JobDTO.model_validate(await service.retry_job(ctx, id))
