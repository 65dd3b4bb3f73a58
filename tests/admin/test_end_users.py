"""/api/EndUsers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.admin.helpers import invalid, problem
from tests.support import Tenant


async def _user(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/EndUsers", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


class TestListEndUsers:
    async def test_filters_by_uid_and_email(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        jane = await _user(client, tenant, uid="jane@example.com", email="Jane@Example.com")
        await _user(client, tenant, uid="+4912345", phone="+49 123 45")
        by_uid = (await client.get("/api/EndUsers?uid=%2B4912345", headers=tenant.headers)).json()
        assert [u["uid"] for u in by_uid["items"]] == ["+4912345"]
        by_email = (await client.get("/api/EndUsers?email=JANE@example.COM", headers=tenant.headers)).json()
        assert [u["endUserID"] for u in by_email["items"]] == [jane["endUserID"]]
        assert by_email["totalCount"] == 1
        none = (await client.get("/api/EndUsers?uid=nobody", headers=tenant.headers)).json()
        assert none == {"items": [], "totalCount": 0, "totalPages": 0}
        everyone = (await client.get("/api/EndUsers", headers=tenant.headers)).json()
        assert everyone["totalCount"] == 2

    async def test_oversize_filters_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        invalid(await client.get(f"/api/EndUsers?uid={'u' * 255}", headers=tenant.headers), "uid")
        invalid(await client.get(f"/api/EndUsers?email={'e' * 321}", headers=tenant.headers), "email")


class TestCreateEndUser:
    async def test_returns_201_with_end_user_id_and_normalised_email(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = await _user(
            client, tenant, uid="u-1", name="Jane", email=" Jane@Example.COM ", phone="+1 (555) 0100"
        )
        assert set(body) == {"endUserID", "uid", "name", "email", "phone", "dateCreated"}
        assert body["email"] == "jane@example.com"
        got = await client.get(f"/api/EndUsers/{body['endUserID']}", headers=tenant.headers)
        assert got.json() == body

    async def test_uid_of_254_characters_is_accepted(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        assert (await _user(client, tenant, uid="u" * 254))["uid"] == "u" * 254

    async def test_duplicate_uid_is_409_but_another_tenant_may_reuse_it(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _user(client, tenant, uid="jane")
        r = await client.post("/api/EndUsers", json={"uid": "jane"}, headers=tenant.headers)
        problem(r, 409, "END_USER_UID_TAKEN")
        await _user(client, other_tenant, uid="jane")

    async def test_invalid_bodies_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for body, field in (
            ({}, "uid"),
            ({"uid": ""}, "uid"),
            ({"uid": "u" * 255}, "uid"),
            ({"uid": 42}, "uid"),
            ({"uid": "u", "email": "not-an-email"}, "email"),
            ({"uid": "u", "email": "a@" + "b" * 320 + ".com"}, "email"),
            ({"uid": "u", "phone": "call me"}, "phone"),
            ({"uid": "u", "name": "n" * 201}, "name"),
        ):
            invalid(await client.post("/api/EndUsers", json=body, headers=tenant.headers), field)


class TestUpdateEndUser:
    async def test_replaces_every_field(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        user = await _user(client, tenant, uid="jane", name="Jane", email="jane@example.com")
        r = await client.put(
            f"/api/EndUsers/{user['endUserID']}",
            json={"uid": "jane-2", "phone": "+1 555"},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["uid"], r.json()["name"], r.json()["email"], r.json()["phone"]) == (
            "jane-2",
            None,
            None,
            "+1 555",
        )

    async def test_taking_another_users_uid_is_409(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        jane = await _user(client, tenant, uid="jane")
        await _user(client, tenant, uid="john")
        r = await client.put(
            f"/api/EndUsers/{jane['endUserID']}", json={"uid": "john"}, headers=tenant.headers
        )
        problem(r, 409, "END_USER_UID_TAKEN")


class TestDeleteEndUser:
    async def test_delete_is_204_then_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        user = await _user(client, tenant, uid="jane")
        path = f"/api/EndUsers/{user['endUserID']}"
        assert (await client.delete(path, headers=tenant.headers)).status_code == 204
        problem(await client.get(path, headers=tenant.headers), 404, "NOT_FOUND")
