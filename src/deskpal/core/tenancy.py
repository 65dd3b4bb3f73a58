"""Every query and every write is scoped to the tenant bound to the session; none can forget it."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ForeignKey, Table, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria
from sqlalchemy.sql import visitors

from deskpal.core.db import Base, IdType


class TenantNotBound(RuntimeError):
    """A programming error: a tenant table was touched with no customer bound to the session."""


class CrossTenantWrite(RuntimeError):
    """A programming error: a row of another customer was about to be written."""


class TenantOwned:
    """Mixed into every table that belongs to one customer."""

    customer_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("customer.customer_id", ondelete="CASCADE"), index=True, nullable=False
    )


def _is_tenant_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, TenantOwned)


class TenantSession(Session):
    """The session class of every session deskpal opens; the hooks below are bound to it."""


@functools.cache
def _tenant_tables() -> frozenset[str]:
    return frozenset(
        m.local_table.name  # type: ignore[attr-defined]
        for m in Base.registry.mappers
        if _is_tenant_class(m.class_)
    )


def _touches_tenant_table(statement: Any) -> bool:
    names = _tenant_tables()
    return any(isinstance(el, Table) and el.name in names for el in visitors.iterate(statement))


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("all_tenants"):
        return
    customer_id = state.session.info.get("customer_id")
    if customer_id is None:
        # Rare (sessions before authentication), so the full walk of the statement is affordable.
        if any(_is_tenant_class(m.class_) for m in state.all_mappers) or _touches_tenant_table(
            state.statement
        ):
            raise TenantNotBound("query on a tenant table with no tenant bound")
        return
    # Always applied: the criteria reach tenant entities anywhere in the statement, subqueries
    # included (a count over a subquery has no tenant entity at its top level).
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.customer_id == customer_id,
            include_aliases=True,
        )
    )


@event.listens_for(TenantSession, "before_flush")
def _stamp_and_guard(session: Session, _flush_context: Any, _instances: Any) -> None:
    customer_id = session.info.get("customer_id")
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if customer_id is None:
            raise TenantNotBound(f"new {type(obj).__name__} with no tenant bound")
        if obj.customer_id is None:
            obj.customer_id = customer_id
        elif obj.customer_id != customer_id:
            raise CrossTenantWrite(f"new {type(obj).__name__} belongs to another customer")
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, TenantOwned) and obj.customer_id != customer_id:
            raise CrossTenantWrite(f"{type(obj).__name__} of another customer changed")
