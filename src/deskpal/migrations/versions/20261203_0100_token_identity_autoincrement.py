"""token identity: a per-rep login-token key

customer_rep.token_key is in every login token and compared on each request; a random value per
existing rep. Tokens issued before this revision carry no key and are refused: their reps log in
again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 32 hex digits from the database's own strong random source, as deskpal.core.security.new_token_key.
_RANDOM_KEY = {
    "sqlite": "lower(hex(randomblob(16)))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
}


def _add_token_key() -> None:
    with op.batch_alter_table("customer_rep", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_key", sa.String(length=32), nullable=True))
    op.execute(f"UPDATE customer_rep SET token_key = {_RANDOM_KEY[op.get_bind().dialect.name]}")
    with op.batch_alter_table("customer_rep", schema=None) as batch_op:
        batch_op.alter_column("token_key", existing_type=sa.String(length=32), nullable=False)


def upgrade() -> None:
    _add_token_key()


def downgrade() -> None:
    with op.batch_alter_table("customer_rep", schema=None) as batch_op:
        batch_op.drop_column("token_key")
