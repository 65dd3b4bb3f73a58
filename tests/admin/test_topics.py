"""/api/Topics."""

from __future__ import annotations

import httpx

from tests.admin.helpers import assert_utc, invalid, problem
from tests.support import Tenant


async def _topic(client: httpx.AsyncClient, tenant: Tenant, name: str, **extra: object) -> dict[str, object]:
    r = await client.post("/api/Topics", json={"name": name, **extra}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


class TestListTopics:
    async def test_lists_by_name_with_paging(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for name in ("Shipping", "Billing", "Returns"):
            await _topic(client, tenant, name)
        r = await client.get("/api/topics?pageSize=2", headers=tenant.headers)
        assert r.status_code == 200
        assert [t["name"] for t in r.json()["items"]] == ["Billing", "Returns"]
        assert (r.json()["totalCount"], r.json()["totalPages"]) == (3, 2)


class TestCreateTopic:
    async def test_returns_201_with_topic_id(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = await _topic(client, tenant, "Billing", description="Money matters")
        assert set(body) == {"topicID", "name", "description", "dateCreated"}
        assert (body["name"], body["description"]) == ("Billing", "Money matters")
        assert_utc(str(body["dateCreated"]))
        got = await client.get(f"/api/Topics/{body['topicID']}", headers=tenant.headers)
        assert got.json() == body

    async def test_duplicate_name_is_409(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        await _topic(client, tenant, "Billing")
        r = await client.post("/api/Topics", json={"name": "Billing"}, headers=tenant.headers)
        problem(r, 409, "TOPIC_NAME_TAKEN")

    async def test_same_name_in_another_tenant_is_fine(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _topic(client, tenant, "Billing")
        await _topic(client, other_tenant, "Billing")

    async def test_invalid_bodies_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for body, field in (
            ({}, "name"),
            ({"name": ""}, "name"),
            ({"name": "x" * 201}, "name"),
            ({"name": 5}, "name"),
            ({"name": "x", "description": "d" * 4001}, "description"),
            ({"name": "x", "description": ["d"]}, "description"),
        ):
            invalid(await client.post("/api/Topics", json=body, headers=tenant.headers), field)
        assert (await client.get("/api/Topics", headers=tenant.headers)).json()["totalCount"] == 0


class TestUpdateTopic:
    async def test_replaces_name_and_description(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        topic = await _topic(client, tenant, "Billing", description="old")
        r = await client.put(
            f"/api/Topics/{topic['topicID']}", json={"name": "Invoices"}, headers=tenant.headers
        )
        assert r.status_code == 200
        assert (r.json()["name"], r.json()["description"]) == ("Invoices", None)
        assert r.json()["dateCreated"] == topic["dateCreated"]

    async def test_keeping_its_own_name_is_fine_but_taking_anothers_is_409(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        billing = await _topic(client, tenant, "Billing")
        await _topic(client, tenant, "Shipping")
        path = f"/api/Topics/{billing['topicID']}"
        assert (await client.put(path, json={"name": "Billing"}, headers=tenant.headers)).status_code == 200
        problem(
            await client.put(path, json={"name": "Shipping"}, headers=tenant.headers), 409, "TOPIC_NAME_TAKEN"
        )


class TestDeleteTopic:
    async def test_delete_is_204_then_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        topic = await _topic(client, tenant, "Billing")
        path = f"/api/Topics/{topic['topicID']}"
        assert (await client.delete(path, headers=tenant.headers)).status_code == 204
        problem(await client.get(path, headers=tenant.headers), 404, "NOT_FOUND")
        problem(await client.delete(path, headers=tenant.headers), 404, "NOT_FOUND")
        await _topic(client, tenant, "Billing")  # the name is free again
