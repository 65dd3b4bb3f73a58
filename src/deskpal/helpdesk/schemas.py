"""DTOs of the second helpdesk's Messages API: snake_case requests, camelCase message objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from deskpal.core.addresses import normalize_email
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.schemas import ApiModel, CleanStr, Line


class MessageType(CaseInsensitiveEnum):
    REQUEST = "request"  # inbound, from the customer
    RESPONSE = "response"  # outbound reply from an agent; sends email by default
    NOTE = "note"  # internal note, visible to agents only


class Priority(CaseInsensitiveEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketType(CaseInsensitiveEnum):
    QUESTION = "question"
    INCIDENT = "incident"
    PROBLEM = "problem"
    TASK = "task"


class SortOrder(CaseInsensitiveEnum):
    ASC = "asc"
    DESC = "desc"


class SnakeModel(ApiModel):
    """Request bodies of this API use the field names as they are (ticket_id, send_email)."""

    model_config = ConfigDict(alias_generator=None, extra="forbid")


Email = Annotated[CleanStr, Field(max_length=320), AfterValidator(normalize_email)]


class Recipient(SnakeModel):
    email: Email
    name: Annotated[CleanStr, Field(max_length=200)] | None = None


class AttachmentRef(SnakeModel):
    token: Annotated[Line, Field(min_length=1, max_length=200)]
    name: Annotated[Line, Field(min_length=1, max_length=255)]
    size: Annotated[int, Field(ge=0, le=2**53 - 1)]


class TicketUpdate(SnakeModel):
    status: Annotated[Line, Field(min_length=1, max_length=50)] | None = None
    priority: Priority | None = None
    type: TicketType | None = None


class MessageCreate(SnakeModel):
    ticket_id: Annotated[Line, Field(min_length=1, max_length=40)]
    type: MessageType
    content: Annotated[Line, Field(min_length=1, max_length=1_000_000)] = Field(
        description="HTML; sanitised on the way in."
    )
    text_content: Annotated[CleanStr, Field(max_length=1_000_000)] | None = None
    recipients: list[Recipient] | None = Field(
        default=None, max_length=100, description="Override recipients (required for forwards)."
    )
    ccs: list[Recipient] | None = Field(default=None, max_length=100)
    attachments: list[AttachmentRef] | None = Field(default=None, max_length=100)
    send_email: bool | None = Field(
        default=None, description="Responses only; default true. Recorded as a pending send."
    )
    is_forward: bool = False
    ticket_update: TicketUpdate | None = None


class HelpdeskMessageDTO(ApiModel):
    """The message object: ids are strings."""

    id: str
    ticket_id: str
    type: MessageType
    content: str
    text_content: str | None
    author_id: str | None = Field(
        description="A request's end user (an EndUsers id); a response's or note's representative."
    )
    author_name: str | None = Field(
        description="The author's name; kept when the representative is deleted (authorId is then null)."
    )
    attachments: list[AttachmentRef]
    ccs: list[Recipient]
    created_at: datetime
    updated_at: datetime


class HelpdeskMessagePage(ApiModel):
    data: list[HelpdeskMessageDTO]
    page: int
    limit: int
    total: int
    total_pages: int
