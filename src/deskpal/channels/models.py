"""Channels: where conversations come in (Email, Chat, Phone, WhatsApp, Teams)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.tenancy import TenantOwned


class ChannelType(CaseInsensitiveEnum):
    EMAIL = "Email"
    CHAT = "Chat"
    PHONE = "Phone"
    WHATSAPP = "WhatsApp"
    TEAMS = "Teams"


class Channel(TenantOwned, Base):
    __tablename__ = "channel"

    channel_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel_type: Mapped[str] = mapped_column(String(20), nullable=False)
    # Public: identifies the channel to anonymous clients (the chat widget); not a credential.
    token: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    allowed_hostnames: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    phone_auth_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ChannelAddress(TenantOwned, Base):
    """An address a network reaches a channel at, one channel's in all of deskpal: the key the
    resolver (auth/networks.py) turns back into the channel and its customer."""

    __tablename__ = "channel_address"
    __table_args__ = (UniqueConstraint("network", "address", name="uq_channel_address_network_address"),)

    channel_address_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("channel.channel_id", ondelete="CASCADE"), nullable=False, index=True
    )
    network: Mapped[str] = mapped_column(String(20), nullable=False)  # email, phone, whatsapp, teams
    address: Mapped[str] = mapped_column(String(320), nullable=False)
