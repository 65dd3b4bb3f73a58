"""/api/EndUsers"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import CleanStr, IdPath, Page, PageParams, page_params, to_page
from deskpal.endusers import service
from deskpal.endusers.schemas import EndUserDTO, EndUserWriteDTO

router = mount(APIRouter(prefix="/api/EndUsers", tags=["EndUsers"]), rank=70)

Read = Annotated[Ctx, require(Perm.SETTINGS_READ)]
Write = Annotated[Ctx, require(Perm.SETTINGS_WRITE)]


@router.get("", response_model=Page[EndUserDTO])
async def list_end_users(
    ctx: Read,
    paging: Annotated[PageParams, Depends(page_params)],
    uid: Annotated[CleanStr | None, Query(max_length=254)] = None,
    email: Annotated[CleanStr | None, Query(max_length=320)] = None,
) -> Page[EndUserDTO]:
    result = await service.list_end_users(ctx, paging, uid=uid, email=email)
    return to_page(result, EndUserDTO.model_validate)


@router.get("/{id}", response_model=EndUserDTO)
async def get_end_user(ctx: Read, id: IdPath) -> EndUserDTO:
    return EndUserDTO.model_validate(await service.get_end_user(ctx, id))


@router.post("", response_model=EndUserDTO, status_code=201)
async def create_end_user(ctx: Write, body: EndUserWriteDTO) -> EndUserDTO:
    return EndUserDTO.model_validate(await service.create_end_user(ctx, body))


@router.put("/{id}", response_model=EndUserDTO)
async def update_end_user(ctx: Write, id: IdPath, body: EndUserWriteDTO) -> EndUserDTO:
    return EndUserDTO.model_validate(await service.update_end_user(ctx, id, body))


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_end_user(ctx: Write, id: IdPath) -> None:
    await service.delete_end_user(ctx, id)
