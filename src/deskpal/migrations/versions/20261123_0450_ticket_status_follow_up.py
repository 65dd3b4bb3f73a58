"""tickets: status in the follow-up list index, so that counts of a status filter read no rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 04:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ["customer_id", "is_processed", "follow_up_date", "ticket_id"]


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_list_follow_up_date")
        batch_op.create_index("ix_ticket_list_follow_up_date", [*_OLD, "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_list_follow_up_date")
        batch_op.create_index("ix_ticket_list_follow_up_date", _OLD, unique=False)
