"""tickets: ticket_count, the list's totals without reading tickets

A ticket list's exact totalCount read one index entry per matching ticket (about 2 ms of SQLite and
PostgreSQL CPU for 34,000 open tickets, the biggest part of a list page). ticket_count holds signed
counts per bucket (the columns a list filters on); triggers on ticket append +1 / -1 rows in the
writing transaction, and the worker folds each bucket's rows into one (tickets/counts.py).

Rows are appended, never updated, so concurrent writers never wait for each other on a counter
row nor deadlock over two of them. A ticket deleted because its customer is being deleted appends
nothing: its customer's counts go with the customer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BUCKET = "is_processed, status, channel_id, customer_rep_id, channel_type, is_spam, is_closed"
_COLUMNS = f"customer_id, {_BUCKET}, n"
_WATCHED = (
    "customer_id",
    "is_processed",
    "status",
    "channel_id",
    "customer_rep_id",
    "channel_type",
    "is_spam",
    "is_closed",
)


def _values(row: str, n: int) -> str:
    return (
        f"{row}.customer_id, {row}.is_processed, {row}.status, coalesce({row}.channel_id, 0), "
        f"coalesce({row}.customer_rep_id, 0), {row}.channel_type, {row}.is_spam, {row}.is_closed, {n}"
    )


def _append(row: str, n: int) -> str:
    return f"INSERT INTO ticket_count ({_COLUMNS}) VALUES ({_values(row, n)});"


def _customer_exists(row: str) -> str:
    return f"EXISTS (SELECT 1 FROM customer WHERE customer.customer_id = {row}.customer_id)"


_SQLITE = (
    f"CREATE TRIGGER ticket_count_ai AFTER INSERT ON ticket BEGIN {_append('new', 1)} END",
    f"CREATE TRIGGER ticket_count_ad AFTER DELETE ON ticket WHEN {_customer_exists('old')} "
    f"BEGIN {_append('old', -1)} END",
    f"CREATE TRIGGER ticket_count_au AFTER UPDATE OF {', '.join(_WATCHED)} ON ticket WHEN "
    + " OR ".join(f"old.{c} IS NOT new.{c}" for c in _WATCHED)
    + f" BEGIN {_append('old', -1)} {_append('new', 1)} END",
)

_POSTGRESQL = (
    f"""
    CREATE FUNCTION deskpal_ticket_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
            IF TG_OP = 'UPDATE' OR {_customer_exists("OLD")} THEN
                {_append("OLD", -1)}
            END IF;
        END IF;
        IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
            {_append("NEW", 1)}
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER ticket_count_insert_delete AFTER INSERT OR DELETE ON ticket "
    "FOR EACH ROW EXECUTE FUNCTION deskpal_ticket_count()",
    f"CREATE TRIGGER ticket_count_update AFTER UPDATE OF {', '.join(_WATCHED)} ON ticket FOR EACH ROW "
    f"WHEN (({', '.join(f'OLD.{c}' for c in _WATCHED)}) IS DISTINCT FROM "
    f"({', '.join(f'NEW.{c}' for c in _WATCHED)})) EXECUTE FUNCTION deskpal_ticket_count()",
)


def upgrade() -> None:
    op.create_table(
        "ticket_count",
        sa.Column("count_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("is_processed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("customer_rep_id", _ID, nullable=False),
        sa.Column("channel_type", sa.String(20), nullable=False),
        sa.Column("is_spam", sa.Boolean(), nullable=False),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column(
            "customer_id", _ID, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False
        ),
    )
    op.create_index("ix_ticket_count_customer_id", "ticket_count", ["customer_id"])
    op.create_index("ix_ticket_count_bucket", "ticket_count", ["customer_id", "is_processed", "status"])
    op.execute(
        f"INSERT INTO ticket_count ({_COLUMNS}) "
        f"SELECT customer_id, is_processed, status, coalesce(channel_id, 0), "
        f"coalesce(customer_rep_id, 0), channel_type, is_spam, is_closed, count(*) "
        f"FROM ticket GROUP BY customer_id, {_BUCKET}"
    )
    for statement in _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ticket_count_update ON ticket")
        op.execute("DROP TRIGGER ticket_count_insert_delete ON ticket")
        op.execute("DROP FUNCTION deskpal_ticket_count()")
    else:
        for name in ("ticket_count_ai", "ticket_count_ad", "ticket_count_au"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("ticket_count")
