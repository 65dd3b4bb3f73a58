"""Attachment DTOs, named as the seeds spell them."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from deskpal.core.schemas import ApiModel


class TicketMessageAttachmentDTO(ApiModel):
    ticket_message_attachment_id: int = Field(alias="ticketMessageAttachmentID")
    message_id: int = Field(alias="messageID")
    file_name: str
    content_type: str
    file_size_bytes: int
    created_date_time: datetime
    is_end_user_provided: bool
    is_customer_rep_provided: bool
    converted_from_attachment_id: int | None = Field(alias="convertedFromAttachmentID")
    content_id: str | None
    access_token: str = Field(description="Download the bytes with GET /api/File/{accessToken}.")
