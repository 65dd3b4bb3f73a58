"""/api/CustomerReps"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page
from deskpal.customers import service
from deskpal.customers.schemas import CustomerRepCreateDTO, CustomerRepDTO, CustomerRepUpdateDTO

router = mount(APIRouter(prefix="/api/CustomerReps", tags=["CustomerReps"]), rank=110)

Read = Annotated[Ctx, require(Perm.SETTINGS_READ)]
Write = Annotated[Ctx, require(Perm.SETTINGS_WRITE)]


@router.get("", response_model=Page[CustomerRepDTO])
async def list_reps(ctx: Read, paging: Annotated[PageParams, Depends(page_params)]) -> Page[CustomerRepDTO]:
    return to_page(await service.list_reps(ctx, paging), CustomerRepDTO.model_validate)


@router.get("/{id}", response_model=CustomerRepDTO)
async def get_rep(ctx: Read, id: IdPath) -> CustomerRepDTO:
    return CustomerRepDTO.model_validate(await service.get_rep(ctx, id))


@router.post("", response_model=CustomerRepDTO, status_code=201)
async def create_rep(ctx: Write, body: CustomerRepCreateDTO) -> CustomerRepDTO:
    return CustomerRepDTO.model_validate(await service.create_rep(ctx, body))


@router.put("/{id}", response_model=CustomerRepDTO)
async def update_rep(ctx: Write, id: IdPath, body: CustomerRepUpdateDTO) -> CustomerRepDTO:
    return CustomerRepDTO.model_validate(await service.update_rep(ctx, id, body))


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_rep(ctx: Write, id: IdPath) -> None:
    await service.delete_rep(ctx, id)
