"""messages: external_id, unique per customer and channel; an index on message_identifier

A channel's network may deliver one message twice (a webhook retried, a mailbox read again); the
network's own id of the message, unique per channel, makes intake store it once. Replies thread by
the message they answer, found by its identifier.

On SQLite both steps are native ALTER TABLE statements that do not copy the table (its FTS5
triggers and AUTOINCREMENT stay as they are; docs/architecture.md, "Migrations").

Revision ID: 0010
Revises: 0014
Create Date: 2026-12-03 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNIQUE = "uq_ticket_message_customer_id_channel_id_external_id"
_IDENTIFIER = "ix_ticket_message_customer_id_message_identifier"


def upgrade() -> None:
    op.add_column("ticket_message", sa.Column("external_id", sa.String(length=998), nullable=True))
    op.create_index(_UNIQUE, "ticket_message", ["customer_id", "channel_id", "external_id"], unique=True)
    op.create_index(_IDENTIFIER, "ticket_message", ["customer_id", "message_identifier"], unique=False)


def downgrade() -> None:
    op.drop_index(_IDENTIFIER, table_name="ticket_message")
    op.drop_index(_UNIQUE, table_name="ticket_message")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's own DROP COLUMN (3.35+): a batch operation would copy the table and lose its
        # triggers.
        op.execute("ALTER TABLE ticket_message DROP COLUMN external_id")
    else:
        op.drop_column("ticket_message", "external_id")
