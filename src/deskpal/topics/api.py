"""/api/Topics"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page
from deskpal.topics import service
from deskpal.topics.schemas import TopicDTO, TopicWriteDTO

router = mount(APIRouter(prefix="/api/Topics", tags=["Topics"]), rank=100)

Read = Annotated[Ctx, require(Perm.SETTINGS_READ)]
Write = Annotated[Ctx, require(Perm.SETTINGS_WRITE)]


@router.get("", response_model=Page[TopicDTO])
async def list_topics(ctx: Read, paging: Annotated[PageParams, Depends(page_params)]) -> Page[TopicDTO]:
    return to_page(await service.list_topics(ctx, paging), TopicDTO.model_validate)


@router.get("/{id}", response_model=TopicDTO)
async def get_topic(ctx: Read, id: IdPath) -> TopicDTO:
    return TopicDTO.model_validate(await service.get_topic(ctx, id))


@router.post("", response_model=TopicDTO, status_code=201)
async def create_topic(ctx: Write, body: TopicWriteDTO) -> TopicDTO:
    return TopicDTO.model_validate(await service.create_topic(ctx, body))


@router.put("/{id}", response_model=TopicDTO)
async def update_topic(ctx: Write, id: IdPath, body: TopicWriteDTO) -> TopicDTO:
    return TopicDTO.model_validate(await service.update_topic(ctx, id, body))


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_topic(ctx: Write, id: IdPath) -> None:
    await service.delete_topic(ctx, id)
