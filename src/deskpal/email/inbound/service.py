"""Received mail for the API: the list, one mail, its raw bytes, a retry; who may see them.

Raw mail is every ticket's mail at once, before ticket visibility applies: only admins and agents
(who see every ticket) read it. Restricted representatives and viewers get 403.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from deskpal.channels import service as channels
from deskpal.core.context import Ctx, Role
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict, Forbidden
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.email.inbound.models import InboundMail, InboundStatus
from deskpal.email.inbound.parsed import MailKind
from deskpal.email.inbound.receive import RECEIVE_KIND, ReceiveMail, check_channel, job_key
from deskpal.email.inbound.schemas import InboundMailDTO, InboundReceivedDTO
from deskpal.storage import Storage

MAIL_ROLES = frozenset({Role.ADMIN, Role.AGENT})


class NotRetryable(Conflict):
    code, title = "NOT_RETRYABLE", "Only a failed mail is retried"


def check_role(ctx: Ctx) -> None:
    """Admins and agents (and the system): raw mail is outside ticket visibility."""
    actor = ctx.actor
    if actor.role is None and actor.is_admin:
        return
    if actor.role not in MAIL_ROLES:
        raise Forbidden(
            f"role {actor.role or actor.kind} cannot read or take in raw mail: admins and agents do",
            code="INBOUND_MAIL_ROLE",
        )


async def receiving_channel(ctx: Ctx, channel_id: int) -> None:
    """The checks of the raw-mail endpoint before its body is read: the caller's role, the channel
    (404 for an unknown or another customer's), an Email channel (422)."""
    check_role(ctx)
    check_channel(await channels.get_channel(ctx, channel_id))


def received(row: InboundMail) -> InboundReceivedDTO:
    return InboundReceivedDTO(
        inbound_mail_id=row.inbound_mail_id, status=row.status, duplicate_of_id=row.duplicate_of
    )


def to_dto(row: InboundMail) -> InboundMailDTO:
    return InboundMailDTO(
        inbound_mail_id=row.inbound_mail_id,
        channel_id=row.channel_id,
        source=row.source,
        message_identifier=row.header_message_id,
        subject=row.subject,
        from_address=row.from_address,
        size=row.size,
        sha256=row.sha256,
        received_at=row.received_at,
        status=row.status,
        kind=row.kind,
        error=row.error,
        outcome=row.outcome,
        message_id=row.message_id,
        ticket_id=row.ticket_id,
        duplicate_of_id=row.duplicate_of,
        attempts=row.attempts,
        processed_at=row.processed_at,
    )


async def list_mails(
    ctx: Ctx,
    params: PageParams,
    *,
    status: InboundStatus | None = None,
    kind: MailKind | None = None,
    channel_id: int | None = None,
) -> PageResult[InboundMail]:
    """The customer's received mail, newest first."""
    check_role(ctx)
    where: list[ColumnElement[bool]] = []
    if status is not None:
        where.append(InboundMail.status == status.value)
    if kind is not None:
        where.append(InboundMail.kind == kind.value)
    if channel_id is not None:
        where.append(InboundMail.channel_id == channel_id)
    stmt = select(InboundMail).where(*where).order_by(InboundMail.inbound_mail_id.desc())
    return await paginate(ctx.db, stmt, params)


async def get_mail(ctx: Ctx, inbound_mail_id: int) -> InboundMail:
    check_role(ctx)
    return await get_or_404(ctx.db, InboundMail, inbound_mail_id, what="inbound mail")


async def retry_mail(ctx: Ctx, storage: Storage, inbound_mail_id: int) -> InboundMail:
    """A failed mail back to pending, with a new job to parse and file it again (409 otherwise)."""
    row = await get_mail(ctx, inbound_mail_id)
    if row.status != InboundStatus.FAILED.value:
        raise NotRetryable(f"inbound mail {inbound_mail_id} is {row.status}: only a failed mail is retried")
    row.status, row.error, row.processed_at = InboundStatus.PENDING.value, None, None
    await ctx.db.flush()
    await ctx.enqueue(
        RECEIVE_KIND,
        ReceiveMail(inbound_mail_id=row.inbound_mail_id, storage=storage.locator),
        idempotency_key=job_key(row),
    )
    return row
