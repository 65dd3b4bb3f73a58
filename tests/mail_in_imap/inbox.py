"""What the inbound pipeline recorded, as the tests read it: the InboundMail rows of a customer and
the raw bytes they keep. Every committed arrival is a row: the first of a mail an original, every
later one a `duplicate` pointing at it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import select

from deskpal.core.db import transaction
from deskpal.email.inbound.models import InboundMail, InboundStatus
from deskpal.storage import storage_for
from tests.support import Tenant, db_of


def message_id_of(raw: bytes) -> str:
    found = BytesHeaderParser().parsebytes(raw).get("Message-ID")
    assert found, "the tests' mails all have a Message-ID"
    return str(found).strip()


@dataclass
class Inbox:
    app: Any
    tenant: Tenant

    async def rows(self) -> list[InboundMail]:
        async with transaction(db_of(self.app), write=False, customer_id=self.tenant.customer_id) as db:
            return list((await db.scalars(select(InboundMail).order_by(InboundMail.inbound_mail_id))).all())

    async def originals(self) -> Counter[str]:
        """Message-ID -> how often it was stored as new (once each, or the dedupe failed)."""
        return Counter(
            r.header_message_id or r.sha256 for r in await self.rows() if r.status != InboundStatus.DUPLICATE
        )

    async def arrivals(self) -> Counter[str]:
        """Message-ID -> how often it arrived and was recorded, duplicates included."""
        return Counter(r.header_message_id or r.sha256 for r in await self.rows())

    async def raws(self) -> list[bytes]:
        """The originals' bytes as stored, in the order they came in."""
        storage = storage_for(self.app.state.storage.locator)
        rows = [r for r in await self.rows() if r.status != InboundStatus.DUPLICATE]
        return [await storage.read_all(r.storage_key) for r in rows]
