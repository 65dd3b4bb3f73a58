"""Upkeep that works across every customer at once, said out loud.

Domain code reaches the database through the tenant-scoped session only; raw SQL, raw connections
and `all_tenants` reads belong to core/ and auth/. The exception is upkeep of a domain's own derived
tables that is by nature about every customer (folding `ticket_count`'s rows, rebuilding it from the
tickets): such a function opens its transaction with `all_tenants_maintenance`, and only inside that
block may it use raw SQL. `tests/core/test_cross_tenant_queries.py` reads the code: it allows raw
SQL outside core/ and auth/ only inside this block, and the block only in the functions it lists as
reviewed, so that a new one is a visible, reviewed change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from deskpal.core.db import Database, transaction

MAINTENANCE = "all_tenants_maintenance"  # session.info key: what the open block is for


@asynccontextmanager
async def all_tenants_maintenance(db: Database, purpose: str) -> AsyncIterator[AsyncSession]:
    """A write transaction with no tenant bound, for cross-tenant upkeep; `purpose` says why it
    must cross tenants (kept in session.info, for whoever inspects the session)."""
    if not purpose.strip():
        raise ValueError("all_tenants_maintenance needs a purpose")
    async with transaction(db) as session:
        session.info[MAINTENANCE] = purpose
        yield session
