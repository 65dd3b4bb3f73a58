"""/api/EmailTemplates"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page
from deskpal.email import service
from deskpal.email.schemas import EmailTemplateDTO, EmailTemplateWriteDTO

router = mount(APIRouter(prefix="/api/EmailTemplates", tags=["EmailTemplates"]), rank=100)

Read = Annotated[Ctx, require(Perm.SETTINGS_READ)]
Write = Annotated[Ctx, require(Perm.SETTINGS_WRITE)]


@router.get("", response_model=Page[EmailTemplateDTO])
async def list_email_templates(
    ctx: Read, paging: Annotated[PageParams, Depends(page_params)]
) -> Page[EmailTemplateDTO]:
    return to_page(await service.list_templates(ctx, paging), EmailTemplateDTO.model_validate)


@router.get("/{id}", response_model=EmailTemplateDTO)
async def get_email_template(ctx: Read, id: IdPath) -> EmailTemplateDTO:
    return EmailTemplateDTO.model_validate(await service.get_template(ctx, id))


@router.post("", response_model=EmailTemplateDTO, status_code=201)
async def create_email_template(ctx: Write, body: EmailTemplateWriteDTO) -> EmailTemplateDTO:
    return EmailTemplateDTO.model_validate(await service.create_template(ctx, body))


@router.put("/{id}", status_code=204, response_class=Response)
async def update_email_template(ctx: Write, id: IdPath, body: EmailTemplateWriteDTO) -> None:
    await service.update_template(ctx, id, body)


@router.delete("/{id}", status_code=204, response_class=Response)
async def delete_email_template(ctx: Write, id: IdPath) -> None:
    await service.delete_template(ctx, id)
