"""The reference pages' access policies, as reusable dependencies, over every kind of caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import APIRouter, FastAPI

from deskpal.app import create_app
from deskpal.channels.models import ChannelType
from deskpal.channels.schemas import ChannelCreateDTO
from deskpal.channels.service import create_channel
from deskpal.config import Settings
from deskpal.core.context import ActorKind, Ctx, Role
from deskpal.core.db import utcnow
from deskpal.core.permissions import (
    Perm,
    PublicUnit,
    public,
    ticket_access,
    ticket_access_or_phone_auth,
    ticket_create_from_phone,
)
from deskpal.core.security import issue_jwt
from tests.cross_tenant import in_tenant
from tests.support import Tenant

probe = APIRouter(prefix="/api/_probe")


def _who(ctx: Ctx) -> dict[str, object]:
    return {"kind": ctx.actor.kind, "channelID": ctx.actor.channel_id, "customerID": ctx.customer_id}


@probe.get("/ticket-access")
async def read_access(ctx: Annotated[Ctx, ticket_access()]) -> dict[str, object]:
    return _who(ctx)


@probe.post("/ticket-access")
async def write_access(ctx: Annotated[Ctx, ticket_access(Perm.TICKETS_WRITE)]) -> dict[str, object]:
    return _who(ctx)


@probe.get("/ticket-access-or-phone")
async def read_or_phone(ctx: Annotated[Ctx, ticket_access_or_phone_auth()]) -> dict[str, object]:
    return _who(ctx)


@probe.patch("/ticket-access-or-phone")
async def write_or_phone(
    ctx: Annotated[Ctx, ticket_access_or_phone_auth(Perm.TICKETS_WRITE)],
) -> dict[str, object]:
    return _who(ctx)


@probe.post("/create-from-phone")
async def create_from_phone(ctx: Annotated[Ctx, ticket_create_from_phone()]) -> dict[str, object]:
    return _who(ctx)


@probe.get("/public")
async def anonymous(
    unit: Annotated[
        PublicUnit, public(ActorKind.VISITOR, write=False, reason="a probe of the public dependency")
    ],
) -> dict[str, object]:
    return {"kind": "anonymous", "tenantBound": "customer_id" in unit.db.info}


CALLERS = ["admin", "agent", "restricted", "viewer", "phone", "none", "bad"]
ALLOW, DENY, UNAUTH = 200, 403, 401

# (method, path) -> expected status per caller, in CALLERS order.
MATRIX: dict[tuple[str, str], list[int]] = {
    ("GET", "/ticket-access"): [ALLOW, ALLOW, ALLOW, ALLOW, DENY, UNAUTH, UNAUTH],
    ("POST", "/ticket-access"): [ALLOW, ALLOW, ALLOW, DENY, DENY, UNAUTH, UNAUTH],
    ("GET", "/ticket-access-or-phone"): [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, UNAUTH, UNAUTH],
    ("PATCH", "/ticket-access-or-phone"): [ALLOW, ALLOW, ALLOW, DENY, ALLOW, UNAUTH, UNAUTH],
    ("POST", "/create-from-phone"): [ALLOW, ALLOW, ALLOW, DENY, ALLOW, UNAUTH, UNAUTH],
    ("GET", "/public"): [ALLOW] * 7,
}


@pytest.fixture
async def probe_client(settings: Settings, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    probe_app = create_app(settings)
    probe_app.include_router(probe)
    transport = httpx.ASGITransport(app=probe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await probe_app.state.db.dispose()


async def _phone_token(app: FastAPI, tenant: Tenant) -> tuple[str, int]:
    async def make(ctx: Ctx) -> tuple[str, int]:
        channel, token = await create_channel(ctx, ChannelCreateDTO(name="p", channel_type=ChannelType.PHONE))
        assert token is not None
        return token, channel.channel_id

    result: tuple[str, int] = await in_tenant(app, tenant, make)
    return result


async def _headers(app: FastAPI, tenant: Tenant, caller: str, phone: str) -> dict[str, str]:
    if caller in {r.value for r in Role}:
        return await tenant.headers_for(Role(caller))
    if caller == "phone":
        return {"Authorization": f"Bearer {phone}"}
    if caller == "bad":
        return {"Authorization": "Bearer dpk_not-a-real-key"}
    return {}


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
async def test_policy_matrix(
    app: FastAPI, tenant: Tenant, probe_client: httpx.AsyncClient, method: str, path: str
) -> None:
    phone, channel_id = await _phone_token(app, tenant)
    got = []
    for caller in CALLERS:
        r = await probe_client.request(
            method, "/api/_probe" + path, headers=await _headers(app, tenant, caller, phone)
        )
        got.append(r.status_code)
        if r.status_code == ALLOW and caller == "phone" and path != "/public":
            assert r.json() == {"kind": "phone", "channelID": channel_id, "customerID": tenant.customer_id}
        if r.status_code in {DENY, UNAUTH}:
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == r.status_code
    assert dict(zip(CALLERS, got, strict=True)) == dict(zip(CALLERS, MATRIX[(method, path)], strict=True))


class TestCredentials:
    async def test_login_token_acts_as_its_rep(
        self, app: FastAPI, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        r = await probe_client.post(
            "/api/Auth/login", json={"email": tenant.admin_email, "password": tenant.admin_password}
        )
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await probe_client.get("/api/_probe/ticket-access", headers=headers)
        assert r.status_code == 200
        assert r.json()["customerID"] == tenant.customer_id

    async def test_expired_login_token_is_refused(
        self, settings: Settings, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        claims = {
            "sub": str(tenant.admin_rep_id),
            "cid": tenant.customer_id,
            "key": tenant.token_keys[tenant.admin_rep_id],
            "typ": "login",
            "exp": utcnow() - timedelta(seconds=5),
        }
        token = jwt.encode(claims, settings.resolved_secret_key, algorithm="HS256")
        r = await probe_client.get("/api/_probe/ticket-access", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401

    async def test_token_signed_with_another_key_is_refused(
        self, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        token, _ = issue_jwt(
            "another-key-" + "y" * 40,
            rep_id=tenant.admin_rep_id,
            customer_id=tenant.customer_id,
            token_key=tenant.token_keys[tenant.admin_rep_id],
            ttl_seconds=600,
        )
        r = await probe_client.get("/api/_probe/ticket-access", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401

    async def test_revoked_key_is_refused(
        self, app: FastAPI, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        from deskpal.auth.models import ApiKey
        from deskpal.auth.service import revoke_api_key

        key = await tenant.key_for(Role.AGENT)
        headers = {"Authorization": f"Bearer {key}"}
        assert (await probe_client.get("/api/_probe/ticket-access", headers=headers)).status_code == 200

        async def revoke(ctx: Ctx) -> None:
            from sqlalchemy import select

            key_id = (
                await ctx.db.scalars(
                    select(ApiKey.api_key_id).where(ApiKey.customer_rep_id == tenant.rep_ids[Role.AGENT])
                )
            ).one()
            await revoke_api_key(ctx, key_id)

        await in_tenant(app, tenant, revoke)
        assert (await probe_client.get("/api/_probe/ticket-access", headers=headers)).status_code == 401

    async def test_deactivated_rep_key_is_refused(
        self, app: FastAPI, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        from deskpal.customers.service import get_rep

        headers = await tenant.headers_for(Role.AGENT)

        async def deactivate(ctx: Ctx) -> None:
            (await get_rep(ctx, tenant.rep_ids[Role.AGENT])).is_active = False

        await in_tenant(app, tenant, deactivate)
        assert (await probe_client.get("/api/_probe/ticket-access", headers=headers)).status_code == 401

    async def test_rotated_phone_token_stops_working(
        self, app: FastAPI, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        from deskpal.channels.service import rotate_phone_token

        old, channel_id = await _phone_token(app, tenant)
        new = await in_tenant(app, tenant, lambda ctx: rotate_phone_token(ctx, channel_id))
        path = "/api/_probe/ticket-access-or-phone"
        assert (await probe_client.get(path, headers={"Authorization": f"Bearer {old}"})).status_code == 401
        assert (await probe_client.get(path, headers={"Authorization": f"Bearer {new}"})).status_code == 200

    @pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token", "Bearer a.b.c"])
    async def test_malformed_authorization_is_401(
        self, tenant: Tenant, probe_client: httpx.AsyncClient, header: str
    ) -> None:
        r = await probe_client.get("/api/_probe/ticket-access", headers={"Authorization": header})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"

    async def test_api_key_use_is_recorded(
        self, app: FastAPI, tenant: Tenant, probe_client: httpx.AsyncClient
    ) -> None:
        from sqlalchemy import select

        from deskpal.auth.models import ApiKey

        await probe_client.get("/api/_probe/ticket-access", headers=tenant.headers)
        used = await in_tenant(app, tenant, lambda ctx: ctx.db.scalars(select(ApiKey.last_used_at)))
        assert all(t is not None for t in used.all())
