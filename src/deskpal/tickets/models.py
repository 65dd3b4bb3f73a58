"""Tickets: a customer's conversations with one end user, and their lifecycle state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.tenancy import TenantOwned

if TYPE_CHECKING:
    from deskpal.channels.models import Channel
    from deskpal.customers.models import CustomerRep
    from deskpal.endusers.models import EndUser
    from deskpal.topics.models import Topic

# The list's sort keys: each is the third column of an index (customer_id, is_processed, key,
# ticket_id), so a page is an ordered index walk on both databases.
SORT_COLUMNS = ("created_at", "last_message_date", "status", "subject", "follow_up_date", "close_date")


def _new_token() -> str:
    return str(uuid.uuid4())


class Ticket(TenantOwned, Base):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_list_ticket_id", "customer_id", "is_processed", "ticket_id"),
        *(
            Index(f"ix_ticket_list_{c}", "customer_id", "is_processed", c, "ticket_id")
            for c in SORT_COLUMNS
            if c != "follow_up_date"
        ),
        # A listed count subtracts the filter's tickets with a future follow-up (tickets.queries
        # _count): with status in this index those are counted without reading their rows.
        Index(
            "ix_ticket_list_follow_up_date",
            "customer_id",
            "is_processed",
            "follow_up_date",
            "ticket_id",
            "status",
        ),
        Index("ix_ticket_customer_id_channel_type", "customer_id", "channel_type"),
        Index("ix_ticket_customer_id_uid", "customer_id", "uid"),
        Index("ix_ticket_customer_id_is_spam", "customer_id", "is_spam"),
        Index("ix_ticket_customer_id_is_closed", "customer_id", "is_closed"),
    )

    ticket_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    # Public: names the ticket to the end user (chat widget, feedback links); not a credential.
    token: Mapped[str] = mapped_column(String(36), nullable=False, unique=True, default=_new_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    subject: Mapped[str] = mapped_column(String(500), nullable=False)
    channel_type: Mapped[str] = mapped_column(String(20), nullable=False)
    channel_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("channel.channel_id", ondelete="SET NULL"), index=True
    )
    customer_rep_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customer_rep.customer_rep_id", ondelete="SET NULL"), index=True
    )
    uid: Mapped[str | None] = mapped_column(String(254))
    escalated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_spam: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_important: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_closed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_processed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_read: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    close_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    follow_up_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Kept by messages.latest; no foreign key, since ticket and message would refer to each other.
    last_end_user_message_id: Mapped[int | None] = mapped_column(IdType)
    preview: Mapped[str | None] = mapped_column(String(500))
    summary: Mapped[str | None] = mapped_column(Text)
    twilio_call_sid: Mapped[str | None] = mapped_column(String(64))
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    forwarded_to_number: Mapped[str | None] = mapped_column(String(32))
    forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A stored call recording: its file name under the data dir, content type and size.
    recording_key: Mapped[str | None] = mapped_column(String(200))
    recording_content_type: Mapped[str | None] = mapped_column(String(100))
    recording_size: Mapped[int | None] = mapped_column(IdType)
    custom_fields_data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # The comments escalations of its messages left (aiFeedbackComments), oldest first.
    ai_feedback_comments: Mapped[list[str]] = mapped_column(
        JSON, nullable=False, default=list, server_default="[]"
    )
    # Set through the second helpdesk's Messages API (ticket_update): low/normal/high/urgent and
    # question/incident/problem/task.
    priority: Mapped[str | None] = mapped_column(String(20))
    ticket_type: Mapped[str | None] = mapped_column(String(20))

    channel: Mapped[Channel | None] = relationship(lazy="raise")
    customer_rep: Mapped[CustomerRep | None] = relationship(lazy="raise")
    # Links are written as TicketEndUser / TicketTopic rows (they carry customer_id); these only read.
    end_users: Mapped[list[EndUser]] = relationship(
        secondary="ticket_end_user", viewonly=True, lazy="raise", order_by="EndUser.end_user_id"
    )
    topics: Mapped[list[Topic]] = relationship(
        secondary="ticket_topic", viewonly=True, lazy="raise", order_by="Topic.name"
    )


class TicketEndUser(TenantOwned, Base):
    __tablename__ = "ticket_end_user"

    ticket_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("ticket.ticket_id", ondelete="CASCADE"), primary_key=True
    )
    end_user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("end_user.end_user_id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TicketTopic(TenantOwned, Base):
    __tablename__ = "ticket_topic"

    ticket_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("ticket.ticket_id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("topic.topic_id", ondelete="CASCADE"), primary_key=True, index=True
    )


# The columns a ticket list can filter on without reading tickets (tickets/counts.py): a ticket is
# counted in the bucket of its values of these; channel and rep 0 stand for none.
COUNT_BUCKET = (
    "is_processed",
    "status",
    "channel_id",
    "customer_rep_id",
    "channel_type",
    "is_spam",
    "is_closed",
)


class TicketCount(TenantOwned, Base):
    """How many tickets each bucket holds, as rows of +n / -n that add up (tickets/counts.py).

    Written only by the database: triggers on ticket append a row per insert, delete, or change of
    a bucket column, in the writing transaction; the worker folds a bucket's rows into one. Appended
    rows never contend for a lock the way one counter row per bucket would.
    """

    __tablename__ = "ticket_count"
    __table_args__ = (Index("ix_ticket_count_bucket", "customer_id", "is_processed", "status"),)

    count_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    is_processed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    channel_id: Mapped[int] = mapped_column(IdType, nullable=False)
    customer_rep_id: Mapped[int] = mapped_column(IdType, nullable=False)
    channel_type: Mapped[str] = mapped_column(String(20), nullable=False)
    is_spam: Mapped[bool] = mapped_column(Boolean, nullable=False)
    is_closed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
