"""/api/Channels"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from deskpal.channels import service
from deskpal.channels.models import ChannelType
from deskpal.channels.schemas import (
    ChannelCreatedDTO,
    ChannelCreateDTO,
    ChannelDTO,
    ChannelUpdateDTO,
    PhoneAuthTokenDTO,
)
from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page

router = mount(APIRouter(prefix="/api/Channels", tags=["Channels"]), rank=90)

Read = Annotated[Ctx, require(Perm.SETTINGS_READ)]
Write = Annotated[Ctx, require(Perm.SETTINGS_WRITE)]


@router.get("", response_model=Page[ChannelDTO])
async def list_channels(
    ctx: Read,
    paging: Annotated[PageParams, Depends(page_params)],
    channel_type: Annotated[ChannelType | None, Query(alias="channelType")] = None,
) -> Page[ChannelDTO]:
    result = await service.list_channels(ctx, paging, channel_type=channel_type)
    status = await service.type_status(ctx, result.items)
    return to_page(result, lambda channel: service.to_dto(channel, status))


@router.get("/{id}", response_model=ChannelDTO)
async def get_channel(ctx: Read, id: IdPath) -> ChannelDTO:
    channel = await service.get_channel(ctx, id)
    return service.to_dto(channel, await service.type_status(ctx, [channel]))


@router.post("", response_model=ChannelCreatedDTO, status_code=201)
async def create_channel(ctx: Write, body: ChannelCreateDTO) -> ChannelCreatedDTO:
    channel, phone_token = await service.create_channel(ctx, body)
    dto = service.to_dto(channel, await service.type_status(ctx, [channel]))
    return ChannelCreatedDTO(**dto.model_dump(), phone_auth_token=phone_token)


@router.put("/{id}", response_model=ChannelDTO)
async def update_channel(ctx: Write, id: IdPath, body: ChannelUpdateDTO) -> ChannelDTO:
    channel = await service.update_channel(ctx, id, body)
    return service.to_dto(channel, await service.type_status(ctx, [channel]))


@router.post("/{id}/phone-auth-token", response_model=PhoneAuthTokenDTO)
async def rotate_phone_auth_token(ctx: Write, id: IdPath) -> PhoneAuthTokenDTO:
    """A new phoneAuthToken for a Phone channel; the old one stops working at once."""
    return PhoneAuthTokenDTO(phone_auth_token=await service.rotate_phone_token(ctx, id))


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_channel(ctx: Write, id: IdPath) -> None:
    await service.delete_channel(ctx, id)
