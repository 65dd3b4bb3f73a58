"""email out: delivery state and open tracking on messages, escalation feedback, templates, suppressions

ticket_message gains the state of its send (delivery_status: queued, sending, sent, deferred,
failed, suppressed; the server's reply or error), its open-tracking token and counter, and the
escalation comment; ticket gains aiFeedbackComments (the comments its escalations left).
email_template holds each customer's header, footer and signature templates; email_suppression
the recipients who unsubscribed from a job ad.

On SQLite the ticket_message and ticket steps are native ALTER TABLE statements that do not copy
the tables (their FTS5 triggers and AUTOINCREMENT stay as they are; docs/architecture.md,
"Migrations").

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import deskpal.core.db

revision: str = "0015"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = deskpal.core.db.UTCDateTime()
_MESSAGE_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("delivery_status", sa.String(length=16), nullable=True),
    sa.Column("delivery_error", sa.Text(), nullable=True),
    sa.Column("delivery_response", sa.Text(), nullable=True),
    sa.Column("open_token", sa.String(length=64), nullable=True),
    sa.Column("open_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("escalation_comment", sa.Text(), nullable=True),
    sa.Column("escalated_at", _WHEN, nullable=True),
)
_OPEN_TOKEN = "ix_ticket_message_open_token"


def _customer() -> sa.Column[int]:
    return sa.Column(
        "customer_id", _ID, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    for column in _MESSAGE_COLUMNS:
        op.add_column("ticket_message", column)
    op.create_index(_OPEN_TOKEN, "ticket_message", ["open_token"], unique=True)
    op.add_column("ticket", sa.Column("ai_feedback_comments", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "email_template",
        sa.Column("email_template_id", _ID, primary_key=True),
        _customer(),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("footer", sa.Text(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=True),
        sa.UniqueConstraint("customer_id", "name", name="uq_email_template_customer_id_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_email_template_customer_id", "email_template", ["customer_id"])
    op.create_table(
        "email_suppression",
        sa.Column("email_suppression_id", _ID, primary_key=True),
        _customer(),
        sa.Column("job_ad_id", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("message_id", _ID, sa.ForeignKey("ticket_message.message_id", ondelete="SET NULL")),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.UniqueConstraint(
            "customer_id", "job_ad_id", "address", name="uq_email_suppression_customer_id_job_ad_id_address"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_email_suppression_customer_id", "email_suppression", ["customer_id"])
    op.create_index("ix_email_suppression_message_id", "email_suppression", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_email_suppression_message_id", table_name="email_suppression")
    op.drop_index("ix_email_suppression_customer_id", table_name="email_suppression")
    op.drop_table("email_suppression")
    op.drop_index("ix_email_template_customer_id", table_name="email_template")
    op.drop_table("email_template")
    op.drop_index(_OPEN_TOKEN, table_name="ticket_message")
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite's own DROP COLUMN (3.35+): a batch operation would copy the table and lose its triggers.
    for table, name in [("ticket", "ai_feedback_comments")] + [
        ("ticket_message", c.name) for c in _MESSAGE_COLUMNS
    ]:
        if sqlite:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
        else:
            op.drop_column(table, name)
