"""Personal API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


class ApiKey(TenantOwned, Base):
    __tablename__ = "api_key"

    api_key_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    customer_rep_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customer_rep.customer_rep_id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)  # shown in lists to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
