"""Channels."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from deskpal.auth.networks import address_owner
from deskpal.channels.models import Channel, ChannelAddress, ChannelType
from deskpal.channels.schemas import (
    ChannelCreateDTO,
    ChannelDTO,
    ChannelUpdateDTO,
    parse_settings,
    public_settings,
)
from deskpal.channels.specs import spec_of
from deskpal.core import secretbox
from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict, Unprocessable, ValidationFailed
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.core.security import PHONE_TOKEN_PREFIX, digest, new_secret


def to_dto(channel: Channel, status: Mapping[int, dict[str, Any]] | None = None) -> ChannelDTO:
    """`status`: what the channel types add (type_status), by channel id."""
    shown, secrets_set = public_settings(channel.channel_type, channel.settings)
    return ChannelDTO(
        channel_id=channel.channel_id,
        name=channel.name,
        channel_type=ChannelType(channel.channel_type),
        token=channel.token,
        allowed_hostnames=list(channel.allowed_hostnames),
        settings=shown,
        secrets_set=secrets_set,
        has_phone_auth_token=channel.phone_auth_token_hash is not None,
        date_created=channel.created_at,
        **(status or {}).get(channel.channel_id, {}),
    )


async def type_status(ctx: Ctx, channels: Sequence[Channel]) -> dict[int, dict[str, Any]]:
    """The read-only fields each channel's type adds to its DTO (ChannelSpec.status), by channel id."""
    found: dict[int, dict[str, Any]] = {}
    for channel_type in {c.channel_type for c in channels}:
        spec = spec_of(channel_type)
        if spec.status is not None:
            found |= await spec.status(ctx, [c for c in channels if c.channel_type == channel_type])
    return found


def _settings(channel_type: ChannelType, raw: dict[str, Any]) -> dict[str, Any]:
    """The settings as stored: parsed, and every secret sealed under the current key."""
    try:
        parsed = parse_settings(channel_type, raw)
    except ValueError as exc:
        raise ValidationFailed(str(exc), errors=[{"field": "settings", "message": str(exc)}]) from exc
    secrets = spec_of(channel_type).settings.secret_fields & parsed.keys()
    if not secrets:
        return parsed
    sealer = secretbox.box()
    return {k: sealer.seal(v) if k in secrets and isinstance(v, str) else v for k, v in parsed.items()}


def secret_settings(channel: Channel) -> dict[str, Any]:
    """The channel's settings with its secrets opened: for the adapters that use them (SMTP, IMAP,
    a webhook's signature), never for a DTO."""
    secrets = spec_of(channel.channel_type).settings.secret_fields
    opener = secretbox.box()
    return {
        k: opener.open(v) if k in secrets and isinstance(v, str) else v for k, v in channel.settings.items()
    }


async def list_channels(
    ctx: Ctx, params: PageParams, *, channel_type: ChannelType | None = None
) -> PageResult[Channel]:
    stmt = select(Channel).order_by(Channel.channel_id)
    if channel_type is not None:
        stmt = stmt.where(Channel.channel_type == channel_type.value)
    return await paginate(ctx.db, stmt, params)


async def get_channel(ctx: Ctx, channel_id: int) -> Channel:
    return await get_or_404(ctx.db, Channel, channel_id, what="channel")


async def find_by_token(ctx: Ctx, token: str) -> Channel | None:
    return (await ctx.db.scalars(select(Channel).where(Channel.token == token))).first()


async def create_channel(ctx: Ctx, data: ChannelCreateDTO) -> tuple[Channel, str | None]:
    """The new channel and, for a Phone channel, its phone auth token (never retrievable again)."""
    phone_token = new_secret(PHONE_TOKEN_PREFIX) if data.channel_type is ChannelType.PHONE else None
    channel = Channel(
        name=data.name,
        channel_type=data.channel_type.value,
        token=uuid.uuid4().hex,
        allowed_hostnames=data.allowed_hostnames,
        settings=_settings(data.channel_type, data.settings),
        phone_auth_token_hash=digest(phone_token) if phone_token else None,
    )
    ctx.db.add(channel)
    await ctx.db.flush()
    await _claim_addresses(ctx, channel)
    await _saved(ctx, channel)
    return channel, phone_token


async def update_channel(ctx: Ctx, channel_id: int, data: ChannelUpdateDTO) -> Channel:
    channel = await get_channel(ctx, channel_id)
    channel_type = ChannelType(channel.channel_type)
    secrets = spec_of(channel_type).settings.secret_fields
    incoming = dict(data.settings)
    for name in secrets:
        # Clients never see secrets, so a replace that leaves one out keeps it; "" clears it.
        if incoming.get(name) is None and name in channel.settings:
            incoming[name] = secretbox.box().open(channel.settings[name])  # sealed again below
        elif incoming.get(name) == "":
            incoming.pop(name)
    channel.name = data.name
    channel.allowed_hostnames = data.allowed_hostnames
    channel.settings = _settings(channel_type, incoming)
    await ctx.db.flush()
    await _claim_addresses(ctx, channel)
    await _saved(ctx, channel)
    return channel


async def _saved(ctx: Ctx, channel: Channel) -> None:
    hook = spec_of(channel.channel_type).saved
    if hook is not None:
        await hook(ctx, channel)


class AddressTaken(Conflict):
    code, title = "CHANNEL_ADDRESS_TAKEN", "Another channel answers on this address"


async def _claim_addresses(ctx: Ctx, channel: Channel) -> None:
    """Keep the channel's network addresses (channel_address) as its settings name them; an address
    another channel holds, of this customer or another, is refused (an inbound call must reach
    one channel). The unique key settles two claims racing for one address."""
    wanted = set(spec_of(channel.channel_type).addresses(channel.settings))
    rows = (
        await ctx.db.scalars(select(ChannelAddress).where(ChannelAddress.channel_id == channel.channel_id))
    ).all()
    for row in rows:
        if (row.network, row.address) not in wanted:
            await ctx.db.delete(row)
    held = {(row.network, row.address) for row in rows}
    for network, address in sorted(wanted - held):
        if await address_owner(ctx.db, network, address) not in (None, channel.channel_id):
            raise AddressTaken(
                f"{address} ({network}) is another channel's address",
                errors=[{"field": "settings", "message": f"{address} is another channel's address"}],
            )
        ctx.db.add(ChannelAddress(channel_id=channel.channel_id, network=network, address=address))
    await ctx.db.flush()


async def rotate_phone_token(ctx: Ctx, channel_id: int) -> str:
    channel = await get_channel(ctx, channel_id)
    if channel.channel_type != ChannelType.PHONE.value:
        raise Unprocessable("only Phone channels have a phone auth token", code="NOT_A_PHONE_CHANNEL")
    token = new_secret(PHONE_TOKEN_PREFIX)
    channel.phone_auth_token_hash = digest(token)
    await ctx.db.flush()
    return token


async def delete_channel(ctx: Ctx, channel_id: int) -> None:
    channel = await get_channel(ctx, channel_id)
    await ctx.db.delete(channel)
    await ctx.db.flush()
