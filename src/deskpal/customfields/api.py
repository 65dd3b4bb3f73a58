"""/api/CustomFieldDefinitions"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page
from deskpal.customfields import service
from deskpal.customfields.models import EntityType
from deskpal.customfields.schemas import CustomFieldDefinitionDTO, CustomFieldDefinitionWriteDTO

router = mount(APIRouter(prefix="/api/CustomFieldDefinitions", tags=["CustomFieldDefinitions"]), rank=120)

Read = Annotated[Ctx, require(Perm.SETTINGS_READ)]
Write = Annotated[Ctx, require(Perm.SETTINGS_WRITE)]
DTO = CustomFieldDefinitionDTO


@router.get("", response_model=Page[DTO])
async def list_definitions(
    ctx: Read,
    paging: Annotated[PageParams, Depends(page_params)],
    entity_type: Annotated[EntityType | None, Query(alias="entityType")] = None,
) -> Page[DTO]:
    return to_page(await service.list_definitions(ctx, paging, entity_type=entity_type), DTO.model_validate)


@router.get("/{id}", response_model=DTO)
async def get_definition(ctx: Read, id: IdPath) -> DTO:
    return DTO.model_validate(await service.get_definition(ctx, id))


@router.post("", response_model=DTO, status_code=201)
async def create_definition(ctx: Write, body: CustomFieldDefinitionWriteDTO) -> DTO:
    return DTO.model_validate(await service.create_definition(ctx, body))


@router.put("/{id}", response_model=DTO)
async def update_definition(ctx: Write, id: IdPath, body: CustomFieldDefinitionWriteDTO) -> DTO:
    return DTO.model_validate(await service.update_definition(ctx, id, body))


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_definition(ctx: Write, id: IdPath) -> None:
    await service.delete_definition(ctx, id)
