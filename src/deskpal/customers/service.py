"""Customers and representatives."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.core.context import Ctx, Role
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict
from deskpal.core.permissions import is_downgrade
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.core.security import hash_password, new_token_key
from deskpal.customers.models import Customer, CustomerRep
from deskpal.customers.schemas import CustomerRepCreateDTO, CustomerRepUpdateDTO


@dataclass(frozen=True, slots=True)
class NewCustomer:
    customer: Customer
    admin: CustomerRep
    api_key: str


async def create_customer(
    db: AsyncSession, name: str, *, admin_email: str, admin_password: str | None, admin_name: str = "Admin"
) -> NewCustomer:
    """A customer with its first admin and an API key for that admin; binds `db` to the new tenant."""
    from deskpal.auth import service as auth

    customer = Customer(name=name)
    db.add(customer)
    await db.flush()
    ctx = Ctx.system(db, customer.customer_id)
    admin = await create_rep(
        ctx,
        CustomerRepCreateDTO(name=admin_name, email=admin_email, password=admin_password, role=Role.ADMIN),
    )
    _, secret = await auth.create_api_key(ctx, name="initial admin key", rep_id=admin.customer_rep_id)
    return NewCustomer(customer, admin, secret)


async def count_customers(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count(Customer.customer_id))) or 0)


async def list_reps(ctx: Ctx, params: PageParams) -> PageResult[CustomerRep]:
    stmt = select(CustomerRep).order_by(CustomerRep.customer_rep_id)
    return await paginate(ctx.db, stmt, params)


async def get_rep(ctx: Ctx, rep_id: int) -> CustomerRep:
    return await get_or_404(ctx.db, CustomerRep, rep_id, what="customer rep")


async def find_rep(ctx: Ctx, rep_id: int) -> CustomerRep | None:
    stmt = select(CustomerRep).where(CustomerRep.customer_rep_id == rep_id)
    return (await ctx.db.scalars(stmt)).first()


async def _ensure_email_free(db: AsyncSession, email: str, *, except_id: int | None = None) -> None:
    from deskpal.auth.owners import email_in_use

    if await email_in_use(db, email, except_rep_id=except_id):
        raise Conflict(f"email {email} is already in use", code="EMAIL_IN_USE")


async def create_rep(ctx: Ctx, data: CustomerRepCreateDTO) -> CustomerRep:
    await _ensure_email_free(ctx.db, data.email)
    rep = CustomerRep(
        name=data.name,
        email=data.email,
        role=data.role.value,
        password_hash=hash_password(data.password) if data.password else None,
        is_active=True,
    )
    ctx.db.add(rep)
    await ctx.db.flush()
    return rep


async def _count_active_admins(db: AsyncSession) -> int:
    # FOR UPDATE: two admins removing each other at once must not both see "another admin is left".
    # The second waits for the first and then counts what it left behind. (SQLite serialises writers.)
    stmt = (
        select(CustomerRep.customer_rep_id)
        .where(CustomerRep.role == Role.ADMIN.value, CustomerRep.is_active.is_(True))
        .order_by(CustomerRep.customer_rep_id)  # one lock order for everyone: no deadlock between them
        .with_for_update()
    )
    return len((await db.scalars(stmt)).all())


async def _guard_last_admin(ctx: Ctx, rep: CustomerRep) -> None:
    if rep.role == Role.ADMIN.value and rep.is_active and await _count_active_admins(ctx.db) <= 1:
        raise Conflict("a customer must keep at least one active admin", code="LAST_ADMIN")


async def update_rep(ctx: Ctx, rep_id: int, data: CustomerRepUpdateDTO) -> CustomerRep:
    rep = await get_rep(ctx, rep_id)
    if (data.role != Role.ADMIN or not data.is_active) and rep.role == Role.ADMIN.value:
        await _guard_last_admin(ctx, rep)
    if data.email != rep.email:
        await _ensure_email_free(ctx.db, data.email, except_id=rep.customer_rep_id)
    if _revokes_login_tokens(rep, data):
        rep.token_key = new_token_key()
    rep.name, rep.email, rep.role, rep.is_active = data.name, data.email, data.role.value, data.is_active
    if data.password:
        rep.password_hash = hash_password(data.password)
    await ctx.db.flush()
    return rep


def _revokes_login_tokens(rep: CustomerRep, data: CustomerRepUpdateDTO) -> bool:
    """Whether this change ends every login token of the rep (a new token key).

    A token is a session: it must not outlive deactivation, a new password (the usual answer to a
    stolen one) or a new email (the account's identity), nor keep a session opened with more rights
    than the rep now has. API keys are not sessions: they act with the rep's current role and
    state on each request, and are revoked one by one (docs/decisions.md).
    """
    return (
        (rep.is_active and not data.is_active)
        or bool(data.password)
        or data.email != rep.email
        or is_downgrade(Role(rep.role), data.role)
    )


async def delete_rep(ctx: Ctx, rep_id: int) -> None:
    rep = await get_rep(ctx, rep_id)
    if rep.customer_rep_id == ctx.actor.rep_id:
        raise Conflict("you cannot delete yourself", code="CANNOT_DELETE_SELF")
    await _guard_last_admin(ctx, rep)
    from deskpal.messages.authors import keep_author_names  # messages import customers' models

    await keep_author_names(ctx, rep.customer_rep_id, rep.name)
    # Its tickets go back to the unassigned queue (customer_rep_id SET NULL), its API keys with it.
    await ctx.db.delete(rep)
    await ctx.db.flush()
