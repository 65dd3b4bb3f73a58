"""inbound mail: every mail received, recorded before parsing; threading, auto-reply and bounce columns

inbound_mail holds each mail that came in (IMAP, the raw-mail endpoint, an import): its raw bytes'
storage key, size and sha256, the Message-ID its header names, where it stands (pending, stored,
duplicate, failed), what it is (message, bounce, autoreply, report) and what it became. An original
is unique per customer, channel and dedupe key (the Message-ID's hash, or the bytes' hash when it
has none): a partial unique index over the rows that are not duplicates, so that a second arrival
gets its own row pointing at the first.

ticket_message gains threading_reason, is_auto_reply, reply_to_address, bounce_status and
bounce_diagnostic. On SQLite these are native ALTER TABLE statements that do not copy the table
(its FTS5 triggers and AUTOINCREMENT stay as they are; docs/architecture.md, "Migrations").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import deskpal.core.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = deskpal.core.db.UTCDateTime()
_MESSAGE_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("threading_reason", sa.Text(), nullable=True),
    sa.Column("is_auto_reply", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("reply_to_address", sa.Text(), nullable=True),
    sa.Column("bounce_status", sa.String(length=32), nullable=True),
    sa.Column("bounce_diagnostic", sa.Text(), nullable=True),
)
_ORIGINALS = "duplicate_of IS NULL"
_INDEXES = (
    ("ix_inbound_mail_customer_id", ["customer_id"]),
    ("ix_inbound_mail_channel_id", ["channel_id"]),
    ("ix_inbound_mail_message_id", ["message_id"]),
    ("ix_inbound_mail_ticket_id", ["ticket_id"]),
    ("ix_inbound_mail_duplicate_of", ["duplicate_of"]),
    ("ix_inbound_mail_customer_id_status", ["customer_id", "status", "inbound_mail_id"]),
)


def upgrade() -> None:
    for column in _MESSAGE_COLUMNS:
        op.add_column("ticket_message", column)
    op.create_table(
        "inbound_mail",
        sa.Column("inbound_mail_id", _ID, primary_key=True),
        sa.Column(
            "customer_id", _ID, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("channel_id", _ID, sa.ForeignKey("channel.channel_id", ondelete="SET NULL")),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("header_message_id", sa.String(length=998), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("from_address", sa.String(length=320), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=80), nullable=False),
        sa.Column("size", _ID, nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", _WHEN, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("message_id", _ID, sa.ForeignKey("ticket_message.message_id", ondelete="SET NULL")),
        sa.Column("ticket_id", _ID, sa.ForeignKey("ticket.ticket_id", ondelete="SET NULL")),
        sa.Column("duplicate_of", _ID, sa.ForeignKey("inbound_mail.inbound_mail_id", ondelete="CASCADE")),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", _WHEN, nullable=True),
        sqlite_autoincrement=True,
    )
    for name, columns in _INDEXES:
        op.create_index(name, "inbound_mail", columns)
    op.create_index(
        "uq_inbound_mail_original",
        "inbound_mail",
        ["customer_id", "channel_id", "dedupe_key"],
        unique=True,
        postgresql_where=sa.text(_ORIGINALS),
        sqlite_where=sa.text(_ORIGINALS),
    )


def downgrade() -> None:
    op.drop_index("uq_inbound_mail_original", table_name="inbound_mail")
    for name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name="inbound_mail")
    op.drop_table("inbound_mail")
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite's own DROP COLUMN (3.35+): a batch operation would copy the table and lose its triggers.
    for column in reversed(_MESSAGE_COLUMNS):
        if sqlite:
            op.execute(f"ALTER TABLE ticket_message DROP COLUMN {column.name}")
        else:
            op.drop_column("ticket_message", column.name)
