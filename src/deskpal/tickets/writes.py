"""Ticket writes: create, replace, patch, delete, assign; the assignment rules; end-user links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from deskpal.attachments import service as attachments
from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx, Role
from deskpal.core.db import utcnow
from deskpal.core.errors import Forbidden, ValidationFailed, field_errors
from deskpal.core.patching import apply_json_patch
from deskpal.core.tenancy import insert_now, tenant_insert, write_bound
from deskpal.customers.models import CustomerRep
from deskpal.customfields.models import EntityType
from deskpal.customfields.service import validate_custom_fields
from deskpal.endusers.models import EndUser
from deskpal.endusers.service import upsert_lenient
from deskpal.storage import Storage
from deskpal.storage import jobs as blobs
from deskpal.tickets import jobs as _jobs  # noqa: F401 - registers the job types enqueued here
from deskpal.tickets.derived import CLOSED_FIELDS, channel_type_in, closed_state
from deskpal.tickets.models import Ticket, TicketEndUser
from deskpal.tickets.queries import get_ticket
from deskpal.tickets.schemas import WRITE_FIELDS, TicketWriteDTO
from deskpal.tickets.views import stored_fields

# --- writes ----------------------------------------------------------------------------------------


async def check_assignment(ctx: Ctx, current: int | None, requested: int | None) -> None:
    """Assignment rules by role; an unchanged assignment is always allowed."""
    if requested == current:
        return
    actor = ctx.actor
    if requested is not None:
        rep = await ctx.db.get(CustomerRep, requested)
        if rep is None or not rep.is_active:
            raise ValidationFailed.field("customerRepID", f"no active representative {requested}")
    if actor.is_admin or actor.is_phone:
        return
    if actor.role is Role.AGENT and requested in (actor.rep_id, None):
        return
    if actor.role is Role.RESTRICTED and requested == actor.rep_id:
        return
    who = "agents may assign only to themselves or nobody"
    if actor.role is Role.RESTRICTED:
        who = "restricted representatives may assign only to themselves"
    raise Forbidden(who, code="ASSIGNMENT_NOT_ALLOWED")


async def _check_channel(ctx: Ctx, channel_id: int | None, current: int | None) -> Channel | None:
    """The channel the ticket is to be in (phone auth: only its own), or 400 naming channelID."""
    if ctx.actor.is_phone and channel_id != ctx.actor.channel_id:
        raise Forbidden("phone auth cannot change the ticket's channel", code="CHANNEL_CHANGE_NOT_ALLOWED")
    if channel_id is None:
        return None
    channel = await ctx.db.get(Channel, channel_id)  # the ticket's own channel is loaded with it
    if channel is None:
        raise ValidationFailed.field("channelID", f"no channel {channel_id}")
    return channel


async def link_end_user(ctx: Ctx, ticket_id: int, end_user_id: int) -> None:
    """Link an end user to a ticket once (a no-op when linked): one INSERT ... ON CONFLICT DO NOTHING.

    Both ids are the caller's, already checked against the bound tenant; the row gets that tenant.
    """
    values = {"ticket_id": ticket_id, "end_user_id": end_user_id}
    await write_bound(ctx.db, _link_once(ctx.db.get_bind().dialect.name), values)


@cache
def _link_once(dialect: str) -> Any:
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return tenant_insert(dialect_insert(TicketEndUser).on_conflict_do_nothing())


async def link_uid(
    ctx: Ctx,
    ticket_id: int,
    uid: str | None,
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> None:
    """Link the end user the ticket's uid names, creating them when new."""
    if not uid:
        return
    end_user_id = await upsert_lenient(ctx, uid=uid, name=name, email=email, phone=phone)
    if end_user_id is not None:
        await link_end_user(ctx, ticket_id, end_user_id)


# What PUT replaces (a field it leaves out takes the DTO's default): state only clients write. With
# them status and channelType (required), and customFieldsData; isClosed and closeDate follow status.
REPLACED = ("subject", "escalated", "is_spam", "is_important", "end_date", "follow_up_date", "summary")
# Written only when the body names them, so a PUT that leaves them out keeps them: the server or an
# integration writes them too (messages set uid and mark unread, intake sets isProcessed, the phone
# integration the call fields). customerRepID and channelID are the same, with their own rules.
KEPT_UNLESS_NAMED = ("uid", "is_read", "is_processed", "twilio_call_sid", "from_number", "to_number")
# Never written through the Tickets API: kept from the ticket's messages (deskpal.messages.latest).
# POST and PUT ignore them, like the read-only fields; a PATCH that changes them is refused.
SERVER_MAINTAINED = ("last_message_date", "preview")
# One state, written through closed_state (deskpal.tickets.derived).
CLOSED_COLUMNS = ("status", "is_closed", "close_date")
# Each with a rule of its own in _apply: assignment by role, the channel (phone auth: its own) and its
# type, the end user to link (not a column), custom fields checked against their definitions.
OWN_RULES = ("customer_rep_id", "channel_id", "channel_type", "end_user_id", "custom_fields_data")


async def _apply(
    ctx: Ctx,
    ticket: Ticket,
    data: TicketWriteDTO,
    *,
    creating: bool,
    given: frozenset[str] | None = None,
    link: bool = True,
    require_custom_fields: bool = True,
) -> None:
    """Write a TicketWriteDTO onto a ticket. `given`: the fields the client wrote (by name); None
    means every field the DTO was given."""
    given = frozenset(data.model_fields_set) if given is None else given

    def named(name: str) -> bool:
        return creating or name in given

    requested_rep = data.customer_rep_id if named("customer_rep_id") else ticket.customer_rep_id
    if creating and ctx.actor.role is Role.RESTRICTED and requested_rep is None:
        # A restricted rep sees only their own tickets: what they create is theirs.
        requested_rep = ctx.actor.rep_id
    await check_assignment(ctx, None if creating else ticket.customer_rep_id, requested_rep)
    channel_id = data.channel_id if named("channel_id") else ticket.channel_id
    if ctx.actor.is_phone and channel_id is None and creating:
        channel_id = ctx.actor.channel_id
    channel = await _check_channel(ctx, channel_id, None if creating else ticket.channel_id)
    # The channel's type; a type the client changed must be it (a stale one sent back is not a change).
    retyped = creating or data.channel_type != ticket.channel_type
    channel_type = channel_type_in(channel, data.channel_type if retyped else None, field="channelType")
    if data.end_user_id is not None and await ctx.db.get(EndUser, data.end_user_id) is None:
        raise ValidationFailed.field("endUserID", f"no end user {data.end_user_id}")
    custom = await validate_custom_fields(
        ctx, EntityType.TICKET, data.custom_fields_data, partial=not require_custom_fields
    )
    written = {name: getattr(data, name) for name in CLOSED_COLUMNS if name in given or name == "status"}
    closed = closed_state(None if creating else ticket, written, utcnow())

    for name in REPLACED:
        setattr(ticket, name, getattr(data, name))
    for name in KEPT_UNLESS_NAMED:
        if named(name):
            setattr(ticket, name, getattr(data, name))
    for name, value in closed.items():
        setattr(ticket, name, value)
    ticket.customer_rep_id, ticket.channel_id = requested_rep, channel_id
    ticket.channel_type = channel_type or data.channel_type
    ticket.custom_fields_data = custom
    if creating:
        await insert_now(ctx.db, ticket)
    else:
        await ctx.db.flush()
    if data.end_user_id is not None:
        await link_end_user(ctx, ticket.ticket_id, data.end_user_id)
    if link:
        await link_uid(ctx, ticket.ticket_id, ticket.uid)


async def create_ticket(ctx: Ctx, data: TicketWriteDTO) -> Ticket:
    """A new ticket, linked to the end user its uid names (read_ticket shows it)."""
    return await insert_ticket(ctx, data, link=True)


async def insert_ticket(
    ctx: Ctx, data: TicketWriteDTO, *, link: bool, require_custom_fields: bool = True
) -> Ticket:
    """A new ticket (link=False: the caller links the uid's end user itself, knowing more of them;
    require_custom_fields=False: required ticket custom fields may be missing, see
    conversations.TicketOpening)."""
    ticket = Ticket()
    await _apply(ctx, ticket, data, creating=True, link=link, require_custom_fields=require_custom_fields)
    return ticket


@dataclass(frozen=True, slots=True)
class StateChange:
    """Ticket state written beside a message (the second API's ticket_update); None: unchanged."""

    status: str | None = None
    priority: str | None = None
    ticket_type: str | None = None
    # The JSON names the closed state's errors give (column name -> name); None: the Tickets API's.
    fields: Mapping[str, str] | None = None


def change_state(ticket: Ticket, change: StateChange) -> None:
    """Apply a StateChange by the ticket's write rules: the status through the one closed-state
    rule, priority and type as given."""
    if change.status is not None:
        fields = change.fields or CLOSED_FIELDS
        for name, value in closed_state(ticket, {"status": change.status}, utcnow(), fields=fields).items():
            setattr(ticket, name, value)
    if change.priority is not None:
        ticket.priority = change.priority
    if change.ticket_type is not None:
        ticket.ticket_type = change.ticket_type


async def replace_ticket(ctx: Ctx, ticket_id: int, data: TicketWriteDTO) -> Ticket:
    ticket = await get_ticket(ctx, ticket_id)
    await _apply(ctx, ticket, data, creating=False)
    return ticket


_WRITE_ALIASES = {
    name: f.alias or name for name, f in TicketWriteDTO.model_fields.items() if name != "end_user_id"
}


def _write_document(ticket: Ticket) -> dict[str, Any]:
    """The ticket as TicketWriteDTO JSON: what a JSON Patch applies to."""
    data = TicketWriteDTO.model_construct(**stored_fields(ticket), end_user_id=None)
    return data.model_dump(mode="json", by_alias=True)


async def patch_ticket(ctx: Ctx, ticket_id: int, operations: list[dict[str, Any]]) -> Ticket:
    """Apply an RFC 6902 patch to the ticket's write fields; any failure changes nothing."""
    ticket = await get_ticket(ctx, ticket_id)
    document = _write_document(ticket)
    patched = apply_json_patch(document, operations)
    if not isinstance(patched, dict):
        raise ValidationFailed.field("body", "the patched ticket must be an object")
    unknown = sorted(set(patched) - WRITE_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"not writable: {', '.join(unknown)}",
            errors=[{"field": k, "message": "is not a writable ticket field"} for k in unknown],
        )
    try:
        data = TicketWriteDTO.model_validate(patched)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(detail, errors=errors) from exc
    # What the patch changed is what the client wrote; the rest of the document is as it was.
    patched_doc = data.model_dump(mode="json", by_alias=True)
    given = frozenset(name for name, alias in _WRITE_ALIASES.items() if patched_doc[alias] != document[alias])
    refused = [_WRITE_ALIASES[name] for name in SERVER_MAINTAINED if name in given]
    if refused:
        message = "is kept from the ticket's messages; it is not written through the Tickets API"
        raise ValidationFailed(
            f"not writable: {', '.join(refused)}", errors=[{"field": f, "message": message} for f in refused]
        )
    await _apply(ctx, ticket, data, creating=False, given=given)
    return ticket


async def delete_ticket(ctx: Ctx, ticket_id: int, *, storage: Storage | None = None) -> None:
    """Delete the ticket; its messages, attachments and links go with it (foreign-key cascades),
    its recording and attachment bytes after the commit."""
    ticket = await get_ticket(ctx, ticket_id)
    await drop_blobs(ctx, [ticket], storage)
    await ctx.db.execute(
        delete(Ticket).where(Ticket.ticket_id == ticket_id).execution_options(synchronize_session=False)
    )
    ctx.db.expunge_all()


async def assign_to_me(ctx: Ctx, ticket_id: int, forward_number: str | None) -> Ticket:
    """Assign to the calling rep; for phone tickets, record where the call is forwarded."""
    ticket = await get_ticket(ctx, ticket_id)
    if ctx.actor.rep_id is None:
        raise Forbidden("only a representative can take a ticket", code="REP_REQUIRED")
    ticket.customer_rep_id = ctx.actor.rep_id
    if ticket.channel_type == ChannelType.PHONE.value:
        number = forward_number
        if number is None and ticket.channel is not None:
            number = ticket.channel.settings.get("forwardNumber")
        if number:
            # The call itself is forwarded by the phone integration; deskpal records the decision.
            ticket.forwarded_to_number, ticket.forwarded_at = number, utcnow()
    await ctx.db.flush()
    return ticket


async def drop_blobs(ctx: Ctx, tickets: Sequence[Ticket], storage: Storage | None) -> None:
    """Remove the recordings and attachment bytes of these tickets once this transaction commits
    (by a job in it). Without a storage (service callers that keep no files) the sweeper does it."""
    if storage is None or not tickets:
        return
    attachment_keys = await attachments.storage_keys_of_tickets(ctx, [t.ticket_id for t in tickets])
    await blobs.drop_blobs(ctx, storage, [*(t.recording_key for t in tickets), *attachment_keys])
