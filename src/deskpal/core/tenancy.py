"""Every query and every write is scoped to the tenant bound to the session; none can forget it."""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import ForeignKey, Insert, Table, bindparam, event, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine.default import StrCompileDialect
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    make_transient_to_detached,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import Executable, operators, visitors
from sqlalchemy.sql.compiler import StrSQLCompiler
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    Grouping,
    TextClause,
)
from sqlalchemy.sql.selectable import (
    Alias,
    AliasedReturnsRows,
    FromGrouping,
    Join,
    TableClause,
    TableSample,
    TextualSelect,
)

from deskpal.core.db import Base, IdType

S = TypeVar("S", bound=Executable)
E = TypeVar("E")


class TenantNotBound(RuntimeError):
    """A programming error: a tenant table was touched with no customer bound to the session."""


class CrossTenantWrite(RuntimeError):
    """A programming error: a row of another customer was about to be written."""


class CrossTenantRead(RuntimeError):
    """A programming error: a row of another customer, already in the session, was asked for."""


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


@functools.cache
def _mapped_tables() -> frozenset[str]:
    return frozenset(m.local_table.name for m in Base.registry.mappers)  # type: ignore[attr-defined]


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
    object in step, clean: nothing is left for a flush to write.

    Exactly one row must change, as a flush insists: an object of another tenant raises
    CrossTenantWrite before anything runs, and an UPDATE that matched no row (the row is gone, or
    is not the bound tenant's whatever the object says) raises StaleDataError, the object left as
    it was; neither "succeeds" in memory only."""
    state = sa_inspect(obj)
    if state.key is None or not changes:
        raise ValueError(f"{type(obj).__name__} is not persistent, or nothing changes")
    if isinstance(obj, TenantOwned) and obj.customer_id != bound_customer(session):
        raise CrossTenantWrite(f"{type(obj).__name__} of another customer changed")
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
    result = await connection.execute(_update_by_key(table, tenant), params)
    if result.rowcount != 1:
        raise StaleDataError(
            f"UPDATE of {table.name} {state.identity} matched {result.rowcount} rows, expected 1: "
            "the row is gone or belongs to another tenant"
        )
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
# The statements tenant_bound passed, by identity. A copy made later (.where(), .join(),
# .execution_options()) is a new object, so it is not in here and read_bound refuses it: an
# execution option would have been copied into it, and so would have vouched for a join added
# after the check.
_CHECKED: weakref.WeakSet[Any] = weakref.WeakSet()
# A raw SQL fragment that reads a table (text(), literal_column()) cannot be checked.
_RAW_READ = re.compile(r"\b(from|join)\b", re.IGNORECASE)


class _FromRecorder(StrSQLCompiler):
    """Compiles a statement and notes every SELECT in it (subqueries, scalar subqueries, EXISTS,
    CTEs, LATERAL, each member of a UNION) with the FROM list SQLAlchemy renders for it: after
    correlation, so a correlated subquery's outer table is the outer SELECT's, not its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.selects: list[tuple[Any, list[Any]]] = []  # filled while super() compiles
        super().__init__(*args, **kwargs)

    def _setup_select_stack(self, select: Any, *args: Any) -> Any:
        # SQLAlchemy's step (2.0, 2.1) that decides each SELECT's FROM list. Were it renamed, no
        # SELECT would be noted and tenant_bound would refuse every statement ("reads no tenant
        # table"): a loud failure of every test, never a silent pass.
        froms = super()._setup_select_stack(select, *args)  # type: ignore[no-untyped-call]
        self.selects.append((select, list(froms)))
        return froms


class _RecordingDialect(StrCompileDialect):
    statement_compiler = _FromRecorder


def _conjuncts(criteria: Iterable[Any]) -> Iterator[Any]:
    """The top-level AND terms: a term inside OR, NOT or CASE is not one."""
    for term in criteria:
        while isinstance(term, Grouping):
            term = term.element
        if isinstance(term, BooleanClauseList) and term.operator is operators.and_:
            yield from _conjuncts(term.clauses)
        else:
            yield term


def _plain(element: Any) -> Any:
    # The ORM compiles annotated copies of tables and columns; identity is the plain object's.
    return element._deannotate() if hasattr(element, "_deannotate") else element


def _scoped(criteria: Iterable[Any]) -> set[Any]:
    """The FROM elements (tables, aliases) whose own customer_id a top-level term compares with
    :tenant_id."""
    scoped: set[Any] = set()
    for term in _conjuncts(criteria):
        if not (isinstance(term, BinaryExpression) and term.operator is operators.eq):
            continue
        sides = (term.left, term.right)
        if not any(isinstance(s, BindParameter) and s.key == TENANT_PARAM for s in sides):
            continue
        for side in sides:
            if isinstance(side, ColumnClause) and side.name == "customer_id" and side.table is not None:
                scoped.add(_plain(side.table))
    return scoped


def _tables(element: Any, scoped_by_on: set[Any]) -> Iterator[tuple[Any, set[Any]]]:
    """Each table-like element of one FROM entry, with what the ON clauses above it scope: a join's
    ON scopes its right side (an outer join's left side keeps every row, whatever ON says); a full
    join's ON scopes neither."""
    if isinstance(element, FromGrouping):
        yield from _tables(element.element, scoped_by_on)
    elif isinstance(element, Join):
        yield from _tables(element.left, set() if element.full else scoped_by_on)
        on = set() if element.full else scoped_by_on | _scoped([element.onclause])
        yield from _tables(element.right, on)
    else:
        yield element, scoped_by_on


def _tenant_table(element: Any) -> str | None:
    """The name of the tenant table a FROM element reads (itself or aliased), else None: a mapped
    TenantOwned table, or a table the ORM does not map (the PostgreSQL search table) that has a
    customer_id column."""
    base = _plain(element)
    while isinstance(base, (Alias, TableSample)):
        base = _plain(base.element)
    if not isinstance(base, TableClause):
        return None
    if base.name in _tenant_tables() or (base.name not in _mapped_tables() and "customer_id" in base.c):
        return base.name
    return None


def _unscoped(stmt: Any) -> tuple[set[str], list[str]]:
    """(tenant tables the statement reads, a description of each FROM element left unscoped)."""
    compiled = stmt.compile(dialect=_RecordingDialect())
    read: set[str] = set()
    unscoped: list[str] = []
    for one, froms in compiled.selects:
        where = _scoped(one._where_criteria)
        for entry in froms:
            for element, scoped_by_on in _tables(entry, set()):
                if isinstance(element, (TextClause, TextualSelect)) or (
                    isinstance(element, AliasedReturnsRows) and isinstance(element.element, TextualSelect)
                ):
                    unscoped.append(f"raw SQL in FROM: {element}")
                    continue
                name = _tenant_table(element)
                if name is None:
                    continue
                read.add(name)
                if _plain(element) not in where | scoped_by_on:
                    alias = getattr(element, "name", name)
                    unscoped.append(name if alias == name else f"{name} AS {alias}")
    for element in visitors.iterate(stmt):
        raw = element.text if isinstance(element, TextClause) else None
        if isinstance(element, ColumnClause) and element.is_literal:
            raw = element.name
        if raw is not None and _RAW_READ.search(raw):
            unscoped.append(f"raw SQL that reads a table: {raw!r}")
    return read, unscoped


def tenant_bound(stmt: S) -> S:
    """Check a statement built once and remember it (by identity) for read_bound.

    Refused (TenantNotBound) unless, in every SELECT of it, every FROM element that is a tenant
    table (each alias separately) is scoped by a top-level AND term `<that element>.customer_id =
    :tenant_id` of the SELECT's WHERE, or of the ON of the join that brings it in."""
    read, unscoped = _unscoped(stmt)
    if unscoped:
        raise TenantNotBound(f"not scoped by :{TENANT_PARAM}: {sorted(set(unscoped))}")
    if not read:
        raise ValueError("tenant_bound: the statement reads no tenant table")
    _CHECKED.add(stmt)
    return stmt


async def read_bound(session: Any, stmt: Any, params: dict[str, Any] | None = None) -> Any:
    """Run a tenant_bound statement for the session's tenant (a Result of plain rows)."""
    if stmt not in _CHECKED:
        raise TenantNotBound("read_bound runs statements tenant_bound returned, unchanged, only")
    values = {**(params or {}), TENANT_PARAM: bound_customer(session)}
    connection = await session.connection()
    return await connection.execute(stmt, values)


# --- inserts built once ----------------------------------------------------------------------------
#
# A prebuilt INSERT (an upsert, a link inserted once) runs on the session's connection, past the
# ORM hooks, so the tenant is stamped here: tenant_insert checks the statement once, write_bound
# runs only checked ones and sets customer_id from the session.

_CHECKED_INSERTS: weakref.WeakSet[Any] = weakref.WeakSet()


def tenant_insert(stmt: S) -> S:
    """Check a prebuilt INSERT into a tenant table and remember it (by identity) for write_bound.

    Its values are given when it runs (customer_id among them, from the session); an
    `ON CONFLICT ... DO UPDATE` must name customer_id in its conflict target, so that the row it
    updates is the tenant's own, and must not set customer_id; no `INSERT ... SELECT`."""
    table = getattr(stmt, "table", None)
    if not isinstance(stmt, Insert) or table is None or _tenant_table(table) is None:
        raise ValueError("tenant_insert: not an INSERT into a tenant table")
    if stmt.select is not None or stmt._values or stmt._multi_values:
        raise TenantNotBound("tenant_insert: values come from write_bound, never from the statement")
    conflict = getattr(stmt, "_post_values_clause", None)
    if conflict is not None and getattr(conflict, "update_values_to_set", None) is not None:
        target = {getattr(e, "name", e) for e in conflict.inferred_target_elements or ()}
        sets = {getattr(k, "name", k) for k in conflict.update_values_to_set}
        if "customer_id" not in target or "customer_id" in sets or conflict.update_whereclause is not None:
            raise TenantNotBound("tenant_insert: ON CONFLICT DO UPDATE must be keyed by customer_id")
    _CHECKED_INSERTS.add(stmt)
    return stmt


async def write_bound(session: Any, stmt: Any, values: dict[str, Any]) -> Any:
    """Run a tenant_insert statement for the session's tenant (customer_id set from the session,
    overriding anything the caller passed); the Result."""
    if stmt not in _CHECKED_INSERTS:
        raise TenantNotBound("write_bound runs statements tenant_insert returned, unchanged, only")
    connection = await session.connection()
    return await connection.execute(stmt, {**values, "customer_id": bound_customer(session)})


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
    customer_id = bound_customer(session)
    known = session.sync_session.identity_map.get(mapper.identity_key_from_primary_key((key,)))
    if known is not None:
        # A row loaded before the session's tenant changed (a programming error) is not this
        # tenant's to read; the prebuilt read below could never return it.
        if isinstance(known, TenantOwned) and known.customer_id != customer_id:
            raise CrossTenantRead(f"{entity.__name__} {key} in the session belongs to another customer")
        return known  # type: ignore[no-any-return]
    row = (await read_bound(session, _row_by_key(mapper), {"key": key})).first()
    if row is None:
        return None
    obj = entity(**row._mapping)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
