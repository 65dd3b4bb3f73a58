"""token identity, ids never reused, authors kept: a per-rep login-token key; SQLite tables
AUTOINCREMENT; the names of a message's reps

customer_rep.token_key is in every login token and compared on each request; a random value per
existing rep. Tokens issued before this revision carry no key and are refused: their reps log in
again.

SQLite hands out the largest rowid + 1 after a delete unless a table is AUTOINCREMENT, so a deleted
ticket's, message's or link's id went to the next row. Every table with a generated id is rebuilt
as AUTOINCREMENT (SQLite cannot alter that in place): a copy with the same columns, constraints and
indexes, its rows copied with their ids, then renamed over the old one. The triggers on those
tables (full-text search, ticket counts) are dropped first and recreated from their own
sqlite_master text afterwards; the FTS5 table reads ticket_message by rowid (message_id), which the
copy keeps, so its index stays valid. sqlite_sequence then starts at the largest id in use,
counting ids other tables still hold without a foreign key. A top id deleted before this revision
is not known anywhere and can be handed out once more. PostgreSQL's sequences never go back and
are unchanged.

ticket_message.customer_rep_name and created_by_rep_name keep who wrote a message when the rep is
deleted (its ids are then nulled); filled here from the reps that still exist.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 01:00:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 32 hex digits from the database's own strong random source, as deskpal.core.security.new_token_key.
_RANDOM_KEY = {
    "sqlite": "lower(hex(randomblob(16)))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
}

# Frozen as of this revision: every table whose id the database generates (a single INTEGER
# primary key), with that id's column.
_GENERATED_IDS = {
    "customer": "customer_id",
    "customer_rep": "customer_rep_id",
    "channel": "channel_id",
    "custom_field_definition": "custom_field_definition_id",
    "end_user": "end_user_id",
    "job": "job_id",
    "topic": "topic_id",
    "api_key": "api_key_id",
    "ticket": "ticket_id",
    "ticket_message": "message_id",
    "ticket_message_topic": "ticket_message_topic_id",
    "ticket_message_attachment": "ticket_message_attachment_id",
    "ticket_count": "count_id",
}

# Ids other tables keep without a foreign key (so a delete does not clear them): the sequence
# starts above these too.
_HELD_ELSEWHERE = {
    "ticket_message": (("ticket", "last_end_user_message_id"),),
    "channel": (("ticket_count", "channel_id"),),
    "customer_rep": (("ticket_count", "customer_rep_id"),),
}


def _sqlite_foreign_keys_off() -> None:
    # With enforcement on, dropping the old table would first delete its rows, and ON DELETE
    # CASCADE would take every child row with them. Alembic's connection has it off (SQLite's
    # default); the pragma is a no-op inside a transaction, hence the check.
    bind = op.get_bind()
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0009 rebuilds tables and needs PRAGMA foreign_keys=OFF")


BatchChange = Callable[[BatchOperations], None]


def _sqlite_rebuild(*, autoincrement: bool, changes: dict[str, BatchChange]) -> None:
    """Every table of _GENERATED_IDS copied with AUTOINCREMENT on or off, and with `changes`."""
    bind = op.get_bind()
    _sqlite_foreign_keys_off()
    names = ", ".join(f"'{t}'" for t in _GENERATED_IDS)
    triggers = bind.exec_driver_sql(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({names})"
    ).all()
    # Dropped before any table: a trigger naming a table that is being swapped would make the
    # rename that ends each copy fail ("error in trigger ...: no such table").
    for name, _ in triggers:
        op.execute(f'DROP TRIGGER "{name}"')
    for table in _GENERATED_IDS:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ) as batch_op:
            if table in changes:
                changes[table](batch_op)
    for _, sql in triggers:
        op.execute(sql)
    if autoincrement:
        _seed_sequences()
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"foreign keys broken by the rebuild: {problems[:5]}")


def _seed_sequences() -> None:
    # Copying the rows with their ids already moved each sequence to its table's largest id.
    bind = op.get_bind()
    for table, column in _GENERATED_IDS.items():
        held = [(table, column), *_HELD_ELSEWHERE.get(table, ())]
        tops = bind.exec_driver_sql("SELECT " + ", ".join(f"(SELECT max({c}) FROM {t})" for t, c in held))
        top = max((value or 0 for value in tops.one()), default=0)
        op.execute(f"DELETE FROM sqlite_sequence WHERE name = '{table}'")
        if top > 0:
            op.execute(f"INSERT INTO sqlite_sequence (name, seq) VALUES ('{table}', {int(top)})")


_AUTHOR_NAMES = ("customer_rep_name", "created_by_rep_name")
# One statement, so that PostgreSQL writes each message row once.
_FILL_AUTHOR_NAMES = (
    "UPDATE ticket_message SET "
    "customer_rep_name = (SELECT name FROM customer_rep r WHERE r.customer_rep_id = "
    "ticket_message.customer_rep_id), "
    "created_by_rep_name = (SELECT name FROM customer_rep r WHERE r.customer_rep_id = "
    "ticket_message.created_by_rep_id) "
    "WHERE customer_rep_id IS NOT NULL OR created_by_rep_id IS NOT NULL"
)


def _token_key_not_null(batch_op: BatchOperations) -> None:
    batch_op.alter_column("token_key", existing_type=sa.String(length=32), nullable=False)


def _drop_token_key(batch_op: BatchOperations) -> None:
    batch_op.drop_column("token_key")


def _drop_author_names(batch_op: BatchOperations) -> None:
    for name in _AUTHOR_NAMES:
        batch_op.drop_column(name)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("customer_rep", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_key", sa.String(length=32), nullable=True))
    op.execute(f"UPDATE customer_rep SET token_key = {_RANDOM_KEY[dialect]}")
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        for name in _AUTHOR_NAMES:
            batch_op.add_column(sa.Column(name, sa.String(length=200), nullable=True))
    op.execute(_FILL_AUTHOR_NAMES)
    if dialect == "sqlite":
        _sqlite_rebuild(autoincrement=True, changes={"customer_rep": _token_key_not_null})
    else:
        op.alter_column("customer_rep", "token_key", existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        changes: dict[str, BatchChange] = {
            "customer_rep": _drop_token_key,
            "ticket_message": _drop_author_names,
        }
        _sqlite_rebuild(autoincrement=False, changes=changes)
    else:
        op.drop_column("customer_rep", "token_key")
        for name in _AUTHOR_NAMES:
            op.drop_column("ticket_message", name)
