"""/api/CustomFieldDefinitions, and customFieldsData validated against the definitions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.core.errors import ValidationFailed
from deskpal.customfields.models import EntityType
from deskpal.customfields.service import validate_custom_fields
from tests.admin.helpers import invalid, problem
from tests.support import Tenant, db_of


async def _define(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/CustomFieldDefinitions", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def _validate(
    app: object, tenant: Tenant, data: dict[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        return await validate_custom_fields(
            Ctx.system(db, tenant.customer_id), EntityType.TICKET, data, partial=partial
        )


class TestCreateDefinition:
    async def test_returns_201_with_its_id_and_defaults(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = await _define(client, tenant, name="plan", fieldType="select", options=["free", "pro"])
        assert set(body) == {
            "customFieldDefinitionID",
            "name",
            "label",
            "fieldType",
            "entityType",
            "required",
            "options",
            "dateCreated",
        }
        assert (body["entityType"], body["required"], body["options"]) == ("Ticket", False, ["free", "pro"])

    async def test_duplicate_name_is_409_only_within_one_entity_type(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await _define(client, tenant, name="plan", fieldType="text")
        r = await client.post(
            "/api/CustomFieldDefinitions",
            json={"name": "plan", "fieldType": "number"},
            headers=tenant.headers,
        )
        problem(r, 409, "FIELD_NAME_TAKEN")
        await _define(client, tenant, name="plan", fieldType="text", entityType="TicketMessage")

    async def test_invalid_bodies_are_400_naming_the_field(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for body, field in (
            ({"fieldType": "text"}, "name"),
            ({"name": "1abc", "fieldType": "text"}, "name"),
            ({"name": "has space", "fieldType": "text"}, "name"),
            ({"name": "n" * 101, "fieldType": "text"}, "name"),
            ({"name": "x"}, "fieldType"),
            ({"name": "x", "fieldType": "colour"}, "fieldType"),
            ({"name": "x", "fieldType": "text", "entityType": "Invoice"}, "entityType"),
            ({"name": "x", "fieldType": "select"}, "options"),
            ({"name": "x", "fieldType": "select", "options": []}, "options"),
            ({"name": "x", "fieldType": "text", "options": ["a"]}, "options"),
            ({"name": "x", "fieldType": "select", "options": ["a", "a"]}, "options"),
            ({"name": "x", "fieldType": "select", "options": ["o" * 201]}, "options"),
            ({"name": "x", "fieldType": "text", "required": "maybe"}, "required"),
            ({"name": "x", "fieldType": "text", "label": "l" * 201}, "label"),
        ):
            invalid(
                await client.post("/api/CustomFieldDefinitions", json=body, headers=tenant.headers), field
            )


class TestListDefinitions:
    async def test_filters_by_entity_type(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        await _define(client, tenant, name="a", fieldType="text")
        msg = await _define(client, tenant, name="b", fieldType="text", entityType="TicketMessage")
        r = await client.get("/api/CustomFieldDefinitions?entityType=TicketMessage", headers=tenant.headers)
        assert [d["customFieldDefinitionID"] for d in r.json()["items"]] == [msg["customFieldDefinitionID"]]
        invalid(
            await client.get("/api/CustomFieldDefinitions?entityType=Nope", headers=tenant.headers),
            "entityType",
        )


class TestUpdateAndDeleteDefinition:
    async def test_update_replaces_and_delete_is_204_then_404(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        d = await _define(client, tenant, name="plan", fieldType="text")
        path = f"/api/CustomFieldDefinitions/{d['customFieldDefinitionID']}"
        r = await client.put(
            path,
            json={"name": "plan", "fieldType": "select", "options": ["x"], "required": True},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["fieldType"], r.json()["required"], r.json()["options"]) == ("select", True, ["x"])
        assert (await client.delete(path, headers=tenant.headers)).status_code == 204
        problem(await client.get(path, headers=tenant.headers), 404, "NOT_FOUND")


class TestValidateCustomFields:
    async def test_coerces_each_type_and_keeps_unknown_keys(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        for name, field_type, extra in (
            ("t", "text", {}),
            ("n", "number", {}),
            ("b", "boolean", {}),
            ("d", "date", {}),
            ("dt", "datetime", {}),
            ("e", "email", {}),
            ("u", "url", {}),
            ("s", "select", {"options": ["a", "b"]}),
            ("m", "multiselect", {"options": ["a", "b"]}),
        ):
            await _define(client, tenant, name=name, fieldType=field_type, **extra)
        out = await _validate(
            app,
            tenant,
            {
                "t": "hello",
                "n": 2.5,
                "b": False,
                "d": "2024-02-29",
                "dt": "2024-02-29T10:00:00+00:00",
                "e": " Jane@Example.COM ",
                "u": "https://example.com/x",
                "s": "b",
                "m": ["a", "b", "a"],
                "legacyKey": "kept",
                "legacyList": [1, "two"],
            },
        )
        assert out["e"] == "jane@example.com"
        assert out["m"] == ["a", "b"]
        assert (out["legacyKey"], out["legacyList"]) == ("kept", [1, "two"])

    @pytest.mark.parametrize("partial", [False, True])
    async def test_reports_every_bad_field_by_name(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant, partial: bool
    ) -> None:
        await _define(client, tenant, name="n", fieldType="number")
        await _define(client, tenant, name="s", fieldType="select", options=["a"])
        await _define(client, tenant, name="must", fieldType="text", required=True)
        await _define(client, tenant, name="d", fieldType="date")
        bad = {"n": True, "s": "z", "d": "yesterday", "big": 10**400, "nested": {"x": 1}, "inf": None}
        bad["n2"] = 1
        with pytest.raises(ValidationFailed) as caught:
            await _validate(app, tenant, {**bad, "n": 10**400} if partial else bad, partial=partial)
        fields = {e["field"] for e in caught.value.errors}
        assert {
            "customFieldsData.n",
            "customFieldsData.s",
            "customFieldsData.d",
            "customFieldsData.nested",
        } <= fields
        assert ("customFieldsData.must" in fields) is not partial

    async def test_required_field_set_to_null_is_refused(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        await _define(client, tenant, name="must", fieldType="text", required=True)
        with pytest.raises(ValidationFailed) as caught:
            await _validate(app, tenant, {"must": None}, partial=True)
        assert caught.value.errors == [{"field": "customFieldsData.must", "message": "is required"}]

    async def test_another_tenants_definitions_do_not_apply(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _define(client, other_tenant, name="n", fieldType="number", required=True)
        assert await _validate(app, tenant, {"n": "not a number"}) == {"n": "not a number"}
