"""/api/CustomerReps: representatives, their roles, unique emails, and the last-admin guard."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from deskpal.core.context import Role
from tests.admin.helpers import bearer, invalid, login, problem, raw_rows, unique_email
from tests.support import Tenant

REP_FIELDS = {"customerRepID", "name", "email", "role", "isActive", "dateCreated"}


async def _rep(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body = {"name": "Rita", "email": unique_email(), "password": "s3cret-password", "role": "agent", **body}
    r = await client.post("/api/CustomerReps", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


class TestCreateRep:
    async def test_returns_201_and_stores_an_argon2_hash(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        rep = await _rep(client, tenant, email="Rita@Example.TEST", role="viewer")
        assert set(rep) == REP_FIELDS
        assert (rep["email"], rep["role"], rep["isActive"]) == ("rita@example.test", "viewer", True)
        row = next(
            r for r in await raw_rows(app, "customer_rep", tenant.customer_id) if r["email"] == rep["email"]
        )
        assert row["password_hash"].startswith("$argon2")
        assert "s3cret-password" not in str(row)
        assert (await login(client, "rita@example.test", "s3cret-password")).status_code == 200

    async def test_duplicate_email_is_409_in_any_case_and_any_tenant(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _rep(client, tenant, email="dup@example.test")
        for who, email in ((tenant, "DUP@example.test"), (other_tenant, "dup@example.test")):
            r = await client.post(
                "/api/CustomerReps",
                json={"name": "x", "email": email, "password": "s3cret-password"},
                headers=who.headers,
            )
            problem(r, 409, "EMAIL_IN_USE")

    async def test_rep_without_password_is_created_for_api_keys_only(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        rep = await _rep(client, tenant, password=None)
        problem(await login(client, rep["email"], "anything-at-all"), 401, "INVALID_CREDENTIALS")

    async def test_invalid_bodies_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        good = {"name": "x", "email": "a@example.test", "password": "s3cret-password", "role": "agent"}
        for change, field in (
            ({"name": None}, "name"),
            ({"email": "not-an-email"}, "email"),
            ({"email": "a" * 320 + "@example.test"}, "email"),
            ({"password": "short"}, "password"),
            ({"password": "p" * 201}, "password"),
            ({"role": "owner"}, "role"),
            ({"role": "Administrator"}, "role"),
            ({"name": "n" * 201}, "name"),
        ):
            body = {k: v for k, v in {**good, **change}.items() if v is not None}
            invalid(await client.post("/api/CustomerReps", json=body, headers=tenant.headers), field)


class TestUpdateRep:
    async def test_changes_role_and_password(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        rep = await _rep(client, tenant)
        path = f"/api/CustomerReps/{rep['customerRepID']}"
        body = {"name": "Rita A.", "email": rep["email"], "role": "admin", "password": "another-password"}
        r = await client.put(path, json=body, headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["role"]) == ("Rita A.", "admin")
        problem(await login(client, rep["email"], "s3cret-password"), 401, "INVALID_CREDENTIALS")
        assert (await login(client, rep["email"], "another-password")).status_code == 200

    async def test_omitting_password_keeps_it(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        rep = await _rep(client, tenant)
        body = {"name": "Rita", "email": rep["email"], "role": "viewer"}
        assert (
            await client.put(f"/api/CustomerReps/{rep['customerRepID']}", json=body, headers=tenant.headers)
        ).status_code == 200
        assert (await login(client, rep["email"], "s3cret-password")).status_code == 200

    async def test_deactivated_rep_loses_login_tokens_and_keys(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        key = await tenant.key_for(Role.AGENT)
        rep_id = tenant.rep_ids[Role.AGENT]
        rep = (await client.get(f"/api/CustomerReps/{rep_id}", headers=tenant.headers)).json()
        body = {"name": rep["name"], "email": rep["email"], "role": "agent", "password": "agent-password"}
        await client.put(f"/api/CustomerReps/{rep_id}", json=body, headers=tenant.headers)
        token = (await login(client, rep["email"], "agent-password")).json()["token"]
        r = await client.put(
            f"/api/CustomerReps/{rep_id}", json={**body, "isActive": False}, headers=tenant.headers
        )
        assert r.status_code == 200 and r.json()["isActive"] is False
        problem(await client.get("/api/Topics", headers=bearer(key)), 401, "UNAUTHORIZED")
        problem(await client.get("/api/Topics", headers=bearer(token)), 401, "UNAUTHORIZED")
        problem(await login(client, rep["email"], "agent-password"), 401, "INVALID_CREDENTIALS")

    async def test_taking_another_reps_email_is_409(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        rep = await _rep(client, tenant)
        body = {"name": "x", "email": tenant.admin_email.upper(), "role": "agent"}
        r = await client.put(f"/api/CustomerReps/{rep['customerRepID']}", json=body, headers=tenant.headers)
        problem(r, 409, "EMAIL_IN_USE")

    async def test_last_admin_cannot_be_demoted_or_deactivated(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        path = f"/api/CustomerReps/{tenant.admin_rep_id}"
        body = {"name": "Admin", "email": tenant.admin_email, "role": "admin"}
        for change in ({"role": "agent"}, {"isActive": False}):
            problem(
                await client.put(path, json={**body, **change}, headers=tenant.headers), 409, "LAST_ADMIN"
            )
        assert (await client.get(path, headers=tenant.headers)).json()["role"] == "admin"
        second = await _rep(client, tenant, role="admin")
        r = await client.put(path, json={**body, "role": "agent"}, headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert second["role"] == "admin"


class TestDeleteRep:
    async def test_delete_is_204_then_404_and_its_keys_stop_working(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        key = await tenant.key_for(Role.VIEWER)
        path = f"/api/CustomerReps/{tenant.rep_ids[Role.VIEWER]}"
        assert (await client.delete(path, headers=tenant.headers)).status_code == 204
        problem(await client.get(path, headers=tenant.headers), 404, "NOT_FOUND")
        problem(await client.get("/api/Topics", headers=bearer(key)), 401, "UNAUTHORIZED")
        assert len(await raw_rows(app, "api_key", tenant.customer_id)) == 1  # only the admin's

    async def test_rep_cannot_delete_self(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        await _rep(client, tenant, role="admin")  # not the last admin: self-deletion alone is refused
        r = await client.delete(f"/api/CustomerReps/{tenant.admin_rep_id}", headers=tenant.headers)
        problem(r, 409, "CANNOT_DELETE_SELF")

    async def test_two_admins_deleting_each_other_at_once_leave_one(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        second = await _rep(client, tenant, role="admin")
        key = (
            await client.post(
                "/api/ApiKeys",
                json={"name": "k", "customerRepID": second["customerRepID"]},
                headers=tenant.headers,
            )
        ).json()["apiKey"]
        first_deletes, second_deletes = await asyncio.gather(
            client.delete(f"/api/CustomerReps/{second['customerRepID']}", headers=tenant.headers),
            client.delete(f"/api/CustomerReps/{tenant.admin_rep_id}", headers=bearer(key)),
        )
        statuses = sorted([first_deletes.status_code, second_deletes.status_code])
        assert statuses[0] == 204, statuses
        assert statuses[1] in {401, 409}, statuses  # refused: last admin, or its caller is gone
        # Look through whichever admin survived: the other one's key now answers 401.
        listed = await client.get("/api/CustomerReps", headers=tenant.headers)
        if listed.status_code == 401:
            listed = await client.get("/api/CustomerReps", headers=bearer(key))
        reps = listed.json()["items"]
        assert [r["role"] for r in reps if r["isActive"]] == ["admin"]
