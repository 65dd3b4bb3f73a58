"""The demo customer a first `deskpal serve` creates, so a new install can be tried at once."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError

from deskpal.channels.models import ChannelType
from deskpal.channels.schemas import ChannelCreateDTO
from deskpal.channels.service import create_channel
from deskpal.core.context import Ctx
from deskpal.core.db import Database, transaction
from deskpal.core.errors import Conflict
from deskpal.customers.service import count_customers, create_customer

DEMO_EMAIL = "admin@demo.deskpal.test"


async def ensure_demo_customer(db: Database) -> dict[str, Any] | None:
    """Credentials of a newly created demo customer; None when the database already has customers."""
    try:
        async with transaction(db) as session:
            if await count_customers(session) > 0:
                return None
            password = secrets.token_urlsafe(12)
            new = await create_customer(session, "Demo", admin_email=DEMO_EMAIL, admin_password=password)
            ctx = Ctx.system(session, new.customer.customer_id)
            await create_channel(ctx, ChannelCreateDTO(name="Support email", channel_type=ChannelType.EMAIL))
            await create_channel(
                ctx,
                ChannelCreateDTO(
                    name="Website chat", channel_type=ChannelType.CHAT, allowed_hostnames=["localhost"]
                ),
            )
            return {
                "customerID": new.customer.customer_id,
                "adminEmail": new.admin.email,
                "adminPassword": password,
                "apiKey": new.api_key,
            }
    except (IntegrityError, Conflict):
        # Two first starts on one empty PostgreSQL both saw no customer; the other one's demo won.
        return None
