"""Every query and every write is scoped to the tenant bound to the session; none can forget it."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from sqlalchemy import Column, ForeignKey, Table, bindparam, event, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    make_transient_to_detached,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable, operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from deskpal.core.db import Base, IdType

S = TypeVar("S", bound=Executable)
E = TypeVar("E")


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


# --- writes without the unit of work ---------------------------------------------------------------
#
# session.add + flush runs the unit of work (change tracking, a dependency sort, per-mapper
# bookkeeping, then the statement) for one row; on the message-creation path that was several
# times the statement itself (docs/performance.md). These two write one row with one Core statement
# and leave the object exactly as a flush would: persistent, clean, in the identity map.


def bound_customer(session: Session | Any) -> int:
    """The tenant bound to the session (an AsyncSession or its sync Session)."""
    customer_id = session.info.get("customer_id")
    if customer_id is None:
        raise TenantNotBound("no tenant is bound to the session")
    return int(customer_id)


def _value_of(default: Any) -> Any:
    if default is None:
        return None
    # Core wraps a callable default to take an execution context; ours ignore it.
    return default.arg(None) if default.is_callable else default.arg


@functools.cache
def _insert_returning_key(table: Table) -> Any:
    # Built once per table, values given at execution: a statement built with .values() each time
    # cost more to key and compile than the flush it replaces.
    return insert(table).returning(*table.primary_key.columns)


@functools.cache
def _update_by_key(table: Table, tenant: bool) -> Any:
    where = [column == bindparam(f"key_{column.key}") for column in table.primary_key.columns]
    if tenant:
        where.append(table.c.customer_id == bindparam("key_tenant"))
    return update(table).where(*where)


async def insert_now(session: Any, obj: Any) -> None:
    """INSERT a new entity (column attributes; relationships are not followed) and attach it.

    Unset columns get their Python-side default, as a flush would give them; the primary key comes
    back through RETURNING; the tenant is stamped and checked as before_flush does.
    """
    state = sa_inspect(obj)
    if state.key is not None or state.session_id is not None:
        raise ValueError(f"{type(obj).__name__} is not new")
    mapper = state.mapper
    if isinstance(obj, TenantOwned):
        customer_id = bound_customer(session)
        if obj.customer_id is None:
            obj.customer_id = customer_id
        elif obj.customer_id != customer_id:
            raise CrossTenantWrite(f"new {type(obj).__name__} belongs to another customer")
    given = obj.__dict__
    values: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if prop.key in given:
            values[column.key] = given[prop.key]
        elif not (column.primary_key and column.autoincrement):
            values[column.key] = _value_of(column.default)
            setattr(obj, prop.key, values[column.key])
    connection = await session.connection()
    row = (await connection.execute(_insert_returning_key(mapper.local_table), values)).one()
    for column, value in zip(mapper.primary_key, row, strict=True):
        setattr(obj, mapper.get_property_by_column(column).key, value)
    make_transient_to_detached(obj)
    session.add(obj)


async def update_now(session: Any, obj: Any, changes: dict[str, Any]) -> None:
    """UPDATE a persistent entity's columns now (by primary key, within the tenant) and keep the
    object in step, clean: nothing is left for a flush to write."""
    state = sa_inspect(obj)
    if state.key is None or not changes:
        raise ValueError(f"{type(obj).__name__} is not persistent, or nothing changes")
    mapper = state.mapper
    values = dict(changes)
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if column.onupdate is not None and prop.key not in values:
            values[prop.key] = _value_of(column.onupdate)
    table = mapper.local_table
    tenant = isinstance(obj, TenantOwned)
    params = {mapper.get_property(key).columns[0].key: value for key, value in values.items()}
    for column, value in zip(mapper.primary_key, state.identity, strict=True):
        params[f"key_{column.key}"] = value
    if tenant:
        params["key_tenant"] = bound_customer(session)
    connection = await session.connection()
    await connection.execute(_update_by_key(table, tenant), params)
    for key, value in values.items():
        set_committed_value(obj, key, value)


# --- reads built once ------------------------------------------------------------------------------
#
# The hook above re-scopes every ORM statement as it runs: a new statement object each time, whose
# cache key SQLAlchemy must compute by walking it. For the reads behind every ticket request that
# walk and the ORM execution path cost four times the query itself (a ticket's read: ~500 µs
# against ~110 µs, docs/performance.md). So those few statements are built once with the tenant as
# the bound parameter `tenant_id`, checked here when they are built, and run on the session's
# connection with the value taken from the session, never from the caller.

TENANT_PARAM = "tenant_id"
_CHECKED = "deskpal_tenant_bound"


def _scoped_tables(stmt: Any) -> tuple[set[str], set[str]]:
    """(tenant tables the statement reads, tables it compares with :tenant_id)."""
    read: set[str] = set()
    scoped: set[str] = set()
    names = _tenant_tables()
    for element in visitors.iterate(stmt):
        if isinstance(element, Table) and element.name in names:
            read.add(element.name)
        elif isinstance(element, BinaryExpression) and element.operator is operators.eq:
            sides = (element.left, element.right)
            param = any(isinstance(s, BindParameter) and s.key == TENANT_PARAM for s in sides)
            scoped.update(
                side.table.name
                for side in sides
                if param
                and isinstance(side, Column)
                and side.name == "customer_id"
                and isinstance(side.table, Table)
            )
    return read, scoped


def tenant_bound(stmt: S) -> S:
    """Mark a statement built once as scoped by :tenant_id; refused unless every tenant table it
    reads is compared with that parameter."""
    read, scoped = _scoped_tables(stmt)
    if not read:
        raise ValueError("tenant_bound: the statement reads no tenant table")
    if read - scoped:
        raise TenantNotBound(f"not scoped by :{TENANT_PARAM}: {sorted(read - scoped)}")
    return stmt.execution_options(**{_CHECKED: True})


async def read_bound(session: Any, stmt: Any, params: dict[str, Any] | None = None) -> Any:
    """Run a tenant_bound statement for the session's tenant (a Result of plain rows)."""
    if not stmt.get_execution_options().get(_CHECKED):
        raise TenantNotBound("read_bound runs tenant_bound statements only")
    values = {**(params or {}), TENANT_PARAM: bound_customer(session)}
    connection = await session.connection()
    return await connection.execute(stmt, values)


@functools.cache
def _row_by_key(mapper: Any) -> Any:
    columns = [getattr(mapper.class_, prop.key).label(prop.key) for prop in mapper.column_attrs]
    (key,) = mapper.primary_key
    tenant = mapper.local_table.c.customer_id == bindparam(TENANT_PARAM)
    return tenant_bound(select(*columns).where(key == bindparam("key"), tenant))


async def get_now(session: Any, entity: type[E], key: int) -> E | None:
    """session.get for a tenant entity with a single-column key: the identity map first, else one
    prebuilt read (read_bound), whose row is attached as a persistent, clean object, as a load
    would leave it. Cheaper than session.get's ORM path, which rebuilds and re-scopes the query."""
    mapper = sa_inspect(entity)
    known = session.sync_session.identity_map.get(mapper.identity_key_from_primary_key((key,)))
    if known is not None:
        return known  # type: ignore[no-any-return]
    row = (await read_bound(session, _row_by_key(mapper), {"key": key})).first()
    if row is None:
        return None
    obj = entity(**row._mapping)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
