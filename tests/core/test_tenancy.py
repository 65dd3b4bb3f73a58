"""The tenant scoping hooks: no query or write can reach another customer's rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from deskpal.core.context import Ctx
from deskpal.core.db import transaction, utcnow
from deskpal.core.tenancy import CrossTenantWrite, TenantNotBound
from deskpal.topics.models import Topic
from tests.support import Tenant, db_of


async def _add_topic(app: object, tenant: Tenant, name: str) -> int:
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        topic = Topic(name=name)
        db.add(topic)
        await db.flush()
        return topic.topic_id


class TestUnboundSession:
    async def test_select_on_tenant_table_without_tenant_raises(self, app: object, tenant: Tenant) -> None:
        async with transaction(db_of(app), write=False) as db:
            with pytest.raises(TenantNotBound):
                await db.scalars(select(Topic))

    async def test_count_on_tenant_table_without_tenant_raises(self, app: object, tenant: Tenant) -> None:
        async with transaction(db_of(app), write=False) as db:
            with pytest.raises(TenantNotBound):
                await db.scalar(select(func.count(Topic.topic_id)))

    async def test_update_and_delete_without_tenant_raise(self, app: object, tenant: Tenant) -> None:
        async with transaction(db_of(app)) as db:
            with pytest.raises(TenantNotBound):
                await db.execute(update(Topic).values(name="x"))
            with pytest.raises(TenantNotBound):
                await db.execute(delete(Topic))

    async def test_insert_without_tenant_raises(self, app: object) -> None:
        with pytest.raises(TenantNotBound):
            async with transaction(db_of(app)) as db:
                db.add(Topic(name="orphan"))
                await db.flush()

    async def test_all_tenants_option_sees_every_customer(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _add_topic(app, tenant, "a")
        await _add_topic(app, other_tenant, "b")
        async with transaction(db_of(app), write=False) as db:
            names = (await db.scalars(select(Topic.name).execution_options(all_tenants=True))).all()
        assert sorted(names) == ["a", "b"]


class TestBoundSession:
    async def test_select_sees_only_own_rows(self, app: object, tenant: Tenant, other_tenant: Tenant) -> None:
        await _add_topic(app, tenant, "mine")
        theirs = await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            assert (await db.scalars(select(Topic.name))).all() == ["mine"]
            assert await db.scalar(select(func.count(Topic.topic_id))) == 1
            assert (await db.scalars(select(Topic).where(Topic.topic_id == theirs))).first() is None

    async def test_bulk_update_and_delete_touch_only_own_rows(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _add_topic(app, tenant, "mine")
        await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            await db.execute(update(Topic).values(description="touched"))
            await db.execute(delete(Topic))
        async with transaction(db_of(app), customer_id=other_tenant.customer_id) as db:
            rows = (await db.scalars(select(Topic))).all()
        assert [(t.name, t.description) for t in rows] == [("theirs", None)]

    async def test_new_rows_are_stamped_with_the_bound_tenant(self, app: object, tenant: Tenant) -> None:
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            topic = Topic(name="stamped")
            db.add(topic)
            await db.flush()
            assert topic.customer_id == tenant.customer_id

    async def test_writing_a_row_of_another_tenant_raises(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        with pytest.raises(CrossTenantWrite):
            async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
                db.add(Topic(name="smuggled", customer_id=other_tenant.customer_id))
                await db.flush()

    async def test_system_ctx_binds_the_tenant(self, app: object, tenant: Tenant) -> None:
        await _add_topic(app, tenant, "mine")
        async with transaction(db_of(app), write=False) as db:
            ctx = Ctx.system(db, tenant.customer_id)
            assert (await ctx.db.scalars(select(Topic.name))).all() == ["mine"]


class TestSubqueries:
    async def test_count_over_a_subquery_sees_only_own_rows(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _add_topic(app, tenant, "mine")
        await _add_topic(app, other_tenant, "theirs")
        await _add_topic(app, other_tenant, "theirs too")
        async with transaction(db_of(app), customer_id=tenant.customer_id, write=False) as db:
            inner = select(Topic).subquery()
            assert await db.scalar(select(func.count()).select_from(inner)) == 1

    async def test_subquery_on_tenant_table_without_tenant_raises(self, app: object, tenant: Tenant) -> None:
        async with transaction(db_of(app), write=False) as db:
            with pytest.raises(TenantNotBound):
                await db.scalar(select(func.count()).select_from(select(Topic).subquery()))


def _shapes() -> tuple[dict[str, Any], dict[str, Any]]:
    """Statements tenant_bound must refuse, and ones it must accept, by name: builders, called
    in the test."""
    from sqlalchemy import and_, bindparam, case, literal_column, not_, or_, text, true, union_all
    from sqlalchemy.orm import aliased
    from sqlalchemy.sql import column, table

    from deskpal.channels.models import Channel
    from deskpal.tickets.models import Ticket, TicketTopic

    t = bindparam("tenant_id")
    own = Ticket.customer_id == t
    base = select(Ticket.ticket_id)
    other = aliased(Ticket, name="other")
    topics = select(TicketTopic.ticket_id)
    core: Any = Ticket.__table__
    search = table("ticket_message_search", column("message_id"), column("customer_id"))
    bypasses = {
        "inside OR": lambda: base.where(or_(own, Ticket.ticket_id == 1)),
        "inside NOT": lambda: base.where(not_(or_(Ticket.customer_id != t, Ticket.ticket_id == 1))),
        "inside CASE": lambda: base.where(case((own, true()), else_=true()) == true()),
        "unscoped second alias": lambda: base.join(other, other.ticket_id == Ticket.ticket_id).where(own),
        "alias scoped by the other copy's column": lambda: base.join(
            other, and_(other.ticket_id == Ticket.ticket_id, own)
        ).where(own),
        "outer join's ON scoping its left side": lambda: (
            select(Ticket.ticket_id)
            .select_from(Ticket)
            .outerjoin(Channel, and_(Channel.channel_id == Ticket.channel_id, Channel.customer_id == t, own))
        ),
        "unscoped IN subquery": lambda: base.where(own, Ticket.ticket_id.in_(topics)),
        "unscoped EXISTS": lambda: base.where(
            own, select(TicketTopic.topic_id).where(TicketTopic.ticket_id == Ticket.ticket_id).exists()
        ),
        "unscoped scalar subquery in the columns": lambda: select(
            Ticket.ticket_id,
            select(TicketTopic.topic_id).where(TicketTopic.ticket_id == Ticket.ticket_id).scalar_subquery(),
        ).where(own),
        "unscoped CTE": lambda: base.where(own, Ticket.ticket_id.in_(select(topics.cte("c")))),
        "unscoped FROM subquery": lambda: select(topics.subquery().c.ticket_id),
        "unscoped UNION member": lambda: union_all(base.where(own), topics),
        "a literal tenant": lambda: base.where(Ticket.customer_id == 1),
        "a tenant parameter made unique": lambda: base.where(
            Ticket.customer_id == bindparam("tenant_id", unique=True)
        ),
        "tenant compared by another column": lambda: base.where(Ticket.channel_id == t),
        "an unmapped table with customer_id": lambda: select(search.c.message_id),
        "raw SQL in FROM": lambda: (
            select(core.c.ticket_id, literal_column("x"))
            .where(core.c.customer_id == t)
            .select_from(text("ticket_topic"))
        ),
        "raw SQL reading a table": lambda: base.where(
            own, Ticket.ticket_id == literal_column("(SELECT max(ticket_id) FROM ticket_topic)")
        ),
    }
    scoped = {
        "WHERE": lambda: base.where(own),
        "nested AND": lambda: base.where(and_(Ticket.ticket_id > 0, and_(own, true()))),
        "joined table in its ON": lambda: base.join(
            TicketTopic, and_(TicketTopic.ticket_id == Ticket.ticket_id, TicketTopic.customer_id == t)
        ).where(own),
        "second alias scoped itself": lambda: base.join(
            other, and_(other.ticket_id == Ticket.ticket_id, other.customer_id == t)
        ).where(own),
        "correlated subquery scoped on its own table": lambda: base.where(
            own,
            select(TicketTopic.topic_id)
            .where(TicketTopic.ticket_id == Ticket.ticket_id, TicketTopic.customer_id == t)
            .exists(),
        ),
        "scoped CTE": lambda: base.where(
            own,
            Ticket.ticket_id.in_(select(topics.where(TicketTopic.customer_id == t).cte("c"))),
        ),
        "an unmapped table scoped": lambda: select(search.c.message_id).where(search.c.customer_id == t),
    }
    return bypasses, scoped


# What the refusal names: the unscoped element ("<table> AS <alias>" for an alias), or the raw SQL.
_BYPASSES = {
    "inside OR": "ticket",
    "inside NOT": "ticket",
    "inside CASE": "ticket",
    "unscoped second alias": "ticket AS other",
    "alias scoped by the other copy's column": "ticket AS other",
    "outer join's ON scoping its left side": "ticket",
    "unscoped IN subquery": "ticket_topic",
    "unscoped EXISTS": "ticket_topic",
    "unscoped scalar subquery in the columns": "ticket_topic",
    "unscoped CTE": "ticket_topic",
    "unscoped FROM subquery": "ticket_topic",
    "unscoped UNION member": "ticket_topic",
    "a literal tenant": "ticket",
    "a tenant parameter made unique": "ticket",
    "tenant compared by another column": "ticket",
    "an unmapped table with customer_id": "ticket_message_search",
    "raw SQL in FROM": "raw SQL in FROM",
    "raw SQL reading a table": "raw SQL that reads a table",
}
_SCOPED = sorted(_shapes()[1])


class TestStatementsBuiltOnce:
    """tenant_bound / read_bound: reads built once, the tenant a checked bound parameter."""

    def test_a_statement_that_leaves_a_tenant_table_unscoped_is_refused(self) -> None:
        from sqlalchemy import bindparam

        from deskpal.core.tenancy import tenant_bound
        from deskpal.tickets.models import Ticket, TicketTopic

        scoped = Ticket.customer_id == bindparam("tenant_id")
        tenant_bound(select(Ticket.ticket_id).where(scoped))  # fine
        with pytest.raises(TenantNotBound):
            tenant_bound(select(Ticket.ticket_id))
        with pytest.raises(TenantNotBound):  # a joined tenant table must be scoped as well
            joined = TicketTopic.ticket_id == Ticket.ticket_id
            tenant_bound(select(Ticket.ticket_id).join(TicketTopic, joined).where(scoped))
        with pytest.raises(TenantNotBound):  # a literal tenant is not the bound parameter
            tenant_bound(select(Ticket.ticket_id).where(Ticket.customer_id == 1))

    @pytest.mark.parametrize("shape", sorted(_BYPASSES))
    def test_each_unscoped_shape_is_refused_naming_what_is_unscoped(self, shape: str) -> None:
        """Issue 11.4: OR, NOT, CASE, a second alias and a literal passed the old check (a comparison
        anywhere in the tree, by table name); subqueries of every kind are checked on their own."""
        import re

        from deskpal.core.tenancy import tenant_bound

        assert set(_BYPASSES) == set(_shapes()[0])
        with pytest.raises(TenantNotBound, match=rf"\[['\"]{re.escape(_BYPASSES[shape])}['\": ]"):
            tenant_bound(_shapes()[0][shape]())

    @pytest.mark.parametrize("shape", _SCOPED)
    def test_each_scoped_shape_is_accepted(self, shape: str) -> None:
        from deskpal.core.tenancy import tenant_bound

        stmt = _shapes()[1][shape]()
        assert tenant_bound(stmt) is stmt

    async def test_a_checked_statement_extended_later_is_refused(self, app: object, tenant: Tenant) -> None:
        """Issue 11.4: the mark was an execution option, which .join() and .where() copy along."""
        from sqlalchemy import bindparam

        from deskpal.core.tenancy import read_bound, tenant_bound
        from deskpal.tickets.models import TicketTopic

        await _add_topic(app, tenant, "ours")
        checked = tenant_bound(select(Topic.name).where(Topic.customer_id == bindparam("tenant_id")))
        copies = {
            "join": checked.join(TicketTopic, TicketTopic.topic_id == Topic.topic_id),
            "where": checked.where(Topic.name == "ours"),
            "execution_options": checked.execution_options(yield_per=1),
            "limit": checked.limit(1),
        }
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert [r.name for r in await read_bound(db, checked)] == ["ours"]
            for name, copy in copies.items():
                with pytest.raises(TenantNotBound):
                    await read_bound(db, copy)
                assert copy is not checked, name

    async def test_read_bound_takes_the_tenant_from_the_session(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from sqlalchemy import bindparam

        from deskpal.core.tenancy import read_bound, tenant_bound

        await _add_topic(app, tenant, "ours")
        await _add_topic(app, other_tenant, "theirs")
        stmt = tenant_bound(select(Topic.name).where(Topic.customer_id == bindparam("tenant_id")))
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            # A caller's own tenant_id is overridden by the session's.
            rows = await read_bound(db, stmt, {"tenant_id": other_tenant.customer_id})
            assert [r.name for r in rows] == ["ours"]
            with pytest.raises(TenantNotBound):  # a statement that was not checked
                await read_bound(db, select(Topic.name).where(Topic.customer_id == bindparam("tenant_id")))
        async with transaction(db_of(app), write=False) as db:
            with pytest.raises(TenantNotBound):  # no tenant bound
                await read_bound(db, stmt)


class TestWritesWithoutTheUnitOfWork:
    async def test_insert_now_stamps_the_tenant_and_leaves_a_clean_persistent_object(
        self, app: object, tenant: Tenant
    ) -> None:
        from sqlalchemy import inspect

        from deskpal.core.tenancy import insert_now, update_now

        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            topic = Topic(name="billing")
            await insert_now(db, topic)
            state = inspect(topic)
            assert state.persistent and not db.dirty and not db.new
            assert topic.customer_id == tenant.customer_id and topic.topic_id
            assert await db.get(Topic, topic.topic_id) is topic  # in the identity map
            await update_now(db, topic, {"name": "invoices"})
            assert topic.name == "invoices" and not db.dirty
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert (await db.scalars(select(Topic.name))).all() == ["invoices"]

    async def test_insert_now_refuses_another_tenant_and_an_unbound_session(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from deskpal.core.tenancy import insert_now

        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            with pytest.raises(CrossTenantWrite):
                await insert_now(db, Topic(name="x", customer_id=other_tenant.customer_id))
        async with transaction(db_of(app)) as db:
            with pytest.raises(TenantNotBound):
                await insert_now(db, Topic(name="x"))

    async def test_update_now_refuses_an_object_of_another_tenant(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from deskpal.core.tenancy import update_now

        theirs = await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), customer_id=other_tenant.customer_id) as db:
            topic = await db.get(Topic, theirs)
            assert topic is not None
            db.info["customer_id"] = tenant.customer_id  # a programming error: the wrong tenant
            with pytest.raises(CrossTenantWrite):
                await update_now(db, topic, {"name": "changed"})
            assert topic.name == "theirs"
        async with transaction(db_of(app), write=False, customer_id=other_tenant.customer_id) as db:
            assert (await db.scalars(select(Topic.name))).all() == ["theirs"]

    async def test_update_now_that_matches_no_row_raises_and_leaves_the_object_as_it_was(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        """Issue 11.4: the row count was ignored, so a wrong-tenant UPDATE "succeeded" in memory."""
        from sqlalchemy.orm.attributes import set_committed_value
        from sqlalchemy.orm.exc import StaleDataError

        from deskpal.core.tenancy import update_now

        theirs = await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), customer_id=other_tenant.customer_id) as db:
            topic = await db.get(Topic, theirs)
            assert topic is not None
            # Wrong twice over: the session's tenant and what the object says of itself.
            db.info["customer_id"] = tenant.customer_id
            set_committed_value(topic, "customer_id", tenant.customer_id)
            with pytest.raises(StaleDataError, match="matched 0 rows"):
                await update_now(db, topic, {"name": "changed"})
            assert topic.name == "theirs"  # not changed in memory either
        async with transaction(db_of(app), write=False, customer_id=other_tenant.customer_id) as db:
            assert (await db.scalars(select(Topic.name))).all() == ["theirs"]

    async def test_update_now_of_a_row_deleted_meanwhile_raises(self, app: object, tenant: Tenant) -> None:
        from sqlalchemy.orm.exc import StaleDataError

        from deskpal.core.tenancy import update_now

        ours = await _add_topic(app, tenant, "ours")
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            topic = await db.get(Topic, ours)
            assert topic is not None
            await db.execute(delete(Topic).where(Topic.topic_id == ours))
            with pytest.raises(StaleDataError, match="matched 0 rows"):
                await update_now(db, topic, {"name": "changed"})
            assert topic.name == "ours"


class TestGetNow:
    async def test_loads_once_attached_and_clean_and_never_another_tenants_row(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from sqlalchemy import inspect

        from deskpal.core.tenancy import get_now

        ours = await _add_topic(app, tenant, "ours")
        theirs = await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            topic = await get_now(db, Topic, ours)
            assert topic is not None and topic.name == "ours"
            assert inspect(topic).persistent and not db.dirty
            assert await get_now(db, Topic, ours) is topic  # from the identity map
            assert await db.get(Topic, ours) is topic
            assert await get_now(db, Topic, theirs) is None
            topic.name = "renamed"  # an ordinary change, flushed at commit
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert (await db.scalars(select(Topic.name))).all() == ["renamed"]

    async def test_a_row_of_another_tenant_already_in_the_session_is_refused(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        """The identity map is read before the prebuilt read: it must not hand out a row that read
        could never return."""
        from deskpal.core.tenancy import CrossTenantRead, get_now

        theirs = await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), write=False, customer_id=other_tenant.customer_id) as db:
            loaded = await get_now(db, Topic, theirs)  # held: the identity map is weak
            assert loaded is not None
            db.info["customer_id"] = tenant.customer_id  # a programming error: the wrong tenant
            with pytest.raises(CrossTenantRead):
                await get_now(db, Topic, theirs)
            del db.info["customer_id"]
            with pytest.raises(TenantNotBound):
                await get_now(db, Topic, theirs)


class TestInsertsBuiltOnce:
    """tenant_insert / write_bound: prebuilt INSERTs run past the ORM hooks, stamped here."""

    @staticmethod
    def _insert(app: object) -> Any:
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return pg_insert if db_of(app).dialect == "postgresql" else sqlite_insert

    async def test_the_row_gets_the_sessions_tenant_whatever_the_caller_passes(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from deskpal.core.tenancy import tenant_insert, write_bound
        from deskpal.endusers.models import EndUser

        stmt = tenant_insert(self._insert(app)(EndUser).on_conflict_do_nothing())
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            values = {"uid": "ann", "customer_id": other_tenant.customer_id, "created_at": utcnow()}
            await write_bound(db, stmt, values)
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert (await db.scalars(select(EndUser.uid))).all() == ["ann"]
        async with transaction(db_of(app), write=False, customer_id=other_tenant.customer_id) as db:
            assert (await db.scalars(select(EndUser.uid))).all() == []
        async with transaction(db_of(app)) as db:
            with pytest.raises(TenantNotBound):  # no tenant bound
                await write_bound(db, stmt, {"uid": "bob", "created_at": utcnow()})

    async def test_unchecked_or_unsafe_inserts_are_refused(self, app: object, tenant: Tenant) -> None:
        from sqlalchemy import insert

        from deskpal.core.tenancy import tenant_insert, write_bound
        from deskpal.endusers.models import EndUser

        dialect_insert = self._insert(app)
        table: Any = EndUser.__table__
        with pytest.raises(TenantNotBound):  # DO UPDATE keyed by something else: another tenant's row
            tenant_insert(
                dialect_insert(table).on_conflict_do_update(
                    index_elements=["end_user_id"], set_={"name": "taken"}
                )
            )
        with pytest.raises(TenantNotBound):  # DO UPDATE moving the row to another tenant
            tenant_insert(
                dialect_insert(table).on_conflict_do_update(
                    index_elements=["customer_id", "uid"], set_={"customer_id": 1}
                )
            )
        with pytest.raises(TenantNotBound):  # values fixed in the statement, past the stamp
            tenant_insert(insert(table).values(uid="x", customer_id=1))
        with pytest.raises(TenantNotBound):  # INSERT ... SELECT
            tenant_insert(insert(table).from_select(["uid"], select(table.c.uid)))
        from deskpal.customers.models import Customer

        with pytest.raises(ValueError, match="not an INSERT into a tenant table"):
            tenant_insert(insert(Customer))
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            with pytest.raises(TenantNotBound):  # never checked
                await write_bound(db, insert(table), {"uid": "x", "created_at": utcnow()})
            checked = tenant_insert(dialect_insert(table).on_conflict_do_nothing())
            with pytest.raises(TenantNotBound):  # a copy made after the check
                await write_bound(db, checked.returning(table.c.end_user_id), {"uid": "x"})
