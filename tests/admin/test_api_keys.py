"""/api/ApiKeys: personal keys, stored hashed, shown once; non-admins manage only their own."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy import update

from deskpal.auth.models import ApiKey
from deskpal.core.context import Role
from deskpal.core.db import transaction
from tests.admin.helpers import assert_utc, bearer, invalid, problem, raw_rows
from tests.support import Tenant, db_of, make_tenant

KEY_FIELDS = {"apiKeyID", "customerRepID", "name", "prefix", "dateCreated", "lastUsedAt", "revokedAt"}


class TestCreateApiKey:
    async def test_returns_the_key_once_and_stores_only_its_hash(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        r = await client.post("/api/ApiKeys", json={"name": "CI"}, headers=tenant.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == KEY_FIELDS | {"apiKey"}
        secret = body["apiKey"]
        assert secret.startswith("dpk_") and secret.startswith(body["prefix"])
        assert body["customerRepID"] == tenant.admin_rep_id
        assert_utc(body["dateCreated"])
        rows = await raw_rows(app, "api_key", tenant.customer_id)
        assert secret not in str(rows)
        assert hashlib.sha256(secret.encode()).hexdigest() in [row["key_hash"] for row in rows]
        got = await client.get(f"/api/ApiKeys/{body['apiKeyID']}", headers=bearer(secret))
        assert set(got.json()) == KEY_FIELDS
        assert got.json()["lastUsedAt"] is not None

    async def test_admin_creates_a_key_that_acts_as_another_rep(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await tenant.key_for(Role.VIEWER)
        viewer_id = tenant.rep_ids[Role.VIEWER]
        r = await client.post(
            "/api/ApiKeys", json={"name": "for viewer", "customerRepID": viewer_id}, headers=tenant.headers
        )
        assert r.status_code == 201 and r.json()["customerRepID"] == viewer_id
        key = bearer(r.json()["apiKey"])
        assert (await client.get("/api/Topics", headers=key)).status_code == 200
        problem(await client.post("/api/Topics", json={"name": "x"}, headers=key), 403, "FORBIDDEN")

    async def test_every_role_creates_its_own_key_but_not_anothers(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for role in (Role.VIEWER, Role.AGENT, Role.RESTRICTED):
            headers = await tenant.headers_for(role)
            own = await client.post("/api/ApiKeys", json={"name": "mine"}, headers=headers)
            assert own.status_code == 201 and own.json()["customerRepID"] == tenant.rep_ids[role]
            r = await client.post(
                "/api/ApiKeys", json={"name": "x", "customerRepID": tenant.admin_rep_id}, headers=headers
            )
            problem(r, 403, "FORBIDDEN")

    async def test_another_tenants_rep_is_404(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        r = await client.post(
            "/api/ApiKeys",
            json={"name": "x", "customerRepID": other_tenant.admin_rep_id},
            headers=tenant.headers,
        )
        problem(r, 404, "NOT_FOUND")

    async def test_invalid_bodies_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for body, field in (
            ({}, "name"),
            ({"name": ""}, "name"),
            ({"name": "n" * 201}, "name"),
            ({"name": "x", "customerRepID": "abc"}, "customerRepID"),
            ({"name": "x", "customerRepID": 0}, "customerRepID"),
            ({"name": "x", "customerRepID": 2**60}, "customerRepID"),
        ):
            invalid(await client.post("/api/ApiKeys", json=body, headers=tenant.headers), field)


class TestListApiKeys:
    async def test_admin_sees_all_keys_and_others_only_their_own(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        await tenant.key_for(Role.VIEWER)
        everyone = (await client.get("/api/ApiKeys", headers=tenant.headers)).json()
        assert everyone["totalCount"] == 3
        mine = (await client.get("/api/apikeys", headers=agent)).json()
        assert [k["customerRepID"] for k in mine["items"]] == [tenant.rep_ids[Role.AGENT]]
        assert "apiKey" not in mine["items"][0]

    async def test_other_reps_keys_are_404_for_non_admins(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        admin_key_id = (await client.get("/api/ApiKeys", headers=tenant.headers)).json()["items"][0][
            "apiKeyID"
        ]
        path = f"/api/ApiKeys/{admin_key_id}"
        problem(await client.get(path, headers=agent), 404, "NOT_FOUND")
        problem(await client.put(path, json={"name": "stolen"}, headers=agent), 404, "NOT_FOUND")
        problem(await client.delete(path, headers=agent), 404, "NOT_FOUND")
        assert (await client.get("/api/Topics", headers=tenant.headers)).status_code == 200


class TestRenameApiKey:
    async def test_renames(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = (await client.post("/api/ApiKeys", json={"name": "old"}, headers=tenant.headers)).json()
        r = await client.put(
            f"/api/ApiKeys/{created['apiKeyID']}", json={"name": "new"}, headers=tenant.headers
        )
        assert r.status_code == 200 and r.json()["name"] == "new"
        invalid(
            await client.put(f"/api/ApiKeys/{created['apiKeyID']}", json={}, headers=tenant.headers), "name"
        )


class TestRevokeApiKey:
    async def test_revoke_keeps_the_row_with_revoked_at_and_the_key_stops_working(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        own = (await client.get("/api/ApiKeys", headers=agent)).json()["items"][0]
        path = f"/api/ApiKeys/{own['apiKeyID']}"
        assert (await client.delete(path, headers=agent)).status_code == 204
        problem(await client.get("/api/Topics", headers=agent), 401, "UNAUTHORIZED")
        got = (await client.get(path, headers=tenant.headers)).json()
        revoked_at = assert_utc(got["revokedAt"])
        assert (await client.delete(path, headers=tenant.headers)).status_code == 204
        again = (await client.get(path, headers=tenant.headers)).json()
        assert assert_utc(again["revokedAt"]) == revoked_at
        listed = (await client.get("/api/ApiKeys", headers=tenant.headers)).json()
        assert own["apiKeyID"] in [k["apiKeyID"] for k in listed["items"]]


class TestKeyActsAsItsRep:
    async def test_a_key_takes_its_reps_current_role_and_name_on_each_request(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        headers = await tenant.headers_for(Role.AGENT)
        rep_id = tenant.rep_ids[Role.AGENT]
        created = await client.post(
            "/api/Tickets", json={"status": "Open", "subject": "s", "channelType": "Email"}, headers=headers
        )
        assert created.status_code == 201, created.text
        rep = (await client.get(f"/api/CustomerReps/{rep_id}", headers=tenant.headers)).json()
        body = {"name": "Renamed Agent", "email": rep["email"], "role": "viewer"}
        assert (
            await client.put(f"/api/CustomerReps/{rep_id}", json=body, headers=tenant.headers)
        ).status_code == 200
        r = await client.post(
            "/api/Tickets", json={"status": "Open", "subject": "s", "channelType": "Email"}, headers=headers
        )
        problem(r, 403, "FORBIDDEN")
        assert (await client.get("/api/Topics", headers=headers)).status_code == 200

    async def test_a_key_of_another_customers_rep_row_is_refused(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        # The key and its rep are matched on the customer too: a key row pointing at another
        # customer's rep (which no API can create) authenticates nobody.
        other = await make_tenant(app)
        created = await client.post("/api/ApiKeys", json={"name": "k"}, headers=tenant.headers)
        key_id = created.json()["apiKeyID"]
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            await db.execute(
                update(ApiKey)
                .where(ApiKey.api_key_id == key_id)
                .values(customer_rep_id=other.admin_rep_id)
                .execution_options(synchronize_session=False)
            )
        problem(
            await client.get("/api/Topics", headers=bearer(created.json()["apiKey"])), 401, "UNAUTHORIZED"
        )
