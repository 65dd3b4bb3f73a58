"""InboundMail DTOs: a received mail as /api/InboundMails shows it, and the raw-mail endpoint's answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from deskpal.core.schemas import ApiModel


class InboundReceivedDTO(ApiModel):
    """202 of POST /api/Channels/{id}/inbound: the mail is durable (stored and recorded)."""

    inbound_mail_id: int = Field(alias="inboundMailID")
    status: str = Field(description="pending (filed by a job shortly), or duplicate (it came before).")
    duplicate_of_id: int | None = Field(
        alias="duplicateOfID", description="The inbound mail a duplicate repeats; null otherwise."
    )


class InboundMailDTO(ApiModel):
    inbound_mail_id: int = Field(alias="inboundMailID")
    channel_id: int | None = Field(alias="channelID")
    source: str = Field(description="imap, endpoint or import.")
    message_identifier: str | None = Field(description="The Message-ID its header names.")
    subject: str | None
    from_address: str | None
    size: int = Field(description="Bytes of the raw mail.")
    sha256: str
    received_at: datetime
    status: str = Field(description="pending, stored, duplicate or failed.")
    kind: str | None = Field(description="message, bounce, autoreply or report; null until parsed.")
    error: str | None = Field(description="Why it failed (status failed).")
    outcome: str | None = Field(description="What was done with it, in words.")
    message_id: int | None = Field(alias="messageID", description="The message it became.")
    ticket_id: int | None = Field(alias="ticketID", description="The ticket that message is in.")
    duplicate_of_id: int | None = Field(alias="duplicateOfID")
    attempts: int = Field(description="How often it was parsed and filed.")
    processed_at: datetime | None
