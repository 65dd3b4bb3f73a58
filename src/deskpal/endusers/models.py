"""End users: the people who contact a customer's support."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


class EndUser(TenantOwned, Base):
    __tablename__ = "end_user"
    __table_args__ = (UniqueConstraint("customer_id", "uid"),)

    end_user_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    # The stable identifier tickets link by: an email address, a phone number or a chat id.
    uid: Mapped[str] = mapped_column(String(254), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
