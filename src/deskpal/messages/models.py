"""Ticket messages: the conversation inside a ticket (issue 5 extends this table and its API)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


class SenderType(enum.StrEnum):
    END_USER = "EndUser"
    CUSTOMER_REP = "CustomerRep"
    AI = "AI"
    SYSTEM = "System"


class TicketMessage(TenantOwned, Base):
    __tablename__ = "ticket_message"
    # A ticket's conversation in order, and its newest end-user message, come from this index.
    __table_args__ = (Index("ix_ticket_message_ticket_id_created_at", "ticket_id", "created_at"),)

    message_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("ticket.ticket_id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    message_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    incoming: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    sender_type: Mapped[str] = mapped_column(String(20), nullable=False, default=SenderType.END_USER)
    customer_rep_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customer_rep.customer_rep_id", ondelete="SET NULL"), index=True
    )
    is_draft: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_internal_note: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    subject: Mapped[str | None] = mapped_column(String(998))
    message: Mapped[str | None] = mapped_column(Text)
    # Plain text of the message: what the full-text index covers (with the subject).
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    body_preview: Mapped[str | None] = mapped_column(String(500))
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    to_address: Mapped[str | None] = mapped_column(Text)
    cc_address: Mapped[str | None] = mapped_column(Text)
    bcc_address: Mapped[str | None] = mapped_column(Text)
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    uid: Mapped[str | None] = mapped_column(String(254))
    custom_fields_data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
