"""POST /api/Auth/login: a JWT for email and password, rate-limited per address and per account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from deskpal.app import create_app
from deskpal.config import Settings
from tests.admin.helpers import assert_utc, bearer, invalid, login, problem
from tests.support import Tenant


@pytest.fixture
async def strict_client(app: object, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database with low login limits (`app` still truncates after)."""
    strict = create_app(
        settings.model_copy(update={"login_limit_per_address": 4, "login_limit_per_account": 2})
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=strict), base_url="http://testserver"
    ) as c:
        yield c
    await strict.state.db.dispose()


class TestLogin:
    async def test_returns_a_token_usable_as_bearer(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await login(client, tenant.admin_email, tenant.admin_password)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"token", "expiresAt", "customerRepID", "customerID"}
        assert (body["customerRepID"], body["customerID"]) == (tenant.admin_rep_id, tenant.customer_id)
        assert assert_utc(body["expiresAt"]) > datetime.now(UTC)
        assert (
            await client.post("/api/Topics", json={"name": "t"}, headers=bearer(body["token"]))
        ).status_code == 201

    async def test_email_is_matched_without_case_or_spaces(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        r = await client.post(
            "/api/auth/LOGIN",
            json={"email": f"  {tenant.admin_email.upper()} ", "password": tenant.admin_password},
        )
        assert r.status_code == 200, r.text

    async def test_wrong_password_and_unknown_email_are_the_same_401(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        wrong = problem(await login(client, tenant.admin_email, "wrong password"), 401, "INVALID_CREDENTIALS")
        unknown = problem(
            await login(client, "nobody@example.test", "wrong password"), 401, "INVALID_CREDENTIALS"
        )
        assert wrong["detail"] == unknown["detail"]

    async def test_inactive_rep_cannot_log_in(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        await client.post(
            "/api/CustomerReps",
            json={
                "name": "Second admin",
                "email": "second@example.test",
                "password": "pw-second-admin",
                "role": "admin",
            },
            headers=tenant.headers,
        )
        r = await client.put(
            f"/api/CustomerReps/{tenant.admin_rep_id}",
            json={"name": "Admin", "email": tenant.admin_email, "role": "admin", "isActive": False},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        problem(await login(client, tenant.admin_email, tenant.admin_password), 401, "INVALID_CREDENTIALS")

    async def test_invalid_bodies_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for body, field in (
            ({"email": tenant.admin_email}, "password"),
            ({"password": "x"}, "email"),
            ({"email": "e" * 321, "password": "x"}, "email"),
            ({"email": tenant.admin_email, "password": "p" * 201}, "password"),
            ({"email": ["a"], "password": "x"}, "email"),
        ):
            invalid(await client.post("/api/Auth/login", json=body), field)
        problem(
            await client.post("/api/Auth/login", content=b"{", headers={"Content-Type": "application/json"}),
            400,
        )


class TestLoginRateLimits:
    async def test_too_many_attempts_from_one_address_are_429_with_retry_after(
        self, strict_client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for i in range(4):  # different accounts, so that only the address limit is reached
            assert (await login(strict_client, f"nobody{i}@example.test", "x")).status_code == 401
        r = await login(strict_client, tenant.admin_email, tenant.admin_password)
        problem(r, 429, "RATE_LIMITED")
        assert 1 <= int(r.headers["retry-after"]) <= 60

    async def test_too_many_failures_for_one_account_lock_it_even_with_the_right_password(
        self, strict_client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for _ in range(2):
            problem(await login(strict_client, tenant.admin_email, "wrong"), 401, "INVALID_CREDENTIALS")
        r = await login(strict_client, tenant.admin_email.upper(), tenant.admin_password)
        problem(r, 429, "RATE_LIMITED")
        assert 1 <= int(r.headers["retry-after"]) <= 900
        # Another account from the same address is not affected.
        other = await strict_client.post(
            "/api/CustomerReps",
            json={"name": "B", "email": "b@example.test", "password": "pw-bbbbbbbb"},
            headers=tenant.headers,
        )
        assert other.status_code == 201
        assert (await login(strict_client, "b@example.test", "pw-bbbbbbbb")).status_code == 200
