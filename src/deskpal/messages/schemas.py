"""Ticket message DTOs, spelled as the Ticket Messages reference page spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from deskpal.channels.models import ChannelType
from deskpal.core.addresses import AddressListStr, MailboxStr, parse_mailbox
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.schemas import ApiModel, CleanStr, DbId, UtcDateTime
from deskpal.customfields.schemas import CustomFieldDefinitionDTO
from deskpal.messages.models import SenderType

Name = Annotated[CleanStr, Field(max_length=200)]
Number = Annotated[CleanStr, Field(max_length=32)]
Subject = Annotated[CleanStr, Field(max_length=998)]
Body = Annotated[CleanStr, Field(max_length=1_000_000)]
ShortText = Annotated[CleanStr, Field(max_length=20_000)]


class TicketMessageCreateDTO(ApiModel):
    """TicketMessageCreateDTO: POST /api/TicketMessages/create-new and POST /api/TicketMessages."""

    ticket_id: DbId | None = Field(
        default=None,
        alias="ticketID",
        description="Omitted on create-new: the reply's ticket, else a new ticket (and end user).",
    )
    channel: ChannelType | None = Field(
        default=None, description="Email, Chat, Phone, WhatsApp or Teams; default: the ticket's."
    )
    channel_id: DbId | None = Field(default=None, alias="channelID")
    incoming: bool = Field(default=True, description="true: from the end user; false: to them.")
    sender_type: SenderType | None = Field(
        default=None, description="Default: EndUser when incoming, else CustomerRep."
    )
    is_draft: bool = False
    is_internal_note: bool = Field(
        default=False, description="Representatives only; never sent, never shown to phone auth."
    )
    from_address: MailboxStr | None = Field(
        default=None,
        description='An address, or "Name <address>" (the name becomes fromName when none is given).',
    )
    from_name: Name | None = None
    to_address: AddressListStr | None = None
    cc_address: AddressListStr | None = None
    bcc_address: AddressListStr | None = None
    from_number: Number | None = None
    to_number: Number | None = None
    message_date: UtcDateTime | None = None
    subject: Subject | None = None
    text_body: Body | None = None
    html_body: Body | None = Field(default=None, description="Sanitised on the way in.")
    message: Body | None = None
    headers: Body | None = None
    message_identifier: Subject | None = None
    page_screenshot: Body | None = None
    page_url: Annotated[CleanStr, Field(max_length=2048)] | None = Field(default=None, alias="pageURL")
    additional_info: ShortText | None = None
    custom_fields_data: dict[str, Any] = Field(default_factory=dict)
    uid: Annotated[CleanStr, Field(max_length=254)] | None = None
    ai_prompt: Body | None = None
    email_template_id: DbId | None = Field(default=None, alias="emailTemplateID")
    reply_to_message_id: DbId | None = Field(default=None, alias="replyToMessageID")
    forward_from_message_id: DbId | None = Field(
        default=None, alias="forwardFromMessageID", description="A forward draft clears reply linkage."
    )

    @model_validator(mode="after")
    def _sender_name_from_address(self) -> TicketMessageCreateDTO:
        # "Jane <jane@x.example>": the address is the address, the display name the sender's name.
        if self.from_address:
            box = parse_mailbox(self.from_address)
            self.from_address = box.address
            if not self.from_name and box.name:
                self.from_name = box.name[:200]
        return self


class TicketMessageUpdateDTO(ApiModel):
    """TicketMessageUpdateDTO: PUT /api/TicketMessages/{id}. Fields left out keep their values."""

    message_id: DbId = Field(alias="messageID", description="Must equal the route id.")
    ai_modified_response: Body | None = Field(default=None, alias="ai_ModifiedResponse")
    message: Body | None = None
    additional_info: ShortText | None = None
    subject: Subject | None = None
    to_address: AddressListStr | None = None
    cc_address: AddressListStr | None = None
    bcc_address: AddressListStr | None = None
    is_draft: bool | None = None
    uid: Annotated[CleanStr, Field(max_length=254)] | None = None
    custom_fields_data: dict[str, Any] | None = None


class TicketMessageTopicDTO(ApiModel):
    ticket_message_topic_id: int = Field(alias="ticketMessageTopicID")
    message_id: int = Field(alias="messageID")
    topic_id: int = Field(alias="topicID")
    topic_name: str
    corrected: bool
    correction_date: datetime | None
    corrected_by_customer_rep_id: int | None = Field(alias="correctedByCustomerRepID")
    corrected_by_customer_rep_name: str | None


class TicketMessageTopicWriteDTO(ApiModel):
    message_id: DbId = Field(alias="messageID")
    topic_id: DbId = Field(alias="topicID")


class CorrectTopicsRequest(ApiModel):
    topic_ids: list[DbId] = Field(alias="topicIds", max_length=200)


class TicketMessageSummaryDTO(ApiModel):
    """TicketMessageSummaryDTO: a message as the list returns it (no headers, prompt or screenshot)."""

    message_id: int = Field(alias="messageID")
    ticket_id: int = Field(alias="ticketID")
    date_created: datetime
    date_updated: datetime | None
    message_date: datetime | None
    customer_id: int = Field(alias="customerID")
    sender_type: str
    customer_rep_id: int | None = Field(alias="customerRepID")
    customer_rep_name: str | None
    channel: str | None = Field(description="The channel type: Email, Chat, Phone, WhatsApp or Teams.")
    channel_id: int | None = Field(alias="channelID")
    channel_name: str | None
    incoming: bool
    is_draft: bool
    is_internal_note: bool
    message: str | None
    subject: str | None
    html_body: str | None
    text_body: str | None
    body_preview: str | None
    from_address: str | None
    from_name: str | None
    to_address: str | None
    cc_address: str | None
    bcc_address: str | None
    from_number: str | None
    to_number: str | None
    uid: str | None
    is_opened: bool
    is_bounced: bool
    last_open_date: datetime | None
    open_count: int = Field(description="How often the tracking pixel of this outgoing message was fetched.")
    message_identifier: str | None
    send_pending: bool = Field(description="A send is waiting for the mail sender.")
    sent_at: datetime | None
    delivery_status: str | None = Field(
        description="queued, sending, sent, deferred, failed, suppressed or bounced; null for what is "
        "never sent."
    )
    delivery_error: str | None = Field(description="The mail server's words when deferred or failed.")
    bounce_status: str | None = Field(description="A bounce's RFC 3463 status (5.1.1) when isBounced.")
    bounce_diagnostic: str | None = Field(description="What the bouncing server said, when isBounced.")
    threading_reason: str | None = Field(
        description="Why an incoming mail joined its ticket: the header and value that matched "
        '("In-Reply-To: <id>", "References: <id>", "Subject: [#12]"), "new", or "moved by <rep>".'
    )
    is_auto_reply: bool = Field(
        description="Automatic mail (out-of-office, auto-reply, report): it reopens nothing and "
        "triggers no automatic answer."
    )
    reply_to_address: str | None = Field(
        description="Where replies to this incoming mail go (its Reply-To); null: to fromAddress."
    )
    ai_spam_status: str | None
    ai_topics_status: str | None
    ai_reply_status: str | None
    is_escalated: bool
    reply_to_message_id: int | None = Field(alias="replyToMessageID")
    forward_from_message_id: int | None = Field(alias="forwardFromMessageID")
    topics: list[TicketMessageTopicDTO]
    actions: list[dict[str, Any]] = Field(description="Always empty until message actions exist.")
    custom_fields_data: dict[str, Any]


class TicketMessageDetailDTO(TicketMessageSummaryDTO):
    """TicketMessageDetailDTO: everything about one message."""

    headers: str | None
    ai_generated_response: str | None = Field(alias="ai_GeneratedResponse")
    ai_modified_response: str | None = Field(alias="ai_ModifiedResponse")
    ai_prompt: str | None
    page_screenshot: str | None
    page_url: str | None = Field(alias="pageURL")
    additional_info: str | None
    email_template_id: int | None = Field(alias="emailTemplateID")
    send_requested_at: datetime | None
    delivery_response: str | None = Field(description="The mail server's reply when it took the mail.")
    custom_field_definitions: list[CustomFieldDefinitionDTO]


class MessageSortBy(CaseInsensitiveEnum):
    DATE_CREATED = "dateCreated"
    MESSAGE_ID = "messageID"
    MESSAGE_DATE = "messageDate"


class MessageSortOrder(CaseInsensitiveEnum):
    ASC = "asc"
    DESC = "desc"


class MoveMessageRequest(ApiModel):
    """POST /api/TicketMessages/{id}/move: the ticket the message belongs in, or a new one."""

    ticket_id: DbId | None = Field(default=None, alias="ticketID")
    new_ticket: bool = Field(default=False, description="true: move it into a new ticket of its own.")
