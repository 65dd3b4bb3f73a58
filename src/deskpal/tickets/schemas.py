"""Ticket DTOs, spelled as the Tickets reference page spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from deskpal.core.addresses import EmailAddress
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.schemas import ApiModel, CleanStr, DbId, Line, UtcDateTime
from deskpal.endusers.schemas import EndUserDTO

Status = Annotated[Line, Field(min_length=1, max_length=50)]
PhoneNumber = Annotated[CleanStr, Field(max_length=32)]


class TicketWriteDTO(ApiModel):
    """TicketWriteDTO / TicketBaseDTO: the editable fields of a ticket."""

    status: Status
    subject: Annotated[Line, Field(min_length=1, max_length=500)]
    channel_type: Annotated[Line, Field(min_length=1, max_length=20)] = Field(
        description="In a channel, the channel's type (another is 400); follows a change of channelID."
    )
    customer_rep_id: DbId | None = Field(
        default=None, alias="customerRepID", description="A PUT that leaves it out keeps the assignment."
    )
    channel_id: DbId | None = Field(
        default=None, alias="channelID", description="A PUT that leaves it out keeps the channel."
    )
    end_user_id: DbId | None = Field(
        default=None, alias="endUserID", description="Links this end user (as the older page's example)."
    )
    uid: Annotated[CleanStr | None, Field(max_length=254)] = None
    escalated: bool = False
    is_spam: bool = False
    is_important: bool = False
    is_closed: bool = Field(default=False, description="Follows status (Closed); must agree with it.")
    is_processed: bool = Field(default=True, description="Only processed tickets are listed.")
    is_read: bool = False
    close_date: UtcDateTime | None = Field(
        default=None, description="Set on closing (default now); a closed ticket keeps it; null when open."
    )
    end_date: UtcDateTime | None = None
    follow_up_date: UtcDateTime | None = Field(
        default=None, description="A future follow-up hides the ticket from lists unless includeFollowUp."
    )
    last_message_date: UtcDateTime | None = Field(
        default=None, description="Ignored on POST and PUT, refused by PATCH: kept from the messages."
    )
    preview: Annotated[CleanStr | None, Field(max_length=500)] = Field(
        default=None, description="Ignored on POST and PUT, refused by PATCH: kept from the messages."
    )
    summary: Annotated[CleanStr | None, Field(max_length=20000)] = None
    twilio_call_sid: Annotated[CleanStr | None, Field(max_length=64)] = Field(
        default=None, alias="twilio_CallSid"
    )
    from_number: PhoneNumber | None = None
    to_number: PhoneNumber | None = None
    custom_fields_data: dict[str, Any] = Field(default_factory=dict)


WRITE_FIELDS = frozenset(f.alias or name for name, f in TicketWriteDTO.model_fields.items())


class TicketReadDTO(ApiModel):
    """TicketReadDTO: a ticket as list and detail return it."""

    ticket_id: int = Field(alias="ticketID")
    token: str
    date_created: datetime
    status: str
    subject: str
    channel_type: str
    channel_id: int | None = Field(alias="channelID")
    channel_name: str | None
    customer_rep_id: int | None = Field(alias="customerRepID")
    customer_rep_name: str | None
    end_user_id: int | None = Field(alias="endUserID", description="The first linked end user.")
    uid: str | None
    escalated: bool
    is_spam: bool
    is_important: bool
    is_closed: bool
    is_processed: bool
    is_read: bool
    close_date: datetime | None
    end_date: datetime | None
    follow_up_date: datetime | None
    last_message_date: datetime | None
    preview: str | None
    summary: str | None
    twilio_call_sid: str | None = Field(alias="twilio_CallSid")
    from_number: str | None
    to_number: str | None
    custom_fields_data: dict[str, Any]
    ai_feedback_comments: list[str] = Field(
        default_factory=list,
        description="The comments escalations of the ticket's messages left, oldest first.",
    )
    end_users: list[EndUserDTO]
    topics: list[str] = Field(description="Topic names.")
    has_recording: bool
    last_end_user_message_id: int | None = Field(alias="lastEndUserMessageID")


class SortBy(CaseInsensitiveEnum):
    TICKET_ID = "ticketID"
    DATE_CREATED = "dateCreated"
    LAST_MESSAGE_DATE = "lastMessageDate"
    STATUS = "status"
    SUBJECT = "subject"
    FOLLOW_UP_DATE = "followUpDate"
    CLOSE_DATE = "closeDate"
    RELEVANCE = "relevance"


class SortOrder(CaseInsensitiveEnum):
    ASC = "asc"
    DESC = "desc"


class TicketQuery(ApiModel):
    """TicketQueryParameters, less paging."""

    status: list[str] = Field(default_factory=list)
    channel_ids: list[int] = Field(default_factory=list, alias="channelIDs")
    customer_rep_id: int | None = Field(default=None, alias="customerRepID")
    channel_type: str | None = None
    uid: str | None = None
    end_user_id: int | None = Field(default=None, alias="endUserID")
    search: str | None = None
    is_spam: bool | None = None
    is_closed: bool | None = None
    include_follow_up: bool = False
    sort_by: SortBy | None = None
    sort_order: SortOrder = SortOrder.DESC


class BulkAction(CaseInsensitiveEnum):
    INVERT_STATE = "invertstate"
    SPAM = "spam"
    NOT_SPAM = "notspam"
    READ = "read"
    CLOSE = "close"
    OPEN = "open"
    DELETE = "delete"
    DELETE_CLEANUP = "deletecleanup"
    DETECT_SPAM = "detectspam"
    DETECT_TOPICS = "detecttopics"
    EXECUTE_ACTIONS = "executeactions"
    UPDATE_TOPICS = "updatetopics"
    ASSIGN = "assign"


class BulkUpdateRequest(ApiModel):
    ticket_ids: list[DbId] = Field(alias="ticketIDs", min_length=1, max_length=1000)
    action: BulkAction
    customer_rep_id: Annotated[int, Field(ge=0, le=2**53 - 1)] | None = Field(
        default=None,
        alias="customerRepID",
        description="Omitted or null keeps the assignment, 0 unassigns, a rep id assigns.",
    )
    hook_name: Annotated[Line, Field(min_length=1, max_length=100)] = "PostTopicDetection"
    topic_ids: list[DbId] | None = Field(default=None, alias="topicIds", max_length=200)


class PatchOperation(ApiModel):
    """One RFC 6902 operation."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: Annotated[str, Field(max_length=200)]
    value: Any = None
    from_: Annotated[str | None, Field(max_length=200)] = Field(default=None, alias="from")


class AssignRequest(ApiModel):
    forward_number: PhoneNumber | None = Field(
        default=None, description="Phone tickets: where the call is forwarded (default: the rep's)."
    )


class ChatTicketCreateDTO(ApiModel):
    token: Annotated[Line, Field(min_length=1, max_length=64, description="The Chat channel's token.")]
    message: Annotated[Line, Field(min_length=1, max_length=10000)]
    subject: Annotated[CleanStr | None, Field(max_length=500)] = None
    name: Annotated[CleanStr | None, Field(max_length=200)] = None
    email: EmailAddress | None = None
    uid: Annotated[CleanStr | None, Field(max_length=254)] = None


class ChatTicketCreatedDTO(ApiModel):
    ticket_id: int = Field(alias="ticketID")
    token: str
