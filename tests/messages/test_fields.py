"""A message's fields are declared once (messages.insert.NewMessage, the column names): a message
created with every field of the create DTO shows each one back, in the detail and in the list."""

from __future__ import annotations

from typing import Any

import httpx

import deskpal.models  # noqa: F401 - every table, for the mappers
from deskpal.messages.dtos import DETAIL_COLUMNS, RENAMED, SUMMARY_COLUMNS
from deskpal.messages.insert import GIVEN_FIELDS
from deskpal.messages.models import TicketMessage
from deskpal.messages.schemas import TicketMessageCreateDTO, TicketMessageDetailDTO, TicketMessageSummaryDTO
from tests.messages.helpers import create_channel, create_message, create_ticket, stored_message
from tests.support import Tenant

COLUMNS = set(TicketMessage.__table__.columns.keys())


def test_every_given_field_is_a_column() -> None:
    assert set(GIVEN_FIELDS) <= COLUMNS


def test_every_dto_field_has_a_source() -> None:
    labels = {"customer_rep_name", "channel_name", "topics", "actions", "custom_fields_data"}
    summary = set(SUMMARY_COLUMNS) | set(RENAMED) | labels
    assert summary == set(TicketMessageSummaryDTO.model_fields)
    detail = summary | set(DETAIL_COLUMNS) | {"custom_field_definitions"}
    assert detail == set(TicketMessageDetailDTO.model_fields)


def _alias(name: str) -> str:
    return TicketMessageCreateDTO.model_fields[name].alias or name


async def test_every_create_field_is_stored_and_shown(
    app: object, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    channel = await create_channel(client, tenant, "Email")
    ticket = await create_ticket(client, tenant.headers, channelID=channel["channelID"])
    into = {"ticketID": ticket["ticketID"]}
    first = await create_message(client, tenant.headers, **into, message="first")
    second = await create_message(client, tenant.headers, **into, message="second")
    made = await client.post("/api/EmailTemplates", json={"name": "Walked"}, headers=tenant.headers)
    assert made.status_code == 201, made.text
    # A value for every field of the create DTO, none its default: a new field fails here until it
    # is given one (and so until it is stored and shown).
    given: dict[str, Any] = {
        "ticket_id": ticket["ticketID"],
        "channel": "Email",
        "channel_id": channel["channelID"],
        "incoming": False,
        "sender_type": "AI",
        "is_draft": True,
        "is_internal_note": True,
        "from_address": "ann@example.com",
        "from_name": "Ann Walker",
        "to_address": "bob@example.com",
        "cc_address": "cc@example.com",
        "bcc_address": "bcc@example.com",
        "from_number": "+3211111111",
        "to_number": "+3222222222",
        "message_date": "2024-01-02T03:04:05Z",
        "subject": "Walked subject",
        "text_body": "walked text",
        "html_body": "<p>walked html</p>",
        "message": "walked message",
        "headers": "X-Walk: 1",
        "message_identifier": "<walk@x.example>",
        "page_screenshot": "data:image/png;base64,AAAA",
        "page_url": "https://x.example/page",
        "additional_info": "walked info",
        "custom_fields_data": {"walk": "yes"},
        "uid": "walker-uid",
        "ai_prompt": "walked prompt",
        "email_template_id": made.json()["emailTemplateID"],
        "reply_to_message_id": first["messageID"],
        "forward_from_message_id": second["messageID"],
    }
    assert set(given) == set(TicketMessageCreateDTO.model_fields)
    body = {_alias(name): value for name, value in given.items()}
    r = await client.post("/api/TicketMessages", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created = r.json()
    detail = (await client.get(f"/api/TicketMessages/{created['messageID']}", headers=tenant.headers)).json()
    shown = {_alias(name): value for name, value in given.items() if name not in {"message_date"}}
    shown["messageDate"] = "2024-01-02T03:04:05Z"
    for alias, value in shown.items():
        assert (alias, created[alias]) == (alias, value)
        assert (alias, detail[alias]) == (alias, value)
    # NewMessage's own two, which the DTO does not spell: from the forward link and the channel.
    stored = await stored_message(app, tenant, created["messageID"])
    assert stored is not None and (stored.is_forward, stored.channel_type) == (True, "Email")
    url = f"/api/TicketMessages?ticketId={ticket['ticketID']}&pageSize=10"
    listed = (await client.get(url, headers=tenant.headers)).json()["items"]
    [summary] = [m for m in listed if m["messageID"] == created["messageID"]]
    assert {k: v for k, v in summary.items() if k in detail} == {k: detail[k] for k in summary}
