"""The second helpdesk's Messages API over deskpal's tickets and messages.

Its three message types map onto ticket messages: request = incoming end-user message, response =
outgoing representative message, note = internal note. Drafts of the TicketMessages API are not
part of this API's conversation and are neither listed nor retrievable here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formataddr, getaddresses
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, select

from deskpal.attachments import service as attachments
from deskpal.conversations.schemas import InboundMessage, OutgoingMessage
from deskpal.conversations.service import intake, send
from deskpal.core.addresses import normalize_email
from deskpal.core.context import AuthMethod, Ctx
from deskpal.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from deskpal.core.schemas import MAX_ID, PageParams, PageResult
from deskpal.endusers.models import EndUser
from deskpal.helpdesk.schemas import (
    AttachmentRef,
    HelpdeskMessageDTO,
    MessageCreate,
    MessageType,
    Recipient,
    SortOrder,
)
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.messages.visibility import visible as message_visible
from deskpal.tickets import queries as tickets
from deskpal.tickets.derived import is_closed_status
from deskpal.tickets.models import Ticket, TicketEndUser
from deskpal.tickets.writes import StateChange

# The ticket_update fields the closed state's errors name (status is the only one this API writes).
_UPDATE_FIELDS = {
    "status": "ticket_update.status",
    "is_closed": "ticket_update.status",
    "close_date": "ticket_update.status",
}


class TicketClosed(Forbidden):
    code, title = "TICKET_CLOSED", "Ticket is closed"


class ClosedStatusSystemOnly(Forbidden):
    code, title = "CLOSED_STATUS_SYSTEM_ONLY", "Closed status can only be set by system automations"


class SessionRequired(Unauthorized):
    code, title = "SESSION_TOKEN_REQUIRED", "A login session token is required"


def require_session(ctx: Ctx) -> None:
    """This API takes login (JWT) sessions only; the router refuses other tokens before this."""
    if ctx.actor.method is not AuthMethod.JWT:
        raise SessionRequired("this API accepts login session tokens only, not API keys or phone tokens")


def parse_id(value: str) -> int | None:
    """The numeric id a string id names, or None: such an id names nothing here."""
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def _visible(ctx: Ctx) -> list[ColumnElement[bool]]:
    return [message_visible(ctx.actor), TicketMessage.is_draft == false()]


def _select(ctx: Ctx) -> Select[TicketMessage]:
    return (
        select(TicketMessage).join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id).where(*_visible(ctx))
    )


async def _ticket(ctx: Ctx, ticket_id: str) -> Ticket:
    number = parse_id(ticket_id)
    if number is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return await tickets.get_ticket(ctx, number)


async def list_messages(
    ctx: Ctx, ticket_id: str, params: PageParams, sort_order: SortOrder
) -> PageResult[TicketMessage]:
    require_session(ctx)
    ticket = await _ticket(ctx, ticket_id)
    where = [*_visible(ctx), TicketMessage.ticket_id == ticket.ticket_id]
    total = int(
        await ctx.db.scalar(
            select(func.count(TicketMessage.message_id))
            .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
            .where(*where)
        )
        or 0
    )
    if total == 0 or params.offset >= total:
        return PageResult([], total, params)
    desc = sort_order is SortOrder.DESC
    stmt = (
        select(TicketMessage)
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(*where)
        .order_by(TicketMessage.created_at.desc() if desc else TicketMessage.created_at.asc())
        .order_by(TicketMessage.message_id.desc() if desc else TicketMessage.message_id.asc())
        .limit(params.page_size)
        .offset(params.offset)
    )
    return PageResult(list((await ctx.db.scalars(stmt)).all()), total, params)


async def get_message(ctx: Ctx, message_id: str) -> TicketMessage:
    require_session(ctx)
    number = parse_id(message_id)
    msg = None
    if number is not None:
        msg = (await ctx.db.scalars(_select(ctx).where(TicketMessage.message_id == number))).first()
    if msg is None:
        raise NotFound(f"message {message_id} not found")
    return msg


def _addresses(recipients: list[Recipient] | None) -> str | None:
    if not recipients:
        return None
    return ", ".join(formataddr((r.name or "", r.email)) for r in recipients)


def _recipients(value: str | None) -> list[Recipient]:
    out = []
    for name, email in getaddresses([value or ""]):
        try:
            out.append(Recipient(email=email, name=name or None))
        except ValueError:
            continue  # an address the other API stored that this API's shape cannot carry
    return out


def _end_user_address(ticket: Ticket) -> str | None:
    for user in ticket.end_users:
        if user.email:
            return user.email
    try:
        return normalize_email(ticket.uid) if ticket.uid else None  # email tickets' uid is the address
    except ValueError:
        return None


def _check(data: MessageCreate, ticket: Ticket) -> None:
    if ticket.is_closed:
        raise TicketClosed(f"ticket {ticket.ticket_id} is closed; messages cannot be added")
    update = data.ticket_update
    if update is not None and update.status is not None and is_closed_status(update.status):
        raise ClosedStatusSystemOnly("only system automations close tickets")
    if data.is_forward:
        if data.type is not MessageType.RESPONSE:
            raise ValidationFailed.field("is_forward", "only a response can be a forward")
        if not data.recipients:
            raise ValidationFailed.field("recipients", "a forward needs recipients")


async def create_message(ctx: Ctx, data: MessageCreate) -> TicketMessage:
    """The message and the ticket_update in one transaction; a response records a pending send."""
    require_session(ctx)
    ticket = await _ticket(ctx, data.ticket_id)
    _check(data, ticket)
    update = data.ticket_update
    change = None
    if update is not None:
        change = StateChange(
            status=update.status,
            priority=update.priority.value if update.priority is not None else None,
            ticket_type=update.type.value if update.type is not None else None,
            fields=_UPDATE_FIELDS,
        )

    refs = data.attachments or []
    for i, ref in enumerate(refs):
        # References to files uploaded through the attachments API, by their access token.
        if await attachments.find_by_token(ctx, ref.token) is None:
            raise ValidationFailed.field(f"attachments.{i}.token", "no uploaded file has this token")

    kind = data.type
    to_address = _addresses(data.recipients)
    if kind is MessageType.RESPONSE and to_address is None:
        # The reply goes to the ticket's end user when the request names nobody.
        to_address = _end_user_address(ticket)
    new = NewMessage(
        html_body=data.content,
        text_body=data.text_content,
        incoming=kind is MessageType.REQUEST,
        sender_type=SenderType.END_USER if kind is MessageType.REQUEST else SenderType.CUSTOMER_REP,
        is_internal_note=kind is MessageType.NOTE,
        is_forward=data.is_forward,
        to_address=to_address,
        cc_address=_addresses(data.ccs),
        attachment_refs=[a.model_dump() for a in refs],
    )
    if kind is MessageType.REQUEST:
        inbound = InboundMessage(message=new, ticket=ticket, ticket_change=change, html_field="content")
        return await intake(ctx, inbound)
    # No mail is sent inside a request: the email issue's sender picks pending sends up.
    outgoing = OutgoingMessage(
        message=new,
        ticket=ticket,
        ticket_change=change,
        html_field="content",
        deliver=kind is MessageType.RESPONSE and data.send_email is not False,
    )
    return await send(ctx, outgoing)


def message_type(msg: TicketMessage) -> MessageType:
    if msg.is_internal_note:
        return MessageType.NOTE
    return MessageType.REQUEST if msg.incoming else MessageType.RESPONSE


@dataclass(frozen=True, slots=True)
class Author:
    id: int | None
    name: str | None


async def end_user_authors(ctx: Ctx, messages: Sequence[TicketMessage]) -> dict[int, Author]:
    """The end user each request is from (message id -> author), in one query for the page.

    A request is the customer's message whoever typed it in (a rep with an API key, an import):
    its author is the ticket's end user whose uid the message names, else whose address it came
    from, else the ticket's first. Responses and notes are their reps' (to_dto).
    """
    requests = [m for m in messages if message_type(m) is MessageType.REQUEST]
    if not requests:
        return {}
    stmt = (
        select(TicketEndUser.ticket_id, EndUser.end_user_id, EndUser.uid, EndUser.email, EndUser.name)
        .join(EndUser, EndUser.end_user_id == TicketEndUser.end_user_id)
        .where(TicketEndUser.ticket_id.in_({m.ticket_id for m in requests}))
        .order_by(TicketEndUser.ticket_id, EndUser.end_user_id)
    )
    by_ticket: dict[int, list[Any]] = {}
    for row in (await ctx.db.execute(stmt)).all():
        by_ticket.setdefault(row.ticket_id, []).append(row)
    authors = {}
    for msg in requests:
        users = by_ticket.get(msg.ticket_id, [])
        user = (
            next((u for u in users if msg.uid and u.uid == msg.uid), None)
            or next((u for u in users if msg.from_address and u.email == msg.from_address), None)
            or (users[0] if users else None)
        )
        name = user.name if user else msg.from_name
        authors[msg.message_id] = Author(user.end_user_id if user else None, name)
    return authors


def to_dto(msg: TicketMessage, authors: dict[int, Author] | None = None) -> HelpdeskMessageDTO:
    content = msg.html_body
    if content is None:
        # A message written through the other API as plain text: its HTML form, escaped.
        content = html.escape(msg.text_body or msg.message or "").replace("\n", "<br>")
    end_user = (authors or {}).get(msg.message_id)
    if end_user is not None:
        author, author_name = end_user.id, end_user.name
    else:
        author = msg.created_by_rep_id or msg.customer_rep_id
        author_name = (
            msg.created_by_rep_name if msg.created_by_rep_name is not None else msg.customer_rep_name
        )
    return HelpdeskMessageDTO(
        id=str(msg.message_id),
        ticket_id=str(msg.ticket_id),
        type=message_type(msg),
        content=content,
        text_content=msg.text_body,
        author_id=str(author) if author is not None else None,
        author_name=author_name,
        attachments=[AttachmentRef.model_validate(a) for a in msg.attachment_refs or []],
        ccs=_recipients(msg.cc_address),
        created_at=msg.created_at,
        updated_at=msg.updated_at or msg.created_at,
    )
