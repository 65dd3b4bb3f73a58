"""What email out keeps besides the messages: customers' templates and unsubscribed recipients."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


class EmailTemplate(TenantOwned, Base):
    """A header, footer and signature wrapped around outgoing mail (Jinja2, sandboxed)."""

    __tablename__ = "email_template"
    __table_args__ = (UniqueConstraint("customer_id", "name"),)

    email_template_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    header: Mapped[str | None] = mapped_column(Text)
    footer: Mapped[str | None] = mapped_column(Text)
    signature: Mapped[str | None] = mapped_column(Text)
    # The template of mail that names none.
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)


class EmailSuppression(TenantOwned, Base):
    """A recipient who unsubscribed from a job ad's mail: later mail of that ad to them is not sent."""

    __tablename__ = "email_suppression"
    __table_args__ = (UniqueConstraint("customer_id", "job_ad_id", "address"),)

    email_suppression_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_ad_id: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(String(320), nullable=False)  # lower-cased
    # The message whose unsubscribe link was used.
    message_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("ticket_message.message_id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
