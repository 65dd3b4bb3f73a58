"""imap mailboxes: where each Email channel's IMAP folder stands, and who polls it

imap_mailbox holds, per channel and folder, the UIDVALIDITY and the last UID taken in, the backlog,
the poller's lease, when the next poll is due, and the failures in a row (the backoff), the last
error and the last poll that got through. Filled here for the Email channels that already have an
imapHost (due at once, from UID 0); later, saving a channel keeps its row current.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:00:00
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import deskpal.core.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = deskpal.core.db.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "imap_mailbox",
        sa.Column("imap_mailbox_id", _ID, primary_key=True),
        sa.Column(
            "customer_id", _ID, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("channel_id", _ID, sa.ForeignKey("channel.channel_id", ondelete="CASCADE"), nullable=False),
        sa.Column("folder", sa.String(length=200), nullable=False),
        sa.Column("account", sa.String(length=400), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("backlog", sa.Integer(), nullable=True),
        sa.Column("next_poll_at", _WHEN, nullable=True),
        sa.Column("lease_holder", sa.String(length=200), nullable=True),
        sa.Column("lease_until", _WHEN, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_fetch_at", _WHEN, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", _WHEN, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.UniqueConstraint("channel_id", "folder", name="uq_imap_mailbox_channel_id_folder"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_imap_mailbox_customer_id", "imap_mailbox", ["customer_id"])
    op.create_index("ix_imap_mailbox_channel_id", "imap_mailbox", ["channel_id"])
    op.create_index("ix_imap_mailbox_due", "imap_mailbox", ["next_poll_at"])
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT channel_id, customer_id, settings FROM channel WHERE channel_type = 'Email'")
    ).all()
    table = sa.table(
        "imap_mailbox",
        sa.column("customer_id", _ID),
        sa.column("channel_id", _ID),
        sa.column("folder", sa.String()),
        sa.column("last_uid", sa.BigInteger()),
        sa.column("next_poll_at", _WHEN),
        sa.column("failures", sa.Integer()),
        sa.column("created_at", _WHEN),
    )
    now = datetime.now(UTC)
    for channel_id, customer_id, settings in rows:
        stored: dict[str, Any] = settings if isinstance(settings, dict) else _json(settings)
        if not str(stored.get("imapHost") or "").strip():
            continue
        # `account` stays NULL: the first poll fills it in without starting over.
        bind.execute(
            table.insert().values(
                customer_id=customer_id,
                channel_id=channel_id,
                folder=str(stored.get("imapFolder") or "").strip() or "INBOX",
                last_uid=0,
                next_poll_at=now,
                failures=0,
                created_at=now,
            )
        )


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if value else {}
    return loaded if isinstance(loaded, dict) else {}


def downgrade() -> None:
    op.drop_index("ix_imap_mailbox_due", table_name="imap_mailbox")
    op.drop_index("ix_imap_mailbox_channel_id", table_name="imap_mailbox")
    op.drop_index("ix_imap_mailbox_customer_id", table_name="imap_mailbox")
    op.drop_table("imap_mailbox")
