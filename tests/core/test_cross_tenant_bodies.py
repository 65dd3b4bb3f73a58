"""Another customer's ids in request bodies: answered exactly as an id that names nothing, nothing written.

The rule (docs/architecture.md, "Tenancy"): another customer's object is absent. A body id answers
what the route answers for an absent one, with the same code, fields and detail, and changes
nothing: 404 where the id names what the request acts on, as a path id would (bulk ticketIDs, a new
message's ticketID, a topic link's messageID, a new API key's customerRepID, the helpdesk's
ticket_id: `acts_on` in tests/cross_tenant_bodies.py), 400 VALIDATION_FAILED naming the field where
it names something the request refers to (a channel, a representative assigned, an end user, a
topic, a message replied to or forwarded, an attachment token).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from deskpal.core.db import Base
from tests.cross_tenant_bodies import ABSENT_ID, BODY_EXEMPT, BODY_REGISTRY, KINDS, OMIT, absent, render
from tests.support import Tenant, db_of

_ID_NAME = re.compile(r"(ID|Id|Ids|IDs|_id|_ids)$")
# Written by any authenticated request, whatever it does.
_VOLATILE_TABLES = {"rate_limit_bucket"}
_VOLATILE_COLUMNS = {("api_key", "last_used_at")}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _id_fields(spec: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """The id-carrying properties of a body schema, as paths: `topicIds`, `attachments[].token`."""
    schema = _resolve(spec, schema)
    found: set[str] = set()
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found |= _id_fields(spec, sub, prefix)
    if schema.get("type") == "array" and "items" in schema:
        found |= _id_fields(spec, schema["items"], f"{prefix}[]")
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        if _ID_NAME.search(name) or "token" in name.lower():
            found.add(path)
        found |= _id_fields(spec, prop, path)
    return found


def body_id_fields(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(method, path, field) for every id-carrying field of every JSON request body. A JSON Patch
    body writes the fields of the same path's PUT document."""
    found: set[tuple[str, str, str]] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            items = _resolve(spec, schema.get("items", {})) if schema.get("type") == "array" else {}
            if items.get("title") == "PatchOperation" or "PatchOperation" in str(schema.get("items")):
                put = operations["put"]["requestBody"]["content"]["application/json"]["schema"]
                schema = put
            found |= {(method.upper(), path, name) for name in _id_fields(spec, schema)}
    return found


async def _snapshot(app: FastAPI) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but what any request stamps), to show that nothing was written."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with db_of(app).engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in _VOLATILE_TABLES:
                continue
            columns = [c for c in table.c if (table.name, c.name) not in _VOLATILE_COLUMNS]
            result = await conn.execute(select(*columns).order_by(*table.primary_key.columns))
            rows[table.name] = [tuple(r) for r in result]
    return rows


def _answer(response: httpx.Response, value: Any) -> tuple[Any, ...]:
    """What a response tells the caller, the id it was given blanked out."""
    if response.headers.get("content-type") != "application/problem+json":
        return (response.status_code, response.text)
    body = response.json()
    fields = sorted(e["field"] for e in body.get("errors", []))
    return (
        response.status_code,
        body.get("code"),
        fields,
        str(body.get("detail")).replace(str(value), "<id>"),
    )


async def test_every_id_field_in_a_body_is_walked(client: httpx.AsyncClient) -> None:
    """A new id-carrying field anywhere in a request body fails here until it is walked or exempted."""
    spec = (await client.get("/openapi.json")).json()
    derived = body_id_fields(spec)
    walked = {(m, p, f) for (m, p), target in BODY_REGISTRY.items() for f in target.kinds}
    assert sorted(derived - walked - set(BODY_EXEMPT)) == [], "add to tests/cross_tenant_bodies.py"
    assert sorted((walked | set(BODY_EXEMPT)) - derived) == [], "no longer in /openapi.json"


async def test_another_customers_ids_in_a_body_answer_as_absent_ones_and_write_nothing(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """The caller (other_tenant) sends a body with its own objects, except one field naming
    tenant's object: 404, or 400 naming the field, exactly as for an absent id; then with its own
    object there: 2xx, so the field is read and the body is valid."""
    failures: list[str] = []
    walked = 0
    for (method, path), target in sorted(BODY_REGISTRY.items()):
        headers = target.headers(app, other_tenant) if target.headers else other_tenant.headers
        for name, kind in sorted(target.kinds.items()):
            own = await target.make(app, other_tenant)
            url = path.format(**own)
            foreign = await KINDS[kind](app, tenant)
            missing = absent(kind)
            if name in target.as_string:
                foreign, missing = str(foreign), str(missing)
            where = f"{method} {path} {name}"
            left_out = dict.fromkeys(target.alone.get(name, ()), OMIT)

            before = await _snapshot(app)
            theirs = await client.request(
                method, url, headers=headers, json=render(target.body, {**own, **left_out, name: foreign})
            )
            if await _snapshot(app) != before:
                failures.append(f"{where}: another customer's {kind} wrote rows ({theirs.status_code})")
            nothing = await client.request(
                method, url, headers=headers, json=render(target.body, {**own, **left_out, name: missing})
            )
            walked += 1
            got, expected = _answer(theirs, foreign), _answer(nothing, missing)
            if got != expected:
                failures.append(
                    f"{where}: another customer's {kind} answered {got}, an absent one {expected}"
                )
            elif theirs.status_code != (404 if name in target.acts_on else 400):
                failures.append(f"{where}: {theirs.status_code} {theirs.text[:200]}")
            elif theirs.status_code == 400 and name.replace("[]", ".0") not in got[2]:
                failures.append(f"{where}: the 400 names {got[2]}, not {name}")
            mine = await client.request(
                method, url, headers=headers, json=render(target.body, {**own, **left_out})
            )
            if not 200 <= mine.status_code < 300:
                failures.append(
                    f"{where}: with its own {kind} the caller gets {mine.status_code} {mine.text[:200]}"
                )
    assert walked > 20 and not failures, "\n".join(failures)


def test_the_absent_id_is_in_range() -> None:
    from deskpal.core.schemas import MAX_ID

    assert ABSENT_ID <= MAX_ID
