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


_COLUMNS = frozenset(TicketMessage.__table__.columns.keys())
# The DTOs' fields named as a column show the column (the rep's name is the label below). The
# reference page names three columns otherwise; the rest are labels and lists.
SUMMARY_COLUMNS = tuple(name for name in TicketMessageSummaryDTO.model_fields if name in _COLUMNS)
DETAIL_COLUMNS = tuple(
    name
    for name in TicketMessageDetailDTO.model_fields
    if name in _COLUMNS and name not in TicketMessageSummaryDTO.model_fields
)
RENAMED = {"date_created": "created_at", "date_updated": "updated_at", "channel": "channel_type"}


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
    out = {name: getattr(msg, name) for name in SUMMARY_COLUMNS}
    out.update({name: getattr(msg, column) for name, column in RENAMED.items()})
    out.update(
        customer_rep_name=labels.customer_rep_name,
        channel_name=labels.channel_name,
        topics=topics,
        actions=[],
        custom_fields_data=dict(msg.custom_fields_data or {}),
    )
    return out


def to_summary(msg: TicketMessage) -> TicketMessageSummaryDTO:
    return built(TicketMessageSummaryDTO, _summary_fields(msg))


async def to_detail(ctx: Ctx, msg: TicketMessage, labels: Labels | None = None) -> TicketMessageDetailDTO:
    definitions = await definitions_for(ctx, EntityType.TICKET_MESSAGE)
    fields = _summary_fields(msg, labels)
    fields.update({name: getattr(msg, name) for name in DETAIL_COLUMNS})
    fields["custom_field_definitions"] = [CustomFieldDefinitionDTO.model_validate(d) for d in definitions]
    return built(TicketMessageDetailDTO, fields)


async def created_detail(ctx: Ctx, msg: TicketMessage) -> TicketMessageDetailDTO:
    """A message this request inserted, shown without reading it back: its rep is the caller (or
    nobody), whose name it carries, its channel is in the session already, and it has no topics yet."""
    channel = await ctx.db.get(Channel, msg.channel_id) if msg.channel_id is not None else None
    labels = Labels(customer_rep_name=msg.customer_rep_name, channel_name=channel.name if channel else None)
    return await to_detail(ctx, msg, labels)
