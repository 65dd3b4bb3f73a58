"""The cross-tenant walk's second half: another customer's ids in request BODIES.

tests/cross_tenant.py puts tenant A's ids in paths. Here the caller (tenant B) sends a body that is
valid with its own objects — a control request proves it succeeds — and then the same body with one
id-carrying field set to tenant A's object of that kind, and set to an id that names nothing: the
two answers must be the same (status, code, the fields named, the detail with the id blanked), a
404 or a 400 naming the field, and nothing may be written. Which fields carry ids is read from
/openapi.json (names ending in ID/Id/Ids/IDs/_id, or holding a token), so a new one fails the walk
until it is registered here or exempted with a reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from deskpal.core.context import Ctx
from tests.cross_tenant import _session_headers, in_tenant, unique
from tests.support import Tenant

Maker = Callable[[FastAPI, Tenant], Awaitable[Any]]
ABSENT_ID = 2**40 + 7  # within every id's range, and never made by a test


@dataclass(frozen=True)
class Ref:
    """A placeholder in a body template: the value of this field (own, foreign or absent)."""

    field: str


OMIT = object()  # a value that removes its key from the body


@dataclass(frozen=True)
class BodyTarget:
    # The caller's own objects: the path parameters and a value for every Ref in the body.
    make: Callable[[FastAPI, Tenant], Awaitable[dict[str, Any]]]
    body: Any  # JSON with Ref placeholders
    kinds: dict[str, str]  # field (as /openapi.json spells its path) -> kind of object it names
    headers: Callable[[FastAPI, Tenant], dict[str, str]] | None = None
    as_string: frozenset[str] = field(default_factory=frozenset)  # fields whose ids are strings
    # field -> other fields left out while it is tried: rules between fields (a reply must be in
    # the ticket named) would otherwise answer first, for whichever field they name.
    alone: dict[str, frozenset[str]] = field(default_factory=dict)
    # The fields naming what the request acts on (404, as a path id would); every other id field
    # names something it refers to (400 VALIDATION_FAILED naming the field).
    acts_on: frozenset[str] = field(default_factory=frozenset)


BODY_REGISTRY: dict[tuple[str, str], BodyTarget] = {}

# (method, path, field) -> why the walk does not try another customer's value there.
BODY_EXEMPT: dict[tuple[str, str, str], str] = {
    ("POST", "/api/Tickets/createchatticket", "token"): (
        "the Chat channel's public token is the anonymous caller's credential: it chooses the "
        "customer, so there is no other customer to cross (a wrong token is 403 CHAT_CHANNEL_REFUSED)"
    ),
}


def body_target(
    method: str,
    path: str,
    *,
    body: Any,
    kinds: dict[str, str],
    headers: Callable[[FastAPI, Tenant], dict[str, str]] | None = None,
    as_string: frozenset[str] = frozenset(),
    alone: dict[str, frozenset[str]] | None = None,
    acts_on: frozenset[str] = frozenset(),
) -> Callable[[Callable[[FastAPI, Tenant], Awaitable[dict[str, Any]]]], Any]:
    def register(fn: Callable[[FastAPI, Tenant], Awaitable[dict[str, Any]]]) -> Any:
        BODY_REGISTRY[(method, path)] = BodyTarget(fn, body, kinds, headers, as_string, alone or {}, acts_on)
        return fn

    return register


def render(template: Any, values: dict[str, Any]) -> Any:
    """The body with each Ref replaced by its value."""
    if isinstance(template, Ref):
        return values[template.field]
    if isinstance(template, dict):
        rendered = {k: render(v, values) for k, v in template.items()}
        return {k: v for k, v in rendered.items() if v is not OMIT}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    return template


# --- one object of each kind, for a tenant -----------------------------------------------------------


async def _channel_id(app: FastAPI, tenant: Tenant) -> int:
    from tests.cross_tenant import _channel

    return int((await _channel(app, tenant, "Email"))["id"])


async def _rep_id(app: FastAPI, tenant: Tenant) -> int:
    from tests.cross_tenant import _rep

    return int((await _rep(app, tenant))["id"])


async def _end_user_id(app: FastAPI, tenant: Tenant) -> int:
    from tests.cross_tenant import _end_user

    return int((await _end_user(app, tenant))["id"])


async def _ticket_id(app: FastAPI, tenant: Tenant) -> int:
    from tests.cross_tenant import _ticket

    return int((await _ticket(app, tenant))["id"])


async def _topic_id(app: FastAPI, tenant: Tenant) -> int:
    from tests.cross_tenant import _topic

    return int((await _topic(app, tenant))["id"])


async def _email_template_id(app: FastAPI, tenant: Tenant) -> int:
    from tests.cross_tenant import _email_template

    return int((await _email_template(app, tenant))["id"])


async def _message_in(app: FastAPI, tenant: Tenant, ticket_id: int) -> int:
    from tests.tickets.helpers import add_message

    async def make(ctx: Ctx) -> int:
        return (await add_message(ctx, ticket_id, message="walk")).message_id

    return int(await in_tenant(app, tenant, make))


async def _message_id(app: FastAPI, tenant: Tenant) -> int:
    return await _message_in(app, tenant, await _ticket_id(app, tenant))


async def _attachment_token(app: FastAPI, tenant: Tenant) -> str:
    from deskpal.attachments.models import TicketMessageAttachment
    from tests.cross_tenant import _attachment

    made = await _attachment(app, tenant)

    async def token(ctx: Ctx) -> str:
        row = await ctx.db.get(TicketMessageAttachment, made["attachmentId"])
        assert row is not None
        return row.access_token

    return str(await in_tenant(app, tenant, token))


KINDS: dict[str, Maker] = {
    "channel": _channel_id,
    "rep": _rep_id,
    "end user": _end_user_id,
    "ticket": _ticket_id,
    "topic": _topic_id,
    "email template": _email_template_id,
    "message": _message_id,
    "attachment token": _attachment_token,
}


def absent(kind: str) -> Any:
    return str(uuid.uuid4()) if kind.endswith("token") else ABSENT_ID


# --- tickets -----------------------------------------------------------------------------------------

_TICKET_REFS = {"channelID": "channel", "customerRepID": "rep", "endUserID": "end user"}


async def _ticket_refs(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {
        "channelID": await _channel_id(app, tenant),
        "customerRepID": await _rep_id(app, tenant),
        "endUserID": await _end_user_id(app, tenant),
    }


_TICKET_BODY = {
    "status": "Open",
    "subject": "walk",
    "channelType": "Email",
    **{name: Ref(name) for name in _TICKET_REFS},
}
body_target("POST", "/api/Tickets", body=_TICKET_BODY, kinds=_TICKET_REFS)(_ticket_refs)


async def _ticket_and_refs(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"id": await _ticket_id(app, tenant), **await _ticket_refs(app, tenant)}


body_target("PUT", "/api/Tickets/{id}", body=_TICKET_BODY, kinds=_TICKET_REFS)(_ticket_and_refs)
# JSON Patch: the fields are the PUT document's, each the value of a replace.
body_target(
    "PATCH",
    "/api/Tickets/{id}",
    body=[{"op": "replace", "path": f"/{name}", "value": Ref(name)} for name in _TICKET_REFS],
    kinds=_TICKET_REFS,
)(_ticket_and_refs)


@body_target(
    "PUT",
    "/api/Tickets/bulk",
    body={
        "ticketIDs": [Ref("ticketIDs")],
        "action": "updatetopics",
        "customerRepID": Ref("customerRepID"),
        "topicIds": [Ref("topicIds")],
    },
    kinds={"ticketIDs": "ticket", "customerRepID": "rep", "topicIds": "topic"},
    acts_on=frozenset({"ticketIDs"}),
)
async def _bulk(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {
        "ticketIDs": await _ticket_id(app, tenant),
        "customerRepID": await _rep_id(app, tenant),
        "topicIds": await _topic_id(app, tenant),
    }


# --- ticket messages ---------------------------------------------------------------------------------

_MESSAGE_REFS = {
    "ticketID": "ticket",
    "channelID": "channel",
    "replyToMessageID": "message",
    "forwardFromMessageID": "message",
    "emailTemplateID": "email template",
}


async def _message_refs(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    ticket = await _ticket_id(app, tenant)
    earlier = await _message_in(app, tenant, ticket)
    return {
        "ticketID": ticket,
        "channelID": await _channel_id(app, tenant),
        "replyToMessageID": earlier,
        "forwardFromMessageID": earlier,
        "emailTemplateID": await _email_template_id(app, tenant),
    }


_MESSAGE_BODY = {"message": "walk", **{name: Ref(name) for name in _MESSAGE_REFS}}
body_target(
    "POST", "/api/TicketMessages", body=_MESSAGE_BODY, kinds=_MESSAGE_REFS, acts_on=frozenset({"ticketID"})
)(_message_refs)
# create-new checks that a reply is in the ticket named before it reads the ticket.
body_target(
    "POST",
    "/api/TicketMessages/create-new",
    body=_MESSAGE_BODY,
    kinds=_MESSAGE_REFS,
    alone={"ticketID": frozenset({"replyToMessageID", "forwardFromMessageID"})},
    acts_on=frozenset({"ticketID"}),
)(_message_refs)


@body_target(
    "PUT",
    "/api/TicketMessages/{id}",
    body={"messageID": Ref("messageID"), "additionalInfo": "walk"},
    kinds={"messageID": "message"},
)
async def _message_put(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    message = await _message_id(app, tenant)
    return {"id": message, "messageID": message}  # the body names the message it updates


@body_target(
    "POST",
    "/api/TicketMessages/{id}/correct-topics",
    body={"topicIds": [Ref("topicIds")]},
    kinds={"topicIds": "topic"},
)
async def _correct_topics(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"id": await _message_id(app, tenant), "topicIds": await _topic_id(app, tenant)}


_LINK_BODY = {"messageID": Ref("messageID"), "topicID": Ref("topicID")}
_LINK_REFS = {"messageID": "message", "topicID": "topic"}


# The link is the message's: its message is what the request acts on, its topic a reference.
@body_target(
    "POST", "/api/TicketMessageTopics", body=_LINK_BODY, kinds=_LINK_REFS, acts_on=frozenset({"messageID"})
)
async def _link(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"messageID": await _message_id(app, tenant), "topicID": await _topic_id(app, tenant)}


@body_target(
    "PUT",
    "/api/TicketMessageTopics/{id}",
    body=_LINK_BODY,
    kinds=_LINK_REFS,
    acts_on=frozenset({"messageID"}),
)
async def _link_put(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    from tests.cross_tenant import _message_topic

    made = await _message_topic(app, tenant)
    # Moved to another message and topic of the same customer: both fields are honoured.
    return {
        "id": made["id"],
        "messageID": await _message_id(app, tenant),
        "topicID": await _topic_id(app, tenant),
    }


# --- the second helpdesk's Messages API (login sessions only; snake_case, string ids) ----------------


@body_target(
    "POST",
    "/helpdesk/api/messages",
    body={
        "ticket_id": Ref("ticket_id"),
        "type": "note",
        "content": "<p>walk</p>",
        "attachments": [{"token": Ref("attachments[].token"), "name": "walk.txt", "size": 4}],
    },
    kinds={"ticket_id": "ticket", "attachments[].token": "attachment token"},
    headers=_session_headers,
    as_string=frozenset({"ticket_id"}),
    acts_on=frozenset({"ticket_id"}),
)
async def _helpdesk_message(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {
        "ticket_id": str(await _ticket_id(app, tenant)),
        "attachments[].token": await _attachment_token(app, tenant),
    }


# --- admin -------------------------------------------------------------------------------------------


@body_target(
    "POST",
    "/api/ApiKeys",
    body={"name": unique("walk"), "customerRepID": Ref("customerRepID")},
    kinds={"customerRepID": "rep"},
    acts_on=frozenset({"customerRepID"}),  # the key is the representative's: it acts as them
)
async def _api_key(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"customerRepID": await _rep_id(app, tenant)}


# --- inbound mail: moving a message ------------------------------------------------------------------


@body_target(
    "POST",
    "/api/TicketMessages/{id}/move",
    body={"ticketID": Ref("ticketID")},
    kinds={"ticketID": "ticket"},
)
async def _move(app: FastAPI, tenant: Tenant) -> dict[str, Any]:
    return {"id": await _message_id(app, tenant), "ticketID": await _ticket_id(app, tenant)}
