"""channel addresses: the network addresses each channel answers on, unique across deskpal

channel_address maps (network, address) - an Email channel's fromAddress, a Phone channel's
number, a WhatsApp phone number id, a Teams app id - to its channel and customer, for the resolver
that turns an inbound network call into its channel (auth/networks.py). Filled here from the
channels' settings as the channel packages read them; where two channels claimed one address, the
older channel keeps it.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03 06:00:00
"""

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the channel packages' address rules as they were at this revision.
_SETTING = {"Email": ("email", "fromAddress"), "Phone": ("phone", "phoneNumber"),
            "WhatsApp": ("whatsapp", "phoneNumberId"), "Teams": ("teams", "appId")}  # fmt: skip


def _address(network: str, value: str) -> str:
    if network == "email":
        return value.strip().lower()
    if network == "phone":
        return ("+" if value.strip().startswith("+") else "") + re.sub(r"\D", "", value)
    return value


def upgrade() -> None:
    op.create_table(
        "channel_address",
        sa.Column(
            "channel_address_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
        ),
        sa.Column(
            "customer_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("customer.customer_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "channel_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("channel.channel_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("network", sa.String(20), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.UniqueConstraint("network", "address", name="uq_channel_address_network_address"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_channel_address_customer_id", "channel_address", ["customer_id"])
    op.create_index("ix_channel_address_channel_id", "channel_address", ["channel_id"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT channel_id, customer_id, channel_type, settings FROM channel ORDER BY channel_id")
    ).all()
    taken: set[tuple[str, str]] = set()
    for channel_id, customer_id, channel_type, settings in rows:
        stored: dict[str, Any] = settings if isinstance(settings, dict) else _json(settings)
        network, key = _SETTING.get(channel_type, ("", ""))
        value = stored.get(key) if key else None
        if not value:
            continue
        pair = (network, _address(network, str(value)))
        if pair in taken:
            continue
        taken.add(pair)
        bind.execute(
            sa.text(
                "INSERT INTO channel_address (customer_id, channel_id, network, address) "
                "VALUES (:customer_id, :channel_id, :network, :address)"
            ),
            {"customer_id": customer_id, "channel_id": channel_id, "network": pair[0], "address": pair[1]},
        )


def _json(value: Any) -> dict[str, Any]:
    import json

    loaded = json.loads(value) if value else {}
    return loaded if isinstance(loaded, dict) else {}


def downgrade() -> None:
    op.drop_table("channel_address")
