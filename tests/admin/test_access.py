"""Who may call the admin collections: every role, phone auth, no token, bad tokens, another tenant."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest

from deskpal.core.context import Role
from deskpal.core.db import utcnow
from tests.admin.helpers import (
    NON_ADMIN_ROLES,
    SETTINGS_RESOURCES,
    Resource,
    bearer,
    count_rows,
    login,
    phone_channel,
    problem,
)
from tests.support import Tenant

# One test per collection; roles and token shapes loop inside it, which keeps the suite fast.
each_resource = pytest.mark.parametrize("res", SETTINGS_RESOURCES, ids=lambda r: r.name)

TABLES = {
    "channels": "channel",
    "topics": "topic",
    "reps": "customer_rep",
    "customfields": "custom_field_definition",
    "endusers": "end_user",
    "emailtemplates": "email_template",
}


def _forged_jwt(tenant: Tenant, *, key: str, expired: bool = False) -> str:
    exp = utcnow() + (timedelta(hours=-1) if expired else timedelta(hours=1))
    claims = {
        "sub": str(tenant.admin_rep_id),
        "cid": tenant.customer_id,
        "key": tenant.token_keys[tenant.admin_rep_id],
        "exp": exp,
        "typ": "login",
    }
    return jwt.encode(claims, key, algorithm="HS256")


@each_resource
class TestReads:
    async def test_every_role_can_list_and_get(
        self, client: httpx.AsyncClient, tenant: Tenant, res: Resource
    ) -> None:
        ident = await res.create_id(client, tenant)
        for role in Role:
            headers = await tenant.headers_for(role)
            listed = await client.get(res.path, headers=headers)
            assert listed.status_code == 200, (role, listed.text)
            assert ident in [item[res.id_field] for item in listed.json()["items"]], role
            got = await client.get(f"{res.path}/{ident}", headers=headers)
            assert got.status_code == 200, (role, got.text)
            assert got.json()[res.id_field] == ident

    async def test_login_token_reads_and_writes_like_an_api_key(
        self, client: httpx.AsyncClient, tenant: Tenant, res: Resource
    ) -> None:
        token = (await login(client, tenant.admin_email, tenant.admin_password)).json()["token"]
        assert (await client.get(res.path, headers=bearer(token))).status_code == 200
        r = await client.post(res.path, json=res.fresh_create(), headers=bearer(token))
        assert r.status_code == 201, r.text


@each_resource
class TestWrites:
    async def test_viewer_agent_and_restricted_cannot_create_update_or_delete(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant, res: Resource
    ) -> None:
        ident = await res.create_id(client, tenant)
        role_headers = [await tenant.headers_for(role) for role in NON_ADMIN_ROLES]
        before = await client.get(f"{res.path}/{ident}", headers=tenant.headers)
        rows = await count_rows(app, TABLES[res.name], tenant.customer_id)
        for headers in role_headers:
            problem(await client.post(res.path, json=res.fresh_create(), headers=headers), 403, "FORBIDDEN")
            put = await client.put(f"{res.path}/{ident}", json=res.fresh_update(), headers=headers)
            problem(put, 403, "FORBIDDEN")
            problem(await client.delete(f"{res.path}/{ident}", headers=headers), 403, "FORBIDDEN")
        assert await count_rows(app, TABLES[res.name], tenant.customer_id) == rows
        after = await client.get(f"{res.path}/{ident}", headers=tenant.headers)
        assert after.json() == before.json()


@each_resource
class TestCredentials:
    async def test_no_token_is_401(self, client: httpx.AsyncClient, tenant: Tenant, res: Resource) -> None:
        ident = await res.create_id(client, tenant)
        for method, path in (
            ("GET", res.path),
            ("GET", f"{res.path}/{ident}"),
            ("PUT", f"{res.path}/{ident}"),
            ("DELETE", f"{res.path}/{ident}"),
            ("POST", res.path),
        ):
            r = await client.request(method, path, json=res.fresh_create())
            problem(r, 401, "UNAUTHORIZED")
            assert r.headers["www-authenticate"].lower().startswith("bearer")

    async def test_bad_token_is_401(self, client: httpx.AsyncClient, tenant: Tenant, res: Resource) -> None:
        for authorization in (
            "Bearer nonsense",
            "Bearer dpk_unknownkeyunknownkeyunknownkey",
            "Bearer dpp_unknownphonetokenunknownphone",
            "Bearer " + tenant.api_key[:-1],
            "Bearer ",
            "Basic YWRtaW46cGFzc3dvcmQ=",
            tenant.api_key,  # no scheme
        ):
            r = await client.get(res.path, headers={"Authorization": authorization})
            problem(r, 401, "UNAUTHORIZED")

    async def test_forged_or_expired_login_token_is_401(
        self, client: httpx.AsyncClient, tenant: Tenant, res: Resource
    ) -> None:
        forged = _forged_jwt(tenant, key="not-the-server-secret-" + "y" * 32)
        problem(await client.get(res.path, headers=bearer(forged)), 401, "UNAUTHORIZED")
        secret = str(tenant.app.state.settings.resolved_secret_key)  # type: ignore[attr-defined]
        expired = _forged_jwt(tenant, key=secret, expired=True)
        problem(await client.get(res.path, headers=bearer(expired)), 401, "UNAUTHORIZED")
        # The same claims, unexpired and signed with the server's key, do work: the 401s above are
        # about the signature and the expiry, not about a malformed token.
        valid = _forged_jwt(tenant, key=secret)
        assert (await client.get(res.path, headers=bearer(valid))).status_code == 200

    async def test_revoked_api_key_is_401(
        self, client: httpx.AsyncClient, tenant: Tenant, res: Resource
    ) -> None:
        created = await client.post("/api/ApiKeys", json={"name": "short-lived"}, headers=tenant.headers)
        key = created.json()["apiKey"]
        assert (await client.get(res.path, headers=bearer(key))).status_code == 200
        revoked = await client.delete(f"/api/ApiKeys/{created.json()['apiKeyID']}", headers=tenant.headers)
        assert revoked.status_code == 204
        problem(await client.get(res.path, headers=bearer(key)), 401, "UNAUTHORIZED")

    async def test_phone_auth_token_is_403_on_reads_and_writes(
        self, client: httpx.AsyncClient, tenant: Tenant, res: Resource
    ) -> None:
        ident = await res.create_id(client, tenant)
        _, token = await phone_channel(client, tenant)
        for method, path in (
            ("GET", res.path),
            ("GET", f"{res.path}/{ident}"),
            ("POST", res.path),
            ("PUT", f"{res.path}/{ident}"),
            ("DELETE", f"{res.path}/{ident}"),
        ):
            r = await client.request(method, path, json=res.fresh_create(), headers=bearer(token))
            problem(r, 403, "PHONE_AUTH_NOT_ALLOWED")


@each_resource
class TestOtherTenant:
    async def test_other_tenants_ids_are_404_for_get_put_delete(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, res: Resource
    ) -> None:
        ident = await res.create_id(client, tenant)
        path = f"{res.path}/{ident}"
        theirs = other_tenant.headers
        problem(await client.get(path, headers=theirs), 404, "NOT_FOUND")
        problem(await client.put(path, json=res.fresh_update(), headers=theirs), 404, "NOT_FOUND")
        problem(await client.delete(path, headers=theirs), 404, "NOT_FOUND")
        # Untouched, and answered exactly like an id that never existed.
        assert (await client.get(path, headers=tenant.headers)).status_code == 200
        missing = await client.get(f"{res.path}/{ident + 10_000}", headers=theirs)
        assert missing.status_code == 404
        assert missing.json()["code"] == "NOT_FOUND"

    async def test_lists_show_only_own_rows(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, res: Resource
    ) -> None:
        ident = await res.create_id(client, tenant)
        theirs = await client.get(res.path, headers=other_tenant.headers)
        assert theirs.status_code == 200
        items = theirs.json()["items"]
        assert ident not in [item[res.id_field] for item in items]
        if res.name == "reps":  # each tenant sees its own admin
            assert [i["email"] for i in items] == [other_tenant.admin_email]
        else:
            assert items == []


class TestOtherTenantCounts:
    async def test_total_count_ignores_other_tenants(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        for res in SETTINGS_RESOURCES:
            await res.create_id(client, tenant)
        for res in SETTINGS_RESOURCES:
            theirs = (await client.get(res.path, headers=other_tenant.headers)).json()
            assert theirs["totalCount"] == len(theirs["items"]), res.path
            assert theirs["totalPages"] == (1 if theirs["items"] else 0), res.path
