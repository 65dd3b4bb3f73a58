"""The tenant scoping hooks: no query or write can reach another customer's rows."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update

from deskpal.core.context import Ctx
from deskpal.core.db import transaction
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

    async def test_update_now_reaches_only_the_bound_tenants_row(
        self, app: object, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        from deskpal.core.tenancy import update_now

        theirs = await _add_topic(app, other_tenant, "theirs")
        async with transaction(db_of(app), customer_id=other_tenant.customer_id) as db:
            topic = await db.get(Topic, theirs)
            assert topic is not None
            db.info["customer_id"] = tenant.customer_id  # a programming error: the wrong tenant
            await update_now(db, topic, {"name": "changed"})
        async with transaction(db_of(app), write=False, customer_id=other_tenant.customer_id) as db:
            assert (await db.scalars(select(Topic.name))).all() == ["theirs"]


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
