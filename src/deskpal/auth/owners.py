"""The few lookups that must look across customers: which customer owns an id, and login emails.

Cross-tenant queries live only in core/ and auth/ (a test enforces it), so that they stay few.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.auth.models import ApiKey
from deskpal.customers.models import CustomerRep


async def customer_of_rep(db: AsyncSession, rep_id: int) -> int | None:
    stmt = select(CustomerRep.customer_id).where(CustomerRep.customer_rep_id == rep_id)
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()


async def customer_of_api_key(db: AsyncSession, key_id: int) -> int | None:
    stmt = select(ApiKey.customer_id).where(ApiKey.api_key_id == key_id)
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()


async def customer_of_channel(db: AsyncSession, channel_id: int) -> int | None:
    """`deskpal mail import --channel-id N` names the channel alone."""
    from deskpal.channels.models import Channel

    stmt = select(Channel.customer_id).where(Channel.channel_id == channel_id)
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()


async def email_in_use(db: AsyncSession, email: str, *, except_rep_id: int | None = None) -> bool:
    """Emails are unique across customers: a login names its account by email alone."""
    stmt = select(CustomerRep.customer_rep_id).where(CustomerRep.email == email)
    if except_rep_id is not None:
        stmt = stmt.where(CustomerRep.customer_rep_id != except_rep_id)
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first() is not None


async def customer_of_attachment_token(db: AsyncSession, access_token: str) -> int | None:
    """GET /api/File/{accessToken} names no customer: the unguessable token is the credential."""
    stmt = select(TicketMessageAttachment.customer_id).where(
        TicketMessageAttachment.access_token == access_token
    )
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()


async def customer_of_open_token(db: AsyncSession, open_token: str) -> int | None:
    """GET /api/TicketMessages/ot names no customer: the message's unguessable open token is all."""
    # Imported here: a module-level import of the messages models from auth broke the CLI's
    # mapper configuration (auth is imported before every table is declared).
    from deskpal.messages.models import TicketMessage

    stmt = select(TicketMessage.customer_id).where(TicketMessage.open_token == open_token)
    return (await db.scalars(stmt.execution_options(all_tenants=True))).first()


async def ticket_of_token(db: AsyncSession, token: str) -> tuple[int, int] | None:
    """(customer id, ticket id) of the ticket whose public token this is: the anonymous escalation
    route names the ticket by its token alone."""
    from deskpal.tickets.models import Ticket

    stmt = select(Ticket.customer_id, Ticket.ticket_id).where(Ticket.token == token)
    row = (await db.execute(stmt.execution_options(all_tenants=True))).first()
    return (int(row[0]), int(row[1])) if row else None
