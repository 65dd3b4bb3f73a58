"""/api/Channels: channels, their public token, per-type settings with write-only secrets, phone auth."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from deskpal.core import secretbox
from tests.admin.helpers import NON_ADMIN_ROLES, assert_utc, bearer, invalid, phone_channel, problem, raw_rows
from tests.support import Tenant

CHANNEL_FIELDS = {
    "channelID",
    "name",
    "channelType",
    "token",
    "allowedHostnames",
    "settings",
    "secretsSet",
    "hasPhoneAuthToken",
    "dateCreated",
    "imapStatus",  # read-only, added by mail in (issue 13): null but for Email channels with imapHost
}


def _opened(row: dict[str, Any]) -> dict[str, str]:
    """The row's secret settings, opened."""
    stored = row["settings"] if isinstance(row["settings"], dict) else json.loads(row["settings"])
    box = secretbox.box()
    return {k: box.open(v) for k, v in stored.items() if k.endswith("Password")}


INVALID_CREATE_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"channelType": "Email"}, "name"),
    ({"name": "x"}, "channelType"),
    ({"name": "x", "channelType": "Fax"}, "channelType"),
    ({"name": "", "channelType": "Email"}, "name"),
    ({"name": "x" * 201, "channelType": "Email"}, "name"),
    ({"name": 123, "channelType": "Email"}, "name"),
    ({"name": ["x"], "channelType": "Email"}, "name"),
    ({"name": "a\x00b", "channelType": "Email"}, "name"),
    ({"name": "x", "channelType": "Chat", "allowedHostnames": ["not a host!"]}, "allowedHostnames"),
    ({"name": "x", "channelType": "Chat", "allowedHostnames": "example.com"}, "allowedHostnames"),
    ({"name": "x", "channelType": "Chat", "allowedHostnames": ["a.com"] * 101}, "allowedHostnames"),
    (
        {"name": "x", "channelType": "Chat", "allowedHostnames": ["a" * 300 + ".com"]},
        "allowedHostnames",
    ),
    ({"name": "x", "channelType": "Email", "settings": {"favouriteColour": "red"}}, "settings"),
    ({"name": "x", "channelType": "Email", "settings": {"imapPort": 70000}}, "settings"),
    ({"name": "x", "channelType": "Email", "settings": {"imapPort": "many"}}, "settings"),
    ({"name": "x", "channelType": "Email", "settings": {"imapPassword": "p" * 1001}}, "settings"),
    ({"name": "x", "channelType": "Email", "settings": {"imapPassword": {"nested": 1}}}, "settings"),
    ({"name": "x", "channelType": "Phone", "settings": {"imapHost": "imap.example.com"}}, "settings"),
    ({"name": "x", "channelType": "Email", "settings": ["imapHost"]}, "settings"),
]
EMAIL_SETTINGS = {
    "imapHost": "imap.example.com",
    "imapPort": 993,
    "imapUser": "support",
    "imapPassword": "imap-secret-123",
    "smtpHost": "smtp.example.com",
    "smtpPassword": "smtp-secret-456",
}


async def _create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Support")
    body.setdefault("channelType", "Email")
    r = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


class TestListChannels:
    async def test_empty_list_is_an_empty_envelope(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.get("/api/Channels", headers=tenant.headers)
        assert r.status_code == 200
        assert r.json() == {"items": [], "totalCount": 0, "totalPages": 0}

    async def test_pages_through_channels(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ids = [(await _create(client, tenant, name=f"C{i}"))["channelID"] for i in range(3)]
        first = (await client.get("/api/Channels?pageSize=2", headers=tenant.headers)).json()
        second = (await client.get("/api/Channels?pageSize=2&pageNumber=2", headers=tenant.headers)).json()
        assert (first["totalCount"], first["totalPages"]) == (3, 2)
        assert [c["channelID"] for c in first["items"] + second["items"]] == ids
        beyond = (await client.get("/api/Channels?pageSize=2&pageNumber=3", headers=tenant.headers)).json()
        assert beyond == {"items": [], "totalCount": 3, "totalPages": 2}

    async def test_filters_by_channel_type(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        await _create(client, tenant, name="Mail")
        phone_id, _ = await phone_channel(client, tenant)
        r = await client.get("/api/Channels?channelType=Phone", headers=tenant.headers)
        assert [c["channelID"] for c in r.json()["items"]] == [phone_id]
        assert r.json()["totalCount"] == 1

    async def test_unknown_channel_type_filter_is_400(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        invalid(await client.get("/api/Channels?channelType=Fax", headers=tenant.headers), "channelType")

    async def test_out_of_range_paging_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for query in ("pageSize=101", "pageSize=0", "pageNumber=0", "pageSize=ten", "pageNumber=-1"):
            invalid(await client.get(f"/api/Channels?{query}", headers=tenant.headers), query.split("=")[0])

    async def test_list_never_shows_secrets(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        await _create(client, tenant, settings=EMAIL_SETTINGS)
        r = await client.get("/api/Channels", headers=tenant.headers)
        assert "secret-" not in r.text
        assert r.json()["items"][0]["secretsSet"] == ["imapPassword", "smtpPassword"]

    async def test_path_is_case_insensitive(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = await _create(client, tenant)
        assert (await client.get("/api/channels", headers=tenant.headers)).json()["totalCount"] == 1
        r = await client.get(f"/API/CHANNELS/{created['channelID']}", headers=tenant.headers)
        assert r.status_code == 200
        assert r.json()["channelID"] == created["channelID"]


class TestGetChannel:
    async def test_returns_the_channel_without_secrets(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        created = await _create(client, tenant, settings=EMAIL_SETTINGS, allowedHostnames=["Example.COM"])
        r = await client.get(f"/api/Channels/{created['channelID']}", headers=tenant.headers)
        assert r.status_code == 200
        body = r.json()
        assert set(body) == CHANNEL_FIELDS
        assert body["settings"] == {k: v for k, v in EMAIL_SETTINGS.items() if "Password" not in k}
        assert body["secretsSet"] == ["imapPassword", "smtpPassword"]
        assert body["allowedHostnames"] == ["example.com"]
        assert "secret-" not in r.text

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        problem(await client.get("/api/Channels/999999", headers=tenant.headers), 404, "NOT_FOUND")

    async def test_malformed_id_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for ident in ("abc", "0", "-1", "1.5", str(2**63)):
            invalid(await client.get(f"/api/Channels/{ident}", headers=tenant.headers), "id")


class TestCreateChannel:
    async def test_returns_201_with_id_token_and_date(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        r = await client.post(
            "/api/Channels",
            json={"name": "Web chat", "channelType": "Chat", "allowedHostnames": ["www.example.com"]},
            headers=tenant.headers,
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == CHANNEL_FIELDS | {"phoneAuthToken"}
        assert isinstance(body["channelID"], int)
        assert body["channelType"] == "Chat"
        assert len(body["token"]) >= 32
        assert body["phoneAuthToken"] is None
        assert body["hasPhoneAuthToken"] is False
        assert_utc(body["dateCreated"])
        [row] = await raw_rows(app, "channel", tenant.customer_id)
        assert row["token"] == body["token"]
        assert row["phone_auth_token_hash"] is None

    async def test_channel_tokens_are_unique(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        tokens = {(await _create(client, tenant, name=f"C{i}"))["token"] for i in range(3)}
        assert len(tokens) == 3

    async def test_phone_channel_shows_its_auth_token_once_and_stores_only_a_hash(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        channel_id, token = await phone_channel(client, tenant)
        assert token.startswith("dpp_")
        [row] = await raw_rows(app, "channel", tenant.customer_id)
        assert row["phone_auth_token_hash"] == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(row)
        got = await client.get(f"/api/Channels/{channel_id}", headers=tenant.headers)
        assert got.json()["hasPhoneAuthToken"] is True
        assert "phoneAuthToken" not in got.json()
        assert token not in (await client.get("/api/Channels", headers=tenant.headers)).text

    async def test_secrets_are_stored_but_never_returned(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        created = await _create(client, tenant, settings=EMAIL_SETTINGS)
        assert "imapPassword" not in created["settings"]
        assert created["secretsSet"] == ["imapPassword", "smtpPassword"]
        [row] = await raw_rows(app, "channel", tenant.customer_id)
        stored = (
            row["settings"]
            if isinstance(row["settings"], dict)
            else __import__("json").loads(row["settings"])
        )
        # Sealed at rest (tests/admin/test_channel_secrets.py walks every secret field).
        assert "imap-secret-123" not in str(stored)
        assert secretbox.box().open(stored["imapPassword"]) == "imap-secret-123"

    async def test_invalid_body_is_400_naming_the_field(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        for body, field in INVALID_CREATE_BODIES:
            invalid(await client.post("/api/Channels", json=body, headers=tenant.headers), field)
        assert await raw_rows(app, "channel", tenant.customer_id) == []

    async def test_malformed_or_non_object_json_is_400(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        headers = {**tenant.headers, "Content-Type": "application/json"}
        for raw in (b"{", b'{"name": "x",}', b"", b"null", b"[]", b'"Email"', b"\xff\xfe", b"{" * 10_000):
            problem(await client.post("/api/Channels", content=raw, headers=headers), 400)

    async def test_settings_for_each_type_round_trip(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        cases = {
            "Chat": ({"greeting": "Hi!", "color": "#123456"}, []),
            "Phone": (
                {"twilioAccountSid": "AC1", "twilioAuthToken": "tw-secret", "recordCalls": True},
                ["twilioAuthToken"],
            ),
            "WhatsApp": (
                {"phoneNumberId": "1", "accessToken": "wa-secret", "appSecret": "wa-2"},
                ["accessToken", "appSecret"],
            ),
            "Teams": ({"appId": "app", "appPassword": "teams-secret"}, ["appPassword"]),
        }
        for channel_type, (settings, secrets) in cases.items():
            created = await _create(client, tenant, channelType=channel_type, settings=settings)
            assert created["secretsSet"] == secrets
            assert created["settings"] == {k: v for k, v in settings.items() if k not in secrets}
            assert "secret" not in str(created["settings"])


class TestUpdateChannel:
    async def test_replaces_name_and_hostnames(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = await _create(client, tenant, channelType="Chat", allowedHostnames=["a.example.com"])
        r = await client.put(
            f"/api/Channels/{created['channelID']}",
            json={"name": "Renamed", "allowedHostnames": ["*.example.org"]},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["allowedHostnames"]) == ("Renamed", ["*.example.org"])
        assert (r.json()["token"], r.json()["channelType"]) == (created["token"], "Chat")
        got = (await client.get(f"/api/Channels/{created['channelID']}", headers=tenant.headers)).json()
        assert got["name"] == "Renamed"

    async def test_secrets_left_out_or_null_are_kept(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        created = await _create(client, tenant, settings=EMAIL_SETTINGS)
        shown = created["settings"]
        r = await client.put(
            f"/api/Channels/{created['channelID']}",
            json={
                "name": "Support",
                "settings": {**shown, "imapPassword": None, "imapHost": "imap2.example.com"},
            },
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["secretsSet"] == ["imapPassword", "smtpPassword"]
        assert r.json()["settings"]["imapHost"] == "imap2.example.com"
        [row] = await raw_rows(app, "channel", tenant.customer_id)
        assert _opened(row) == {"imapPassword": "imap-secret-123", "smtpPassword": "smtp-secret-456"}

    async def test_empty_string_clears_a_secret_and_a_new_value_replaces_it(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        created = await _create(client, tenant, settings=EMAIL_SETTINGS)
        r = await client.put(
            f"/api/Channels/{created['channelID']}",
            json={"name": "Support", "settings": {"imapPassword": "", "smtpPassword": "new-smtp"}},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["secretsSet"] == ["smtpPassword"]
        [row] = await raw_rows(app, "channel", tenant.customer_id)
        assert _opened(row) == {"smtpPassword": "new-smtp"}

    async def test_channel_type_cannot_be_changed(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = await _create(client, tenant)
        r = await client.put(
            f"/api/Channels/{created['channelID']}",
            json={"name": "Support", "channelType": "Phone"},
            headers=tenant.headers,
        )
        assert r.status_code == 200
        assert r.json()["channelType"] == "Email"

    async def test_missing_name_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = await _create(client, tenant)
        r = await client.put(f"/api/Channels/{created['channelID']}", json={}, headers=tenant.headers)
        invalid(r, "name")

    async def test_settings_of_another_type_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = await _create(client, tenant)
        r = await client.put(
            f"/api/Channels/{created['channelID']}",
            json={"name": "x", "settings": {"greeting": "hi"}},
            headers=tenant.headers,
        )
        invalid(r, "settings")

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        r = await client.put("/api/Channels/424242", json={"name": "x"}, headers=tenant.headers)
        problem(r, 404, "NOT_FOUND")


class TestRotatePhoneAuthToken:
    async def test_new_token_replaces_the_old_one(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        channel_id, old = await phone_channel(client, tenant)
        r = await client.post(f"/api/Channels/{channel_id}/phone-auth-token", headers=tenant.headers)
        assert r.status_code == 200, r.text
        new = r.json()["phoneAuthToken"]
        assert new.startswith("dpp_") and new != old
        # Admin endpoints refuse phone auth: 401 says "unknown token", 403 says "known, not allowed here".
        problem(await client.get("/api/Topics", headers=bearer(old)), 401, "UNAUTHORIZED")
        problem(await client.get("/api/Topics", headers=bearer(new)), 403, "PHONE_AUTH_NOT_ALLOWED")

    async def test_non_phone_channel_is_422(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        created = await _create(client, tenant)
        r = await client.post(
            f"/api/Channels/{created['channelID']}/phone-auth-token", headers=tenant.headers
        )
        problem(r, 422, "NOT_A_PHONE_CHANNEL")

    async def test_non_admin_cannot_rotate(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        channel_id, token = await phone_channel(client, tenant)
        for role in NON_ADMIN_ROLES:
            r = await client.post(
                f"/api/Channels/{channel_id}/phone-auth-token", headers=await tenant.headers_for(role)
            )
            problem(r, 403, "FORBIDDEN")
        problem(await client.get("/api/Topics", headers=bearer(token)), 403, "PHONE_AUTH_NOT_ALLOWED")

    async def test_phone_token_cannot_rotate_itself(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        channel_id, token = await phone_channel(client, tenant)
        r = await client.post(f"/api/Channels/{channel_id}/phone-auth-token", headers=bearer(token))
        problem(r, 403, "PHONE_AUTH_NOT_ALLOWED")

    async def test_other_tenant_is_404(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        channel_id, token = await phone_channel(client, tenant)
        r = await client.post(f"/api/Channels/{channel_id}/phone-auth-token", headers=other_tenant.headers)
        problem(r, 404, "NOT_FOUND")
        problem(await client.get("/api/Topics", headers=bearer(token)), 403, "PHONE_AUTH_NOT_ALLOWED")


class TestDeleteChannel:
    async def test_delete_is_204_then_404(
        self, client: httpx.AsyncClient, app: object, tenant: Tenant
    ) -> None:
        created = await _create(client, tenant)
        path = f"/api/Channels/{created['channelID']}"
        r = await client.delete(path, headers=tenant.headers)
        assert r.status_code == 204
        assert r.content == b""
        problem(await client.get(path, headers=tenant.headers), 404, "NOT_FOUND")
        problem(await client.delete(path, headers=tenant.headers), 404, "NOT_FOUND")
        assert await raw_rows(app, "channel", tenant.customer_id) == []

    async def test_deleted_phone_channels_token_stops_working(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id, token = await phone_channel(client, tenant)
        assert (await client.delete(f"/api/Channels/{channel_id}", headers=tenant.headers)).status_code == 204
        problem(await client.get("/api/Topics", headers=bearer(token)), 401, "UNAUTHORIZED")
