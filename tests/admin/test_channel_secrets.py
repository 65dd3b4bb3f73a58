"""Channel secrets are sealed at rest (issue 12, item 1): every secret field of every channel type."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from deskpal.channels.models import Channel, ChannelType
from deskpal.channels.service import secret_settings
from deskpal.channels.specs import all_specs
from deskpal.core import secretbox
from deskpal.core.db import transaction
from tests.support import Tenant, db_of
from tests.tickets.helpers import create_channel

SECRETS = [(t, f) for t, spec in all_specs().items() for f in sorted(spec.settings.secret_fields)]


async def _stored(app: FastAPI, channel_id: int) -> dict[str, object]:
    async with db_of(app).engine.connect() as conn:
        raw = (
            await conn.execute(text("SELECT settings FROM channel WHERE channel_id = :i"), {"i": channel_id})
        ).scalar()
    return raw if isinstance(raw, dict) else json.loads(raw)


async def _opened(app: FastAPI, tenant: Tenant, channel_id: int) -> dict[str, object]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        channel = await db.get(Channel, channel_id)
        assert channel is not None
        return secret_settings(channel)


def test_every_channel_type_with_secrets_is_walked() -> None:
    assert {t for t, _ in SECRETS} == {
        ChannelType.EMAIL,
        ChannelType.PHONE,
        ChannelType.WHATSAPP,
        ChannelType.TEAMS,
    }
    assert len(SECRETS) >= 7


@pytest.mark.parametrize(("channel_type", "field"), SECRETS, ids=[f"{t.value}.{f}" for t, f in SECRETS])
async def test_a_secret_is_stored_sealed_kept_cleared_and_never_shown(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channel_type: ChannelType, field: str
) -> None:
    plain = f"s3cret-{field}-ünïcode"
    made = await create_channel(client, tenant, channel_type.value, settings={field: plain})
    stored = await _stored(app, made["channelID"])
    assert plain not in json.dumps(stored, ensure_ascii=False) and str(stored[field]).startswith(
        secretbox.PREFIX
    )
    assert (await _opened(app, tenant, made["channelID"]))[field] == plain
    url = f"/api/Channels/{made['channelID']}"
    assert plain not in (await client.get(url, headers=tenant.headers)).text
    # A replace that leaves the secret out keeps it (sealed anew); "" clears it.
    kept = await client.put(url, json={"name": "renamed", "settings": {}}, headers=tenant.headers)
    assert kept.status_code == 200 and field in kept.json()["secretsSet"] and plain not in kept.text
    assert (await _opened(app, tenant, made["channelID"]))[field] == plain
    cleared = await client.put(url, json={"name": "renamed", "settings": {field: ""}}, headers=tenant.headers)
    assert cleared.status_code == 200 and field not in cleared.json()["secretsSet"]
    assert field not in await _stored(app, made["channelID"])


async def test_a_rotated_key_still_opens_old_secrets_and_seals_new_ones(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    current = app.state.settings.resolved_secret_key
    made = await create_channel(client, tenant, "Email", settings={"smtpPassword": "old-pw"})
    try:
        secretbox.configure("a-new-secret-key-" + "n" * 32, [current])
        assert (await _opened(app, tenant, made["channelID"]))["smtpPassword"] == "old-pw"
        url = f"/api/Channels/{made['channelID']}"
        assert (
            await client.put(url, json={"name": "n", "settings": {}}, headers=tenant.headers)
        ).status_code == 200
        resealed = str((await _stored(app, made["channelID"]))["smtpPassword"])
        assert secretbox.SecretBox("a-new-secret-key-" + "n" * 32).open(resealed) == "old-pw"
        with pytest.raises(secretbox.SecretUnreadable):
            secretbox.SecretBox(current).open(resealed)  # the old key alone no longer opens it
    finally:
        secretbox.configure(current)


def test_a_client_value_that_looks_sealed_is_sealed_too() -> None:
    box = secretbox.SecretBox("k" * 40)
    looks = secretbox.PREFIX + "not-a-token"
    assert box.open(box.seal(looks)) == looks
    assert box.open("written before encryption") == "written before encryption"
