"""Messages as the API shows them (summary, detail, topic links)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.core.schemas import built
from deskpal.customfields.models import EntityType
from deskpal.customfields.schemas import CustomFieldDefinitionDTO
from deskpal.customfields.service import definitions_for
from deskpal.messages.models import TicketMessage, TicketMessageTopic
from deskpal.messages.schemas import TicketMessageDetailDTO, TicketMessageSummaryDTO, TicketMessageTopicDTO


def topic_dto(link: TicketMessageTopic) -> TicketMessageTopicDTO:
    return built(
        TicketMessageTopicDTO,
        {
            "ticket_message_topic_id": link.ticket_message_topic_id,
            "message_id": link.message_id,
            "topic_id": link.topic_id,
            "topic_name": link.topic.name,
            "corrected": link.corrected,
            "correction_date": link.correction_date,
            "corrected_by_customer_rep_id": link.corrected_by_customer_rep_id,
            "corrected_by_customer_rep_name": link.corrected_by_customer_rep_name,
        },
    )


@dataclass(frozen=True, slots=True)
class Labels:
    """What a message's DTO shows of its relationships, when the caller knows it already."""

    customer_rep_name: str | None
    channel_name: str | None


def _summary_fields(msg: TicketMessage, labels: Labels | None = None) -> dict[str, Any]:
    if labels is None:
        labels = Labels(
            # The rep's current name while the rep exists; the kept one once it is deleted.
            customer_rep_name=msg.customer_rep.name if msg.customer_rep else msg.customer_rep_name,
            channel_name=msg.channel.name if msg.channel else None,
        )
        topics = [topic_dto(link) for link in msg.topic_links]
    else:
        topics = []  # a message just written has no topic links yet
    return {
        "message_id": msg.message_id,
        "ticket_id": msg.ticket_id,
        "date_created": msg.created_at,
        "date_updated": msg.updated_at,
        "message_date": msg.message_date,
        "customer_id": msg.customer_id,
        "sender_type": msg.sender_type,
        "customer_rep_id": msg.customer_rep_id,
        "customer_rep_name": labels.customer_rep_name,
        "channel": msg.channel_type,
        "channel_id": msg.channel_id,
        "channel_name": labels.channel_name,
        "incoming": msg.incoming,
        "is_draft": msg.is_draft,
        "is_internal_note": msg.is_internal_note,
        "message": msg.message,
        "subject": msg.subject,
        "html_body": msg.html_body,
        "text_body": msg.text_body,
        "body_preview": msg.body_preview,
        "from_address": msg.from_address,
        "from_name": msg.from_name,
        "to_address": msg.to_address,
        "cc_address": msg.cc_address,
        "bcc_address": msg.bcc_address,
        "from_number": msg.from_number,
        "to_number": msg.to_number,
        "uid": msg.uid,
        "is_opened": msg.is_opened,
        "is_bounced": msg.is_bounced,
        "last_open_date": msg.last_open_date,
        "message_identifier": msg.message_identifier,
        "send_pending": msg.send_pending,
        "sent_at": msg.sent_at,
        "ai_spam_status": msg.ai_spam_status,
        "ai_topics_status": msg.ai_topics_status,
        "ai_reply_status": msg.ai_reply_status,
        "is_escalated": msg.is_escalated,
        "reply_to_message_id": msg.reply_to_message_id,
        "forward_from_message_id": msg.forward_from_message_id,
        "topics": topics,
        "actions": [],
        "custom_fields_data": dict(msg.custom_fields_data or {}),
    }


def to_summary(msg: TicketMessage) -> TicketMessageSummaryDTO:
    return built(TicketMessageSummaryDTO, _summary_fields(msg))


async def to_detail(ctx: Ctx, msg: TicketMessage, labels: Labels | None = None) -> TicketMessageDetailDTO:
    definitions = await definitions_for(ctx, EntityType.TICKET_MESSAGE)
    fields = _summary_fields(msg, labels)
    fields.update(
        headers=msg.headers,
        ai_generated_response=msg.ai_generated_response,
        ai_modified_response=msg.ai_modified_response,
        ai_prompt=msg.ai_prompt,
        page_screenshot=msg.page_screenshot,
        page_url=msg.page_url,
        additional_info=msg.additional_info,
        email_template_id=msg.email_template_id,
        send_requested_at=msg.send_requested_at,
        custom_field_definitions=[CustomFieldDefinitionDTO.model_validate(d) for d in definitions],
    )
    return built(TicketMessageDetailDTO, fields)


async def created_detail(ctx: Ctx, msg: TicketMessage) -> TicketMessageDetailDTO:
    """A message this request inserted, shown without reading it back: its rep is the caller (or
    nobody), whose name it carries, its channel is in the session already, and it has no topics yet."""
    channel = await ctx.db.get(Channel, msg.channel_id) if msg.channel_id is not None else None
    labels = Labels(customer_rep_name=msg.customer_rep_name, channel_name=channel.name if channel else None)
    return await to_detail(ctx, msg, labels)
