"""Ticket messages: the conversation inside a ticket, and the topics assigned to each message."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.tenancy import TenantOwned

if TYPE_CHECKING:
    from deskpal.channels.models import Channel
    from deskpal.customers.models import CustomerRep
    from deskpal.topics.models import Topic


class SenderType(CaseInsensitiveEnum):
    END_USER = "EndUser"
    CUSTOMER_REP = "CustomerRep"
    AI = "AI"
    SYSTEM = "System"


class TopicsStatus(CaseInsensitiveEnum):
    """aiTopicsStatus: where the message is in topic detection and learning."""

    CORRECTED = "Corrected"  # a rep replaced the topics: the signal topic learning uses


class TicketMessage(TenantOwned, Base):
    __tablename__ = "ticket_message"
    __table_args__ = (
        # A ticket's conversation in order, and its newest end-user message, come from this index.
        Index("ix_ticket_message_ticket_id_created_at", "ticket_id", "created_at"),
        # The email issue's sender picks pending sends up by this index.
        Index("ix_ticket_message_customer_id_send_pending", "customer_id", "send_pending"),
        # A network that delivers a message again (a retried webhook, a mailbox read twice) finds it
        # stored: one message per external id and channel (conversations.intake).
        Index(
            "uq_ticket_message_customer_id_channel_id_external_id",
            "customer_id",
            "channel_id",
            "external_id",
            unique=True,
        ),
        # Replies thread by the message they answer (a mail's In-Reply-To names its Message-ID).
        Index("ix_ticket_message_customer_id_message_identifier", "customer_id", "message_identifier"),
    )

    message_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("ticket.ticket_id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)
    message_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    incoming: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    sender_type: Mapped[str] = mapped_column(String(20), nullable=False, default=SenderType.END_USER)
    customer_rep_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customer_rep.customer_rep_id", ondelete="SET NULL"), index=True
    )
    # Who wrote the row (a rep through either API), whatever the sender: the second API's authorId.
    created_by_rep_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customer_rep.customer_rep_id", ondelete="SET NULL"), index=True
    )
    # Their names, written with the message and set to the rep's last name when the rep is
    # deleted (messages/authors.py): the ids then become null, and authorship must not go with them.
    customer_rep_name: Mapped[str | None] = mapped_column(String(200))
    created_by_rep_name: Mapped[str | None] = mapped_column(String(200))
    channel_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("channel.channel_id", ondelete="SET NULL"), index=True
    )
    channel_type: Mapped[str | None] = mapped_column(String(20))
    is_draft: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_internal_note: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_forward: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    subject: Mapped[str | None] = mapped_column(String(998))
    message: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[str | None] = mapped_column(Text)
    # Plain text of the message: what the full-text index covers (with the subject).
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)  # sanitised on the way in
    body_preview: Mapped[str | None] = mapped_column(String(500))
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    to_address: Mapped[str | None] = mapped_column(Text)
    cc_address: Mapped[str | None] = mapped_column(Text)
    bcc_address: Mapped[str | None] = mapped_column(Text)
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    uid: Mapped[str | None] = mapped_column(String(254))
    # Tracking and delivery.
    is_opened: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_bounced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_open_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_identifier: Mapped[str | None] = mapped_column(String(998))  # the mail's Message-ID
    # The network's own id of the message (a Twilio MessageSid, a WhatsApp message id, a mailbox's
    # UID + validity): unique per channel, so a delivery repeated is stored once.
    external_id: Mapped[str | None] = mapped_column(String(998))
    # A send the email issue's sender will perform: set by the APIs, cleared when the mail is sent.
    send_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    send_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # deliveryStatus (email/delivery.py: queued, sending, sent, deferred, failed, suppressed); None
    # for what is never sent (incoming mail, drafts, notes). The server's reply when sent, its
    # error text when deferred or failed.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    delivery_response: Mapped[str | None] = mapped_column(Text)
    # The open-tracking pixel's credential (unguessable, one per outgoing message) and how often
    # it was fetched.
    open_token: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    open_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # Inbound mail (email/inbound): why the message joined its ticket ("In-Reply-To: <id>",
    # "Subject: [#12]", "new", "moved by <rep>"), whether it is automatic mail (an out-of-office
    # answer, a report: it reopens nothing and triggers nothing), and where replies to it go (the
    # mail's Reply-To, when it had one; else from_address).
    threading_reason: Mapped[str | None] = mapped_column(Text)
    is_auto_reply: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    reply_to_address: Mapped[str | None] = mapped_column(Text)
    # A bounce of this outgoing mail (is_bounced): the RFC 3463 status and the server's words.
    bounce_status: Mapped[str | None] = mapped_column(String(32))
    bounce_diagnostic: Mapped[str | None] = mapped_column(Text)
    # AI and workflow state.
    ai_spam_status: Mapped[str | None] = mapped_column(String(30))
    ai_topics_status: Mapped[str | None] = mapped_column(String(30))
    ai_reply_status: Mapped[str | None] = mapped_column(String(30))
    ai_generated_response: Mapped[str | None] = mapped_column(Text)
    ai_modified_response: Mapped[str | None] = mapped_column(Text)
    ai_prompt: Mapped[str | None] = mapped_column(Text)
    is_escalated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    escalation_comment: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Context and linkage.
    page_screenshot: Mapped[str | None] = mapped_column(Text)
    page_url: Mapped[str | None] = mapped_column(String(2048))
    additional_info: Mapped[str | None] = mapped_column(Text)
    email_template_id: Mapped[int | None] = mapped_column(IdType)  # templates arrive with the email issue
    reply_to_message_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("ticket_message.message_id", ondelete="SET NULL"), index=True
    )
    forward_from_message_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("ticket_message.message_id", ondelete="SET NULL")
    )
    # The second API's attachment references ({token, name, size}) as given.
    attachment_refs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    custom_fields_data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    customer_rep: Mapped[CustomerRep | None] = relationship(foreign_keys=[customer_rep_id], lazy="raise")
    channel: Mapped[Channel | None] = relationship(lazy="raise")
    topic_links: Mapped[list[TicketMessageTopic]] = relationship(
        viewonly=True, lazy="raise", order_by="TicketMessageTopic.ticket_message_topic_id"
    )


class TicketMessageTopic(TenantOwned, Base):
    __tablename__ = "ticket_message_topic"
    __table_args__ = (UniqueConstraint("message_id", "topic_id"),)

    ticket_message_topic_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("ticket_message.message_id", ondelete="CASCADE"), nullable=False
    )
    topic_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("topic.topic_id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    corrected: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    correction_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    corrected_by_customer_rep_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("customer_rep.customer_rep_id", ondelete="SET NULL"), index=True
    )
    # The name as it was when correcting: the rep may be renamed or deleted later.
    corrected_by_customer_rep_name: Mapped[str | None] = mapped_column(String(200))

    topic: Mapped[Topic] = relationship(lazy="raise")
