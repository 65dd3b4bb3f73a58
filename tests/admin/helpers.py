"""Shared pieces of the admin API tests: the resources, and checks on problem+json answers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text

from deskpal.core.context import Role
from deskpal.core.db import transaction
from tests.support import Tenant, db_of

NON_ADMIN_ROLES = (Role.VIEWER, Role.AGENT, Role.RESTRICTED)


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The RFC 9457 body of an error answer, after checking its status, media type and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body


def invalid(response: httpx.Response, *fields: str) -> dict[str, Any]:
    """A 400 validation problem whose errors name each of `fields` (JSON names)."""
    body = problem(response, 400, "VALIDATION_FAILED")
    named = {e["field"] for e in body["errors"]}
    for f in fields:
        assert any(n == f or n.startswith(f + ".") for n in named), (f, body["errors"])
    for e in body["errors"]:
        assert e["message"], body
    return body


def assert_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, value  # type: ignore[union-attr]
    return parsed


def unique_email(prefix: str = "rep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


@dataclass(frozen=True)
class Resource:
    """One admin collection: where it lives, its id's JSON name, and bodies that create and replace."""

    name: str
    path: str
    id_field: str
    create_body: dict[str, Any]
    update_body: dict[str, Any]

    def fresh_create(self) -> dict[str, Any]:
        # Bodies with unique fields (emails, uids) get fresh values, so that one test can create many.
        body = dict(self.create_body)
        if "email" in body:
            body["email"] = unique_email()
        if "uid" in body:
            body["uid"] = f"user-{uuid.uuid4().hex[:10]}"
        return body

    def fresh_update(self) -> dict[str, Any]:
        body = dict(self.update_body)
        if "email" in body:
            body["email"] = unique_email()
        return body

    async def create(self, client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
        r = await client.post(self.path, json=self.fresh_create(), headers=tenant.headers)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def create_id(self, client: httpx.AsyncClient, tenant: Tenant) -> int:
        ident: int = (await self.create(client, tenant))[self.id_field]
        return ident


CHANNELS = Resource(
    "channels",
    "/api/Channels",
    "channelID",
    {"name": "Support mail", "channelType": "Email"},
    {"name": "Support mail (renamed)"},
)
TOPICS = Resource("topics", "/api/Topics", "topicID", {"name": "Billing"}, {"name": "Invoices"})
REPS = Resource(
    "reps",
    "/api/CustomerReps",
    "customerRepID",
    {"name": "Rita Rep", "email": "x", "password": "s3cret-password", "role": "agent"},
    {"name": "Rita Renamed", "email": "x", "role": "agent"},
)
FIELDS = Resource(
    "customfields",
    "/api/CustomFieldDefinitions",
    "customFieldDefinitionID",
    {"name": "orderNumber", "fieldType": "text"},
    {"name": "orderNo", "fieldType": "text"},
)
END_USERS = Resource(
    "endusers",
    "/api/EndUsers",
    "endUserID",
    {"uid": "x", "name": "Jane Doe", "email": "jane@example.com"},
    {"uid": "jane-2", "name": "Jane D."},
)

EMAIL_TEMPLATES = Resource(
    "emailtemplates",
    "/api/EmailTemplates",
    "emailTemplateID",
    {"name": "Friendly", "header": "<p>Hello {{ end_user.name }}</p>", "signature": "{{ rep.name }}"},
    {"name": "Friendly (renamed)", "footer": "<small>{{ customer.name }}</small>"},
)

# The collections with list, get, create, update and delete, admins-only writes.
SETTINGS_RESOURCES = (CHANNELS, TOPICS, REPS, FIELDS, END_USERS, EMAIL_TEMPLATES)


async def count_rows(app: object, table: str, customer_id: int) -> int:
    async with transaction(db_of(app), write=False) as db:
        n = await db.scalar(text(f"SELECT count(*) FROM {table} WHERE customer_id = :c"), {"c": customer_id})
    return int(n or 0)


async def raw_rows(app: object, table: str, customer_id: int) -> list[dict[str, Any]]:
    """Every stored column of a tenant's rows, bypassing the ORM: what is really on disk."""
    async with transaction(db_of(app), write=False) as db:
        result = await db.execute(text(f"SELECT * FROM {table} WHERE customer_id = :c"), {"c": customer_id})
        return [dict(row) for row in result.mappings().all()]


async def phone_channel(client: httpx.AsyncClient, tenant: Tenant) -> tuple[int, str]:
    """A Phone channel of `tenant` and its phoneAuthToken."""
    r = await client.post(
        "/api/Channels", json={"name": "Hotline", "channelType": "Phone"}, headers=tenant.headers
    )
    assert r.status_code == 201, r.text
    return r.json()["channelID"], r.json()["phoneAuthToken"]


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/Auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
