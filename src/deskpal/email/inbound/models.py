"""Every mail that came in, recorded before it is parsed: its raw bytes' key, where it stands, and
what it became (docs/mail.md, "Inbound pipeline")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.tenancy import TenantOwned


class InboundStatus(CaseInsensitiveEnum):
    PENDING = "pending"  # durable, waiting for (or in) its email.receive job
    STORED = "stored"  # parsed and filed: a message, a bounce marked, or kept with no ticket
    DUPLICATE = "duplicate"  # the same mail arrived before (duplicate_of): not filed again
    FAILED = "failed"  # its job failed; the raw bytes and the error are kept, retry refiles it


class InboundSource(CaseInsensitiveEnum):
    IMAP = "imap"
    ENDPOINT = "endpoint"  # POST /api/Channels/{id}/inbound
    IMPORT = "import"  # deskpal mail import


class InboundMail(TenantOwned, Base):
    __tablename__ = "inbound_mail"
    __table_args__ = (
        # GET /api/InboundMails?status=failed, newest first.
        Index("ix_inbound_mail_customer_id_status", "customer_id", "status", "inbound_mail_id"),
    )

    inbound_mail_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    # A deleted channel leaves its mails (and their raw bytes) behind: nothing received is lost.
    channel_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("channel.channel_id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    # What the header block says, read before parsing (the parser decides what the mail is).
    header_message_id: Mapped[str | None] = mapped_column(String(998))
    subject: Mapped[str | None] = mapped_column(String(998))
    from_address: Mapped[str | None] = mapped_column(String(320))
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # "mid:<sha256 of the Message-ID>", or "raw:<sha256 of the bytes>" for a mail without one: an
    # original is unique per channel by it (uq_inbound_mail_original, below).
    dedupe_key: Mapped[str] = mapped_column(String(80), nullable=False)
    size: Mapped[int] = mapped_column(IdType, nullable=False)
    # <inbound>/<customer id>/<uuid>; a byte-identical duplicate shares its original's.
    storage_key: Mapped[str] = mapped_column(String(200), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=InboundStatus.PENDING)
    kind: Mapped[str | None] = mapped_column(String(16))  # parsed.MailKind; None until parsed
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, readable
    # What was done with it, in words: "message 12 in ticket 5", "bounce of message 9", ...
    outcome: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("ticket_message.message_id", ondelete="SET NULL"), index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("ticket.ticket_id", ondelete="SET NULL"), index=True
    )
    # CASCADE, not SET NULL: duplicates made originals again would collide in the unique index.
    duplicate_of: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("inbound_mail.inbound_mail_id", ondelete="CASCADE"), index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # job runs so far
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# One original per channel and dedupe key; duplicates (duplicate_of set) are outside the index, so
# the second arrival gets a row of its own. receive.py inserts with ON CONFLICT DO NOTHING on it.
ORIGINALS_WHERE = InboundMail.duplicate_of.is_(None)
Index(
    "uq_inbound_mail_original",
    InboundMail.customer_id,
    InboundMail.channel_id,
    InboundMail.dedupe_key,
    unique=True,
    postgresql_where=ORIGINALS_WHERE,
    sqlite_where=ORIGINALS_WHERE,
)
