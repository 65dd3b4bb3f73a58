"""search: FTS5 prefix indexes (3 to 8 letters) on SQLite; PostgreSQL is unchanged

Every search word is matched as a prefix; without prefix indexes FTS5 merges the doclists of every
word a prefix starts, which made common words 15-20x slower. The table is recreated with the
option and rebuilt from ticket_message (about 45 s per million messages); its triggers refer to it
by name and stay as they are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 05:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "subject, text_body, content='ticket_message', content_rowid='message_id', "
    "tokenize='unicode61 remove_diacritics 2'"
)


def _recreate(extra: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE ticket_message_fts")
    op.execute(f"CREATE VIRTUAL TABLE ticket_message_fts USING fts5({_COLUMNS}{extra})")
    op.execute("INSERT INTO ticket_message_fts(ticket_message_fts) VALUES('rebuild')")


def upgrade() -> None:
    _recreate(", prefix='3 4 5 6 7 8'")


def downgrade() -> None:
    _recreate("")
