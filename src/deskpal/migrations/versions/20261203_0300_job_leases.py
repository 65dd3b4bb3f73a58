"""jobs: idempotency and ordering keys

`idempotency_key`: a second enqueue of the same (customer, kind, key) returns the first job; a
unique index over the keyed jobs only makes that race-safe. `ordering_key`: jobs
of one customer sharing a key run one at a time in enqueue order; a partial index over the active
(queued or running) keyed jobs answers the claim's "is an earlier one still active?" probe.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-03 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of core/jobs.py's predicates as of this revision.
_ACTIVE_KEYED = "ordering_key IS NOT NULL AND status IN ('queued', 'running')"
_IDEMPOTENT = "idempotency_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_job_idempotency", ["customer_id", "kind", "idempotency_key"], unique=True)
        batch_op.create_index(
            "ix_job_ordering",
            ["customer_id", "ordering_key", "job_id"],
            unique=False,
            postgresql_where=sa.text(_ACTIVE_KEYED),
            sqlite_where=sa.text(_ACTIVE_KEYED),
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_ordering")
        batch_op.drop_index("ix_job_idempotency")
        batch_op.drop_column("ordering_key")
        batch_op.drop_column("idempotency_key")
