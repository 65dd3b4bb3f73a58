"""The one resolver from a network's address to the channel and customer it reaches.

Inbound mail names a mailbox, Twilio a phone number, Meta a WhatsApp phone number id, Teams a bot's
app id, the chat widget its channel's public token: none names a customer. Each lookup reads across
customers (as the other credential lookups in auth/ do), by a unique key, so an address reaches at
most one channel of one customer; what the caller may then do is the channel's customer's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.channels.models import Channel, ChannelAddress
from deskpal.channels.specs import address_key

CHAT = "chat"  # the chat widget's network: a channel's public token


@dataclass(frozen=True, slots=True)
class ResolvedChannel:
    customer_id: int
    channel_id: int
    channel_type: str


async def resolve_channel(db: AsyncSession, network: str, address: str) -> ResolvedChannel | None:
    """The channel `address` on `network` reaches, or None."""
    if network == CHAT:
        stmt = select(Channel.customer_id, Channel.channel_id, Channel.channel_type).where(
            Channel.token == address.strip()
        )
    else:
        stmt = (
            select(ChannelAddress.customer_id, ChannelAddress.channel_id, Channel.channel_type)
            .join(Channel, Channel.channel_id == ChannelAddress.channel_id)
            .where(ChannelAddress.network == network, ChannelAddress.address == address_key(network, address))
        )
    row = (await db.execute(stmt.execution_options(all_tenants=True))).first()
    return ResolvedChannel(int(row[0]), int(row[1]), str(row[2])) if row else None


async def address_owner(db: AsyncSession, network: str, address: str) -> int | None:
    """The channel (of any customer) that holds this address, or None."""
    stmt = select(ChannelAddress.channel_id).where(
        ChannelAddress.network == network, ChannelAddress.address == address
    )
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()


async def held_addresses(db: AsyncSession, network: str, addresses: list[str]) -> set[str]:
    """Which of `addresses` (compared as the network's channels store them) a channel of any
    customer holds: deskpal's own addresses, which its automatic mail never goes to."""
    keys = {address_key(network, a): a for a in addresses}
    if not keys:
        return set()
    stmt = select(ChannelAddress.address).where(
        ChannelAddress.network == network, ChannelAddress.address.in_(list(keys))
    )
    found = set((await db.scalars(stmt.execution_options(all_tenants=True))).all())
    return {keys[k] for k in found}
