"""Files attached to ticket messages: metadata here, bytes in storage under storage_key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


def _new_access_token() -> str:
    return str(uuid.uuid4())


class TicketMessageAttachment(TenantOwned, Base):
    __tablename__ = "ticket_message_attachment"

    ticket_message_attachment_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("ticket_message.message_id", ondelete="CASCADE"), index=True, nullable=False
    )
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    file_size_bytes: Mapped[int] = mapped_column(IdType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    is_end_user_provided: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_customer_rep_provided: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # An attachment derived from another (a resized image, a PDF of a document).
    converted_from_attachment_id: Mapped[int | None] = mapped_column(
        IdType,
        ForeignKey("ticket_message_attachment.ticket_message_attachment_id", ondelete="SET NULL"),
        index=True,
    )
    # The Content-ID of an inline MIME part (cid: references in an HTML body).
    content_id: Mapped[str | None] = mapped_column(String(255))
    # The download credential of GET /api/File/{accessToken}: random, never derived from ids.
    access_token: Mapped[str] = mapped_column(
        String(36), nullable=False, unique=True, default=_new_access_token
    )
    # Where the bytes are: <area>/<customer id>/<uuid>, made by deskpal, never from user input.
    storage_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
