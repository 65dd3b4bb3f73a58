"""The cross-tenant walk's registry: how to make tenant A's object for each id-taking route.

Every /api route with a path parameter must have an entry here (a test enforces it), so that a
second customer's token is tried against it. Later issues add their routes' entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from tests.support import Tenant, db_of

Maker = Callable[[FastAPI, Tenant], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Target:
    make: Maker  # creates tenant A's object; returns the route's path parameters
    # method -> a valid JSON body, or a function of the path parameters make returned giving one
    bodies: dict[str, Any] = field(default_factory=dict)
    # The credentials a route takes, when not the tenant's API key (e.g. a login token).
    headers: Callable[[FastAPI, Tenant], dict[str, str]] | None = None


REGISTRY: dict[str, Target] = {}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def target(
    path: str,
    *,
    bodies: dict[str, Any] | None = None,
    headers: Callable[[FastAPI, Tenant], dict[str, str]] | None = None,
) -> Callable[[Maker], Maker]:
    def register(fn: Maker) -> Maker:
        REGISTRY[path] = Target(fn, bodies or {}, headers)
        return fn

    return register


async def in_tenant(app: FastAPI, tenant: Tenant, fn: Callable[[Ctx], Awaitable[Any]]) -> Any:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        return await fn(Ctx.system(db, tenant.customer_id))


# --- issue 3: admin API ----------------------------------------------------------------------------


async def _channel(app: FastAPI, tenant: Tenant, channel_type: str = "Phone") -> dict[str, Any]:
    from deskpal.channels.schemas import ChannelCreateDTO
    from deskpal.channels.service import create_channel

    async def make(ctx: Ctx) -> int:
        channel, _ = await create_channel(ctx, ChannelCreateDTO(name="c", channel_type=channel_type))
        return channel.channel_id

    return {"id": await in_tenant(app, tenant, make)}


target("/api/Channels/{id}", bodies={"PUT": {"name": "renamed"}})(_channel)
target("/api/Channels/{id}/phone-auth-token")(_channel)
target("/api/Channels/{id}/test-smtp")(_channel)  # the owner's answer: 422, not an Email channel
target("/api/Channels/{id}/test-imap")(_channel)  # likewise: 422 IMAP_NOT_CONFIGURED


@target("/api/Topics/{id}", bodies={"PUT": {"name": "renamed"}})
async def _topic(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.topics.schemas import TopicWriteDTO
    from deskpal.topics.service import create_topic

    async def make(ctx: Ctx) -> int:
        return (await create_topic(ctx, TopicWriteDTO(name=unique("t")))).topic_id

    return {"id": await in_tenant(app, tenant, make)}


@target("/api/EmailTemplates/{id}", bodies={"PUT": {"name": "renamed"}})
async def _email_template(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.email.schemas import EmailTemplateWriteDTO
    from deskpal.email.service import create_template

    async def make(ctx: Ctx) -> int:
        return (await create_template(ctx, EmailTemplateWriteDTO(name=unique("e")))).email_template_id

    return {"id": await in_tenant(app, tenant, make)}


@target(
    "/api/CustomerReps/{id}",
    bodies={"PUT": {"name": "n", "email": "renamed-rep@walk.test", "role": "agent"}},
)
async def _rep(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.customers.schemas import CustomerRepCreateDTO
    from deskpal.customers.service import create_rep

    async def make(ctx: Ctx) -> int:
        dto = CustomerRepCreateDTO(name="r", email=unique("rep") + "@walk.test")
        return (await create_rep(ctx, dto)).customer_rep_id

    return {"id": await in_tenant(app, tenant, make)}


@target("/api/ApiKeys/{id}", bodies={"PUT": {"name": "renamed"}})
async def _api_key(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.auth.service import create_api_key

    async def make(ctx: Ctx) -> int:
        key, _ = await create_api_key(ctx, name="k", rep_id=tenant.admin_rep_id)
        return key.api_key_id

    return {"id": await in_tenant(app, tenant, make)}


@target(
    "/api/CustomFieldDefinitions/{id}",
    bodies={"PUT": {"name": "renamed", "fieldType": "text"}},
)
async def _custom_field(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.customfields.models import FieldType
    from deskpal.customfields.schemas import CustomFieldDefinitionWriteDTO
    from deskpal.customfields.service import create_definition

    async def make(ctx: Ctx) -> int:
        dto = CustomFieldDefinitionWriteDTO(name=unique("f"), field_type=FieldType.TEXT)
        return (await create_definition(ctx, dto)).custom_field_definition_id

    return {"id": await in_tenant(app, tenant, make)}


@target("/api/EndUsers/{id}", bodies={"PUT": {"uid": "renamed@walk.test"}})
async def _end_user(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.endusers.schemas import EndUserWriteDTO
    from deskpal.endusers.service import create_end_user

    async def make(ctx: Ctx) -> int:
        return (await create_end_user(ctx, EndUserWriteDTO(uid=unique("walker")))).end_user_id

    return {"id": await in_tenant(app, tenant, make)}


async def _job(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.core.jobs import JobStatus

    async def make(ctx: Ctx) -> int:
        job = await ctx.enqueue("system.noop", {"note": "walk"})
        job.status = JobStatus.DEAD  # so that a retry by the owner would be allowed
        return job.job_id

    return {"id": await in_tenant(app, tenant, make)}


target("/api/Jobs/{id}")(_job)
target("/api/Jobs/{id}/retry")(_job)


# --- issue 4: tickets ------------------------------------------------------------------------------


async def _ticket(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.tickets.schemas import TicketWriteDTO
    from deskpal.tickets.writes import create_ticket

    async def make(ctx: Ctx) -> int:
        dto = TicketWriteDTO(status="Open", subject="walk", channel_type="Email", uid=unique("walker"))
        return (await create_ticket(ctx, dto)).ticket_id

    return {"id": await in_tenant(app, tenant, make)}


_TICKET_BODY = {"status": "Open", "subject": "renamed", "channelType": "Email"}
target(
    "/api/Tickets/{id}",
    bodies={"PUT": _TICKET_BODY, "PATCH": [{"op": "replace", "path": "/status", "value": "Pending"}]},
)(_ticket)
target("/api/Tickets/{id}/assign")(_ticket)
target("/api/Tickets/{id}/history-summary")(_ticket)


@target("/api/Tickets/{ticketId}/play")
async def _recorded_ticket(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.tickets import recordings
    from deskpal.tickets.recordings import set_recording
    from deskpal.tickets.schemas import TicketWriteDTO
    from deskpal.tickets.writes import create_ticket

    async def chunks() -> Any:
        yield b"RIFF-walk"

    key, size = await recordings.store(app.state.storage, tenant.customer_id, chunks())

    async def make(ctx: Ctx) -> int:
        dto = TicketWriteDTO(status="Open", subject="call", channel_type="Phone")
        ticket = await create_ticket(ctx, dto)
        await set_recording(ctx, ticket.ticket_id, key=key, content_type="audio/wav", size=size)
        return ticket.ticket_id

    return {"ticketId": await in_tenant(app, tenant, make)}


target("/api/Tickets/{id}/recording", bodies={"PUT": {"not": "audio"}})(_ticket)


# --- issue 5: attachments ---------------------------------------------------------------------------


async def _attachment_message(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from tests.tickets.helpers import add_message

    ticket = await _ticket(app, tenant)

    async def make(ctx: Ctx) -> int:
        return (await add_message(ctx, ticket["id"], message="walk")).message_id

    return {"id": await in_tenant(app, tenant, make)}


target("/api/TicketMessages/{id}/attachments")(_attachment_message)


@target("/api/TicketMessages/{id}/attachments/{attachmentId}")
async def _attachment(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.attachments.service import add_attachment

    message = await _attachment_message(app, tenant)

    async def chunks() -> Any:
        yield b"walk"

    async def make(ctx: Ctx) -> int:
        row = await add_attachment(
            ctx,
            app.state.storage,
            message["id"],
            file_name="walk.txt",
            content_type="text/plain",
            chunks=chunks(),
            max_bytes=1000,
        )
        return row.ticket_message_attachment_id

    return {"id": message["id"], "attachmentId": await in_tenant(app, tenant, make)}


# --- issue 5: ticket messages, message topics, the second helpdesk's Messages API ------------------


async def _message_with(
    app: FastAPI, tenant: Tenant, *, draft: bool = False, topic: bool = False
) -> dict[str, Any]:
    from deskpal.messages.models import TicketMessageTopic
    from deskpal.topics.schemas import TopicWriteDTO
    from deskpal.topics.service import create_topic
    from tests.tickets.helpers import add_message

    ticket = await _ticket(app, tenant)

    async def make(ctx: Ctx) -> dict[str, Any]:
        msg = await add_message(ctx, ticket["id"], message="walk")
        out: dict[str, Any] = {"id": msg.message_id, "messageId": msg.message_id}
        if draft:
            draft_of = {"incoming": False, "is_draft": True, "reply_to_message_id": msg.message_id}
            await add_message(ctx, ticket["id"], message="draft", **draft_of)
        if topic:
            t = await create_topic(ctx, TopicWriteDTO(name=unique("t")))
            link = TicketMessageTopic(message_id=msg.message_id, topic_id=t.topic_id)
            ctx.db.add(link)
            await ctx.db.flush()
            out["id"], out["topicId"] = link.ticket_message_topic_id, t.topic_id
        return out

    return await in_tenant(app, tenant, make)  # type: ignore[no-any-return]


async def _message(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"id": (await _message_with(app, tenant))["id"]}


async def _drafted_message(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"id": (await _message_with(app, tenant, draft=True))["id"]}


async def _message_topic(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    made = await _message_with(app, tenant, topic=True)
    return {"id": made["id"], "messageId": made["messageId"], "topicId": made["topicId"]}


async def _helpdesk_message(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"messageId": str((await _message_with(app, tenant))["messageId"])}


def _session_headers(app: FastAPI, tenant: Tenant) -> dict[str, str]:
    """A login token for the tenant's admin: the helpdesk Messages API refuses API keys."""
    return {"Authorization": f"Bearer {tenant.login_token()}"}


# The PUT body's messageID cannot match an id made later: the owner gets 400, the intruder 404.
target(
    "/api/TicketMessages/{id}",
    bodies={"PUT": {"messageID": 1, "additionalInfo": "walk"}},
)(_message)
target("/api/TicketMessages/{id}/draft")(_drafted_message)
for _path in ("preview", "send", "send-new", "send-forward"):
    target(f"/api/TicketMessages/{{id}}/{_path}", bodies={"POST": {"modifiedAnswer": "walk"}})(_message)
target("/api/TicketMessages/{id}/correct-topics", bodies={"POST": {"topicIds": []}})(_message)
# The PUT body names the link's own message and topic: fixed ids exist only on a fresh database.
target(
    "/api/TicketMessageTopics/{id}",
    bodies={"PUT": lambda p: {"messageID": p["messageId"], "topicID": p["topicId"]}},
)(_message_topic)
target("/helpdesk/api/messages/{messageId}", headers=_session_headers)(_helpdesk_message)


# --- issue 12: escalation ---------------------------------------------------------------------------


async def _escalated_message(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"messageId": (await _message_with(app, tenant))["messageId"]}


target("/api/TicketMessages/{messageId}/escalate-by-id", bodies={"POST": {"feedbackComment": "walk"}})(
    _escalated_message
)


# --- issue 13: inbound mail -------------------------------------------------------------------------


target("/api/Channels/{id}/inbound")(_channel)  # the owner's answer: 422, not an Email channel


async def _inbound_mail(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from deskpal.channels.schemas import ChannelCreateDTO
    from deskpal.channels.service import create_channel
    from deskpal.email.inbound.models import InboundStatus
    from deskpal.email.inbound.receive import receive

    raw = (
        f"From: walker@walk.test\r\nSubject: walk\r\nMessage-ID: <{unique('walk')}@walk.test>\r\n\r\nwalk\r\n"
    )

    async def make(ctx: Ctx) -> int:
        channel, _ = await create_channel(ctx, ChannelCreateDTO(name="mail", channel_type="Email"))
        row = await receive(ctx, channel, raw.encode(), source="import", storage=app.state.storage)
        row.status = InboundStatus.FAILED  # so that a retry by the owner is allowed
        return row.inbound_mail_id

    return {"id": await in_tenant(app, tenant, make)}


target("/api/InboundMails/{id}")(_inbound_mail)
target("/api/InboundMails/{id}/raw")(_inbound_mail)
target("/api/InboundMails/{id}/retry")(_inbound_mail)
target("/api/TicketMessages/{id}/move", bodies={"POST": {"newTicket": True}})(_message)
