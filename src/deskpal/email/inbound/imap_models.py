"""Where each Email channel's IMAP folder stands: the last UID taken in, under which UIDVALIDITY, and
who polls it now (a lease), when next, and how the last tries went."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned


class ImapMailbox(TenantOwned, Base):
    """One folder of one channel's IMAP account (a channel that changes imapFolder gets a row for
    the new folder; the old row keeps its place, unpolled, should the folder come back)."""

    __tablename__ = "imap_mailbox"
    __table_args__ = (
        UniqueConstraint("channel_id", "folder", name="uq_imap_mailbox_channel_id_folder"),
        # The poller's "which mailboxes are due" probe, across customers.
        Index("ix_imap_mailbox_due", "next_poll_at"),
    )

    imap_mailbox_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("channel.channel_id", ondelete="CASCADE"), nullable=False, index=True
    )
    folder: Mapped[str] = mapped_column(String(200), nullable=False)
    # user@host: another account's UIDs mean nothing here, so a change starts over from UID 0.
    account: Mapped[str | None] = mapped_column(String(400))
    # RFC 3501: a UID names a message only together with its folder's UIDVALIDITY (32 bits unsigned).
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    # Every message up to this UID has been received (receive() committed it) under `uidvalidity`.
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Messages the last poll saw above last_uid and did not fetch yet (a round's budget ran out).
    backlog: Mapped[int | None] = mapped_column(Integer)
    # NULL: not polled (the channel has no imapHost, or polls another folder now).
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # in a row: the backoff
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the last poll that got through
    last_error: Mapped[str | None] = mapped_column(
        Text
    )  # the advice of the last failure; None once one works
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
