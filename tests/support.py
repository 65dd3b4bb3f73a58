"""Test helpers: tenants made through the services, job running, table cleanup."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import text

from deskpal.core.context import Ctx, Role
from deskpal.core.db import Database, transaction
from deskpal.core.worker import Worker
from deskpal.models import Base


async def truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    # DELETE, not TRUNCATE: on small tables PostgreSQL's TRUNCATE costs ~45x more.
    async with db.engine.begin() as conn:
        for name in tables:
            await conn.execute(text(f"DELETE FROM {name}"))


def db_of(app: object) -> Database:
    return app.state.db  # type: ignore[attr-defined, no-any-return]


@dataclass
class Tenant:
    """A customer made through the services: its admin, and an API key per role on demand."""

    app: object
    customer_id: int
    admin_rep_id: int
    admin_email: str
    admin_password: str
    api_key: str
    keys: dict[Role, str] = field(default_factory=dict)
    rep_ids: dict[Role, int] = field(default_factory=dict)
    # Each rep's login-token key when it was made (a token names it: core/security.py).
    token_keys: dict[int, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def key_for(self, role: Role) -> str:
        if role is Role.ADMIN:
            return self.api_key
        if role not in self.keys:
            from deskpal.auth.service import create_api_key
            from deskpal.customers.schemas import CustomerRepCreateDTO
            from deskpal.customers.service import create_rep

            async with transaction(db_of(self.app), customer_id=self.customer_id) as db:
                ctx = Ctx.system(db, self.customer_id)
                email = f"{role.value}-{uuid.uuid4().hex[:8]}@tenant{self.customer_id}.test"
                rep = await create_rep(
                    ctx,
                    CustomerRepCreateDTO(
                        name=f"{role.value} rep", email=email, password="pw-" + "x" * 10, role=role
                    ),
                )
                _, secret = await create_api_key(ctx, name="test", rep_id=rep.customer_rep_id)
            self.keys[role], self.rep_ids[role] = secret, rep.customer_rep_id
            self.token_keys[rep.customer_rep_id] = rep.token_key
        return self.keys[role]

    def login_token(self, rep_id: int | None = None, *, ttl_seconds: int = 600) -> str:
        """A login token as POST /api/Auth/login issues it, for the admin or a rep of key_for."""
        from deskpal.core.security import issue_jwt

        rep_id = rep_id or self.admin_rep_id
        token, _ = issue_jwt(
            self.app.state.settings.resolved_secret_key,  # type: ignore[attr-defined]
            rep_id=rep_id,
            customer_id=self.customer_id,
            token_key=self.token_keys[rep_id],
            ttl_seconds=ttl_seconds,
        )
        return token

    async def headers_for(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.key_for(role)}"}


async def make_tenant(app: object, name: str = "Acme") -> Tenant:
    from deskpal.customers.service import create_customer

    email = f"admin-{uuid.uuid4().hex[:8]}@{name.lower()}.test"
    password = "correct horse battery staple"
    async with transaction(db_of(app)) as db:
        new = await create_customer(db, name, admin_email=email, admin_password=password)
    tenant = Tenant(app, new.customer.customer_id, new.admin.customer_rep_id, email, password, new.api_key)
    tenant.token_keys[new.admin.customer_rep_id] = new.admin.token_key
    return tenant


async def run_jobs_until_idle(app: object, *, worker: Worker | None = None) -> int:
    """Run every due job to completion (including retries that fall due meanwhile)."""
    worker = worker or Worker(db_of(app), poll_seconds=0.01)
    return await worker.run_pending()
