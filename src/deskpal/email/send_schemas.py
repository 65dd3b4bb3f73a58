"""Bodies and answers of the send endpoints (seeds 000: "Send/action bodies")."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from deskpal.core.schemas import ApiModel
from deskpal.email.sending import OversizedDecision, Request
from deskpal.messages.schemas import Body


class SendRequest(ApiModel):
    modified_answer: Body | None = Field(
        default=None, description="Sent instead of the prepared reply (send and preview only)."
    )
    oversized_attachment_decision: OversizedDecision | None = Field(
        default=None,
        description="When the attachments exceed the channel's limit: links (download links) or refuse.",
    )

    def request(self) -> Request:
        return Request(modified_answer=self.modified_answer, oversized=self.oversized_attachment_decision)


class SendResponse(ApiModel):
    message: str = Field(examples=["Message sent successfully."])
    message_id: int = Field(alias="messageID", description="The outgoing message.")
    delivery_status: str = Field(description="queued: the worker sends it; GET the message to follow it.")
    message_identifier: str | None = Field(description="Its Message-ID.")


class PreviewAttachment(ApiModel):
    file_name: str
    content_type: str
    file_size_bytes: int
    content_id: str | None


class PreviewResponse(ApiModel):
    """The mail as send would send it now."""

    message_id: int | None = Field(
        alias="messageID", description="The message sent; null for a reply not written yet."
    )
    subject: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: str | None = None
    headers: dict[str, str]
    text_body: str | None
    html_body: str | None
    attachments: list[PreviewAttachment]
    attachment_bytes: int
    max_attachment_bytes: int
    oversized: bool

    @classmethod
    def of(cls, shown: dict[str, Any]) -> PreviewResponse:
        return cls.model_validate({**shown, "replyTo": shown["headers"].get("Reply-To")})
