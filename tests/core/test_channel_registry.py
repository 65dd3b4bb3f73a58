"""Adding a channel touches one folder: channel types registered by their own package, one
resolver from a network's address to its channel, and webhooks that check their signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deskpal.app import create_app
from deskpal.auth.networks import CHAT, ResolvedChannel, resolve_channel
from deskpal.auth.webhooks import hmac_sha256_header, webhook
from deskpal.channels import schemas as channel_schemas
from deskpal.channels.models import ChannelType
from deskpal.channels.specs import ChannelSettings, all_specs
from deskpal.config import Settings
from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.migrate import upgrade
from tests.admin.helpers import problem
from tests.support import Tenant, db_of
from tests.tickets.helpers import create_channel


def test_every_channel_type_is_declared_by_its_own_package() -> None:
    specs = all_specs()
    assert set(specs) == set(ChannelType)
    for channel_type, spec in specs.items():
        assert spec.settings.__module__ == f"deskpal.{channel_type.value.lower()}.channel"
    # Nothing channel-specific is listed centrally any more.
    assert not [
        v for v in vars(channel_schemas).values() if isinstance(v, type) and issubclass(v, ChannelSettings)
    ]


async def _resolve(app: FastAPI, network: str, address: str) -> ResolvedChannel | None:
    async with transaction(db_of(app), write=False) as db:
        return await resolve_channel(db, network, address)


async def test_one_resolver_finds_each_network_s_channel_and_customer(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = {}
    for network, owner, kind, settings in (
        ("email", tenant, "Email", {"fromAddress": "Support@Shop.Example"}),
        ("phone", other_tenant, "Phone", {"phoneNumber": "+1 (555) 123-4567"}),
        ("whatsapp", tenant, "WhatsApp", {"phoneNumberId": "10987654321"}),
        ("teams", other_tenant, "Teams", {"appId": "0f6b-app"}),
    ):
        made[network] = await create_channel(client, owner, kind, settings=settings)
    chat = await create_channel(client, other_tenant, "Chat")
    owners = {"email": tenant, "phone": other_tenant, "whatsapp": tenant, "teams": other_tenant}
    for network, address in (("email", "support@shop.example"), ("email", "SUPPORT@shop.EXAMPLE"),
                             ("phone", "+15551234567"), ("phone", "+1 555 123 4567"),
                             ("whatsapp", "10987654321"), ("teams", "0f6b-app")):  # fmt: skip
        found = await _resolve(app, network, address)
        assert found == ResolvedChannel(
            owners[network].customer_id, made[network]["channelID"], made[network]["channelType"]
        ), (network, address)
    assert await _resolve(app, CHAT, chat["token"]) == ResolvedChannel(
        other_tenant.customer_id, chat["channelID"], "Chat"
    )
    for network, address in (("email", "nobody@shop.example"), ("phone", "+15550000000"), ("teams", "x"),
                             (CHAT, "no-such-token"), ("email", "10987654321")):  # fmt: skip
        assert await _resolve(app, network, address) is None


async def test_an_address_reaches_one_channel(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    first = await create_channel(client, tenant, "Email", settings={"fromAddress": "help@x.example"})
    for owner in (tenant, other_tenant):  # another channel, of this customer or another: refused
        body = {"name": "copy", "channelType": "Email", "settings": {"fromAddress": "HELP@x.example"}}
        refused = await client.post("/api/Channels", json=body, headers=owner.headers)
        problem(refused, 409, "CHANNEL_ADDRESS_TAKEN")
        assert "help@x.example" in refused.text and str(tenant.customer_id) not in refused.json()["detail"]
    # Moving the first channel to another address frees the old one; deleting frees its own.
    url = f"/api/Channels/{first['channelID']}"
    moved = await client.put(
        url, json={"name": "n", "settings": {"fromAddress": "new@x.example"}}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    assert (await _resolve(app, "email", "help@x.example")) is None
    taken = await create_channel(client, other_tenant, "Email", settings={"fromAddress": "help@x.example"})
    assert (await _resolve(app, "email", "help@x.example")) == ResolvedChannel(
        other_tenant.customer_id, taken["channelID"], "Email"
    )
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    assert await _resolve(app, "email", "new@x.example") is None


def _number_id(request: Request, body: bytes) -> str | None:
    return request.path_params.get("number_id")


hook_router = APIRouter(prefix="/api/_hook")
Hook = Annotated[
    Ctx,
    webhook(
        "whatsapp",
        address_of=_number_id,
        signature=hmac_sha256_header("X-Hub-Signature-256", "appSecret"),
        reason="a probe of the webhook dependency, signed as Meta signs",
    ),
]


@hook_router.post("/{number_id}")
async def _hook(number_id: str, ctx: Hook) -> dict[str, Any]:
    actor = ctx.actor
    return {"kind": actor.kind.value, "customer": actor.customer_id, "channel": actor.channel_id}


@pytest.fixture
async def hook_client(settings: Settings, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    probe = create_app(settings)
    probe.include_router(hook_router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probe), base_url="http://t") as c:
        yield c
    await probe.state.db.dispose()


async def test_a_webhook_acts_only_with_its_channel_s_signature(
    client: httpx.AsyncClient, hook_client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = await create_channel(
        client, tenant, "WhatsApp", settings={"phoneNumberId": "111", "appSecret": "s1"}
    )
    await create_channel(
        client, other_tenant, "WhatsApp", settings={"phoneNumberId": "222", "appSecret": "s2"}
    )
    body = json.dumps({"entry": [{"changes": []}]}).encode()

    def signed(secret: str) -> dict[str, str]:
        mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={mac}", "Content-Type": "application/json"}

    ok = await hook_client.post("/api/_hook/111", content=body, headers=signed("s1"))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"kind": "webhook", "customer": tenant.customer_id, "channel": ours["channelID"]}
    for number, headers in (
        ("111", signed("s2")),  # another channel's secret
        ("111", {"X-Hub-Signature-256": "sha256=00"}),
        ("111", {}),
        ("999", signed("s1")),  # no channel answers on this number
    ):
        problem(
            await hook_client.post(f"/api/_hook/{number}", content=body, headers=headers),
            401,
            "WEBHOOK_SIGNATURE_INVALID",
        )


INSERT_CHANNEL = (
    "INSERT INTO channel (customer_id, name, channel_type, token, allowed_hostnames, settings, created_at) "
    "VALUES (1, 'c', :t, :tok, '[]', :s, CURRENT_TIMESTAMP)"
)


async def test_the_migration_fills_the_addresses_of_existing_channels(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade, fresh_database, "0009")
    engine = create_async_engine(fresh_database)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO customer (name, created_at) VALUES ('c', CURRENT_TIMESTAMP)")
            )
            for i, (kind, settings) in enumerate([
                ("Email", {"fromAddress": "Help@X.example"}), ("Email", {"fromAddress": "help@x.example"}),
                ("Phone", {"phoneNumber": "+44 20 7946 0000"}), ("Chat", {}), ("Teams", {"appId": "a"}),
            ]):  # fmt: skip
                await conn.execute(
                    text(INSERT_CHANNEL), {"t": kind, "tok": f"tok{i}", "s": json.dumps(settings)}
                )
        await asyncio.to_thread(upgrade, fresh_database, "0011")
        async with engine.connect() as conn:
            query = "SELECT channel_id, network, address FROM channel_address ORDER BY channel_id"
            rows = (await conn.execute(text(query))).all()
        # The older of two channels claiming one mailbox keeps it.
        assert [tuple(r) for r in rows] == [
            (1, "email", "help@x.example"),
            (3, "phone", "+442079460000"),
            (5, "teams", "a"),
        ]
    finally:
        await engine.dispose()
