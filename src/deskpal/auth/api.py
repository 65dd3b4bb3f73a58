"""/api/Auth/login and /api/ApiKeys"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from deskpal.auth import service
from deskpal.auth.schemas import (
    ApiKeyCreatedDTO,
    ApiKeyCreateDTO,
    ApiKeyDTO,
    ApiKeyUpdateDTO,
    LoginDTO,
    LoginResultDTO,
)
from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, credential_free, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath, Page, PageParams, page_params, to_page

router = mount(APIRouter(tags=["Auth"]), rank=80)

Keys = Annotated[Ctx, require(Perm.APIKEYS_OWN)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/api/Auth/login",
    response_model=LoginResultDTO,
    dependencies=[credential_free("exchanges email and password for a token; rate-limited")],
)
async def login(request: Request, body: LoginDTO) -> LoginResultDTO:
    token, expires, rep = await service.login(
        request.app.state.db,
        request.app.state.settings,
        email=body.email,
        password=body.password,
        address=client_address(request),
    )
    return LoginResultDTO(
        token=token, expires_at=expires, customer_rep_id=rep.customer_rep_id, customer_id=rep.customer_id
    )


@router.get("/api/ApiKeys", response_model=Page[ApiKeyDTO], tags=["ApiKeys"])
async def list_api_keys(ctx: Keys, paging: Annotated[PageParams, Depends(page_params)]) -> Page[ApiKeyDTO]:
    return to_page(await service.list_api_keys(ctx, paging), ApiKeyDTO.model_validate)


@router.get("/api/ApiKeys/{id}", response_model=ApiKeyDTO, tags=["ApiKeys"])
async def get_api_key(ctx: Keys, id: IdPath) -> ApiKeyDTO:
    return ApiKeyDTO.model_validate(await service.get_api_key(ctx, id))


@router.post("/api/ApiKeys", response_model=ApiKeyCreatedDTO, status_code=201, tags=["ApiKeys"])
async def create_api_key(ctx: Keys, body: ApiKeyCreateDTO) -> ApiKeyCreatedDTO:
    key, secret = await service.create_api_key(ctx, name=body.name, rep_id=body.customer_rep_id)
    # By field name: dumping by alias gives dateCreated, which does not validate back (created_at).
    return ApiKeyCreatedDTO(**dict(ApiKeyDTO.model_validate(key)), api_key=secret)


@router.put("/api/ApiKeys/{id}", response_model=ApiKeyDTO, tags=["ApiKeys"])
async def rename_api_key(ctx: Keys, id: IdPath, body: ApiKeyUpdateDTO) -> ApiKeyDTO:
    return ApiKeyDTO.model_validate(await service.rename_api_key(ctx, id, body.name))


@router.delete("/api/ApiKeys/{id}", status_code=204, response_class=Response, tags=["ApiKeys"])
async def revoke_api_key(ctx: Keys, id: IdPath) -> None:
    """Revoke: the key stops working at once; the row stays, with revokedAt, for the audit trail."""
    await service.revoke_api_key(ctx, id)
