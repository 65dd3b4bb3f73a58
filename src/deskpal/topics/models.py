"""Topics: what a conversation is about, assigned by agents or detected by the AI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


class Topic(TenantOwned, Base):
    __tablename__ = "topic"
    __table_args__ = (UniqueConstraint("customer_id", "name"),)

    topic_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
