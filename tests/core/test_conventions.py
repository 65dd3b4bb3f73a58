"""Conventions every endpoint shares: problem+json, 400 for bad input, paging, paths, dates, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from deskpal.app import create_app
from deskpal.config import Settings
from tests.support import Tenant

PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, object] = r.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "about:blank"
    assert body["title"]
    return body


def fields(body: dict[str, object]) -> set[str]:
    return {e["field"] for e in body["errors"]}  # type: ignore[attr-defined, index]


class TestBadInput:
    async def test_malformed_json_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.post(
            "/api/Topics",
            content=b'{"name": ',
            headers={**tenant.headers, "content-type": "application/json"},
        )
        assert_problem(r, 400, "VALIDATION_FAILED")

    async def test_missing_field_is_400_naming_it(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = assert_problem(
            await client.post("/api/Channels", json={"name": "x"}, headers=tenant.headers),
            400,
            "VALIDATION_FAILED",
        )
        assert fields(body) == {"channelType"}

    async def test_unknown_enum_value_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.post(
            "/api/Channels", json={"name": "x", "channelType": "Fax"}, headers=tenant.headers
        )
        assert fields(assert_problem(r, 400, "VALIDATION_FAILED")) == {"channelType"}

    async def test_wrong_type_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.post("/api/Topics", json={"name": ["not", "a", "string"]}, headers=tenant.headers)
        assert fields(assert_problem(r, 400, "VALIDATION_FAILED")) == {"name"}

    async def test_oversize_string_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.post("/api/Topics", json={"name": "x" * 201}, headers=tenant.headers)
        assert fields(assert_problem(r, 400, "VALIDATION_FAILED")) == {"name"}

    @pytest.mark.parametrize("text", ["nul\x00byte", "lone \ud800 surrogate"])
    async def test_text_a_database_cannot_store_is_400(
        self, client: httpx.AsyncClient, tenant: Tenant, text: str
    ) -> None:
        import json

        raw = json.dumps({"name": text}).encode()
        r = await client.post(
            "/api/Topics", content=raw, headers={**tenant.headers, "content-type": "application/json"}
        )
        assert fields(assert_problem(r, 400, "VALIDATION_FAILED")) == {"name"}

    async def test_id_out_of_range_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.get(f"/api/Topics/{2**70}", headers=tenant.headers)
        assert fields(assert_problem(r, 400, "VALIDATION_FAILED")) == {"id"}

    async def test_duplicate_is_409(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        assert (
            await client.post("/api/Topics", json={"name": "dup"}, headers=tenant.headers)
        ).status_code == 201
        r = await client.post("/api/Topics", json={"name": "dup"}, headers=tenant.headers)
        assert_problem(r, 409, "TOPIC_NAME_TAKEN")


class TestPaging:
    async def test_defaults_and_envelope(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for i in range(12):
            await client.post("/api/Topics", json={"name": f"t{i:02}"}, headers=tenant.headers)
        r = await client.get("/api/Topics", headers=tenant.headers)
        body = r.json()
        assert set(body) == {"items", "totalCount", "totalPages"}
        assert (len(body["items"]), body["totalCount"], body["totalPages"]) == (10, 12, 2)
        page2 = (await client.get("/api/Topics?pageNumber=2&pageSize=10", headers=tenant.headers)).json()
        assert [t["name"] for t in page2["items"]] == ["t10", "t11"]
        beyond = (await client.get("/api/Topics?pageNumber=9", headers=tenant.headers)).json()
        assert (beyond["items"], beyond["totalCount"]) == ([], 12)

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("pageSize=101", "pageSize"),
            ("pageSize=0", "pageSize"),
            ("pageNumber=0", "pageNumber"),
            ("pageNumber=x", "pageNumber"),
        ],
    )
    async def test_out_of_range_paging_is_400(
        self, client: httpx.AsyncClient, tenant: Tenant, query: str, field: str
    ) -> None:
        r = await client.get(f"/api/Topics?{query}", headers=tenant.headers)
        assert fields(assert_problem(r, 400, "VALIDATION_FAILED")) == {field}


class TestRouting:
    @pytest.mark.parametrize("path", ["/api/topics", "/API/TOPICS", "/api/Topics", "/Api/tOpIcS"])
    async def test_paths_match_without_regard_to_case(
        self, client: httpx.AsyncClient, tenant: Tenant, path: str
    ) -> None:
        assert (await client.get(path, headers=tenant.headers)).status_code == 200

    async def test_case_insensitive_path_keeps_parameters(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        created = (await client.post("/api/topics", json={"name": "Billing"}, headers=tenant.headers)).json()
        r = await client.get(f"/API/topics/{created['topicID']}", headers=tenant.headers)
        assert r.json()["name"] == "Billing"

    async def test_unknown_route_is_problem_404(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get("/api/NoSuchThing"), 404, "NOT_FOUND")

    async def test_wrong_method_is_problem_405(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        assert_problem(await client.patch("/api/Topics", headers=tenant.headers), 405, "METHOD_NOT_ALLOWED")

    async def test_request_id_is_returned(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/health", headers={"X-Request-ID": "abc123"})
        assert r.headers["x-request-id"] == "abc123"

    async def test_a_request_id_is_made_when_none_is_given_and_on_problems_too(
        self, client: httpx.AsyncClient
    ) -> None:
        ids = {(await client.get("/health")).headers["x-request-id"] for _ in range(2)}
        assert len(ids) == 2 and all(len(i) == 32 for i in ids)
        r = await client.get("/api/NoSuchThing", headers={"X-Request-ID": "x" * 100})
        assert r.status_code == 404 and r.headers["x-request-id"] == "x" * 64


class TestDates:
    async def test_dates_are_iso_8601_utc(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.post("/api/Topics", json={"name": "dated"}, headers=tenant.headers)
        stamp = r.json()["dateCreated"]
        assert stamp.endswith("Z")
        assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


class TestHealth:
    async def test_health_and_ready(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/ready")).json() == {"status": "ok"}

    async def test_ready_is_503_without_a_database(self, tmp_path: object) -> None:
        settings = Settings(
            database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", secret_key="k" * 40, run_worker=False
        )
        app = create_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/ready")).status_code == 503
            assert (await c.get("/health")).status_code == 200

    async def test_openapi_and_docs_are_served(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        assert "/api/Channels" in spec["paths"]
        assert "channelID" in str(spec["components"]["schemas"])
        assert (await client.get("/docs")).status_code == 200

    async def test_docs_page_loads_nothing_from_outside_and_runs_no_inline_script(
        self, client: httpx.AsyncClient
    ) -> None:
        """Issue 10, point 14 without a browser (tests/browser/ renders it): every asset the page
        names is deskpal's own and is served, and its CSP allows only deskpal's origin."""
        import re

        page = await client.get("/docs")
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert re.findall(r"https?://", page.text) == []
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == [], "an inline script"
        assert re.findall(r"<style|\sstyle=", page.text) == [], "an inline style"
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert {a.rsplit("/", 1)[-1] for a in assets} == {
            "swagger-ui.css", "favicon.png", "swagger-ui-bundle.js", "swagger-init.js"
        }  # fmt: skip
        for asset in assets:
            got = await client.get(asset)
            assert got.status_code == 200 and got.content, asset
        assert (await client.get("/redoc")).status_code == 404  # off: it needs inline styles


@pytest.fixture
async def failing_client(settings: Settings, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    broken = create_app(settings)

    @broken.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=broken, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    await broken.state.db.dispose()


async def test_unexpected_error_is_500_problem_without_internals(failing_client: httpx.AsyncClient) -> None:
    r = await failing_client.get("/boom")
    body = assert_problem(r, 500, "INTERNAL_ERROR")
    assert body["requestId"]
    assert r.headers["x-request-id"] == body["requestId"]
    assert "secret internals" not in r.text


def test_built_dtos_refuse_missing_or_unknown_fields_and_serialise_like_validated_ones() -> None:
    from datetime import UTC, datetime

    import pytest

    from deskpal.core.schemas import built
    from deskpal.endusers.schemas import EndUserDTO

    values = {
        "end_user_id": 1,
        "uid": "ann",
        "name": None,
        "email": "ann@example.com",
        "phone": None,
        "date_created": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
    }
    fast = built(EndUserDTO, dict(values))
    slow = EndUserDTO.model_validate({**values, "created_at": values["date_created"]})
    assert fast.model_dump_json() == slow.model_dump_json()
    with pytest.raises(TypeError):
        built(EndUserDTO, {k: v for k, v in values.items() if k != "uid"})
    with pytest.raises(TypeError):
        built(EndUserDTO, {**values, "extra": 1})


class TestHead:
    async def test_head_answers_every_get_route_as_get_does_without_a_body(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        """RFC 9110 9.3.2 (HEAD was 405 on every route): same status and headers, no body, for each
        GET route, on a real object where the route takes ids (the cross-tenant walk's makers)."""
        from tests.cross_tenant import REGISTRY
        from tests.routes import iter_api_routes

        failures, walked = [], 0
        for info in iter_api_routes(app):
            if info.method != "GET":
                continue
            url, headers = info.path, tenant.headers
            if info.path in REGISTRY:
                entry = REGISTRY[info.path]
                url = info.path.format(**await entry.make(app, tenant))
                headers = entry.headers(app, tenant) if entry.headers else headers
            elif "{" in info.path:
                url = info.path.format_map(_Ones())  # public token routes: an unknown one, 404
            got = await client.get(url, headers=headers)
            head = await client.head(url, headers=headers)
            walked += 1
            same = ("content-type", "content-length", "etag", "accept-ranges")
            if head.status_code != got.status_code or head.content != b"":
                failures.append(
                    f"HEAD {url}: {head.status_code} {head.content[:80]!r}, GET {got.status_code}"
                )
            elif any(head.headers.get(h) != got.headers.get(h) for h in same if h != "content-length") or (
                got.headers.get("content-length") not in (None, head.headers.get("content-length"))
            ):
                failures.append(
                    f"HEAD {url}: headers {dict(head.headers)} differ from GET {dict(got.headers)}"
                )
        assert walked > 20 and not failures, "\n".join(failures)

    async def test_head_on_a_route_without_get_is_still_405(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        r = await client.head("/api/Auth/login", headers=tenant.headers)
        assert r.status_code == 405 and r.content == b""


class _Ones(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "1"
