"""search: PostgreSQL's full-text index moves to a narrow table with prefix and recency terms

`ticket_message_search` (message id, ticket id, the message's tsvector) is kept current by a
trigger on ticket_message, in the writing transaction. Its GIN index (which keeps the name
ix_ticket_message_search_vector; the one on ticket_message is dropped) indexes every word, its
prefixes of 3 to 8 letters and recency buckets of message ids (2**15 to 2**24 ids), so that a
search is a few exact GIN lookups, newest window first, visiting ~25 narrow rows per heap page instead of ~8 wide ones
(deskpal.tickets.search._pg_matching). The generated column ticket_message.search_vector stays: the
trigger copies it. About 60 s per million messages, nearly all of it the index build. SQLite is
unchanged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"  # 0007: ticket counts (landed while this was written)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of deskpal.tickets.search's PostgreSQL DDL as of this revision.
_DDL = (
    "CREATE FUNCTION deskpal_search_terms(vector tsvector, message_id bigint) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL RESTRICTED STRICT AS $$ SELECT vector || array_to_tsvector(ARRAY(SELECT DISTINCT left(w.lexeme, n) FROM unnest(vector) AS w, generate_series(3, 8) AS n WHERE length(w.lexeme) > n) || ARRAY(SELECT '~' || b || ':' || (message_id >> b) FROM generate_series(15, 24) AS b)) $$",
    "CREATE FUNCTION deskpal_search_window(bits int, newest bigint) RETURNS tsquery LANGUAGE sql IMMUTABLE PARALLEL RESTRICTED STRICT AS $$ SELECT (quote_literal('~' || bits || ':' || (newest >> bits)) || ' | ' || quote_literal('~' || bits || ':' || ((newest >> bits) - 1)))::tsquery $$",
    "CREATE FUNCTION deskpal_search_bits(newest bigint, floor bigint, found bigint, wanted int) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL RESTRICTED STRICT AS $$ SELECT min(b) FROM generate_series(15, 24) AS b WHERE newest - (((newest >> b) - 1) << b) >= (newest - floor) * (1 + 1.25 * (wanted - found) / greatest(found, wanted / 16.0)) $$",
    "CREATE TABLE ticket_message_search (message_id bigint PRIMARY KEY, ticket_id bigint NOT NULL, search_vector tsvector NOT NULL)",
    "CREATE FUNCTION deskpal_ticket_message_search() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'INSERT' THEN INSERT INTO ticket_message_search (message_id, ticket_id, search_vector) VALUES (NEW.message_id, NEW.ticket_id, NEW.search_vector); ELSIF TG_OP = 'UPDATE' THEN UPDATE ticket_message_search SET message_id = NEW.message_id, ticket_id = NEW.ticket_id, search_vector = NEW.search_vector WHERE message_id = OLD.message_id; ELSE DELETE FROM ticket_message_search WHERE message_id = OLD.message_id; END IF; RETURN NULL; END $$",
    "CREATE TRIGGER ticket_message_search AFTER INSERT OR DELETE OR UPDATE OF message_id, ticket_id, subject, text_body ON ticket_message FOR EACH ROW EXECUTE FUNCTION deskpal_ticket_message_search()",
)
_BACKFILL = "INSERT INTO ticket_message_search (message_id, ticket_id, search_vector) SELECT message_id, ticket_id, search_vector FROM ticket_message ORDER BY message_id"
_INDEX = "CREATE INDEX ix_ticket_message_search_vector ON ticket_message_search USING gin (deskpal_search_terms(search_vector, message_id))"
_OLD_INDEX = "CREATE INDEX ix_ticket_message_search_vector ON ticket_message USING gin (search_vector)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The trigger first: it locks out writers of ticket_message until this transaction commits,
    # so no message is written between the copy and the trigger.
    for statement in _DDL:
        op.execute(statement)
    op.execute("DROP INDEX ix_ticket_message_search_vector")
    op.execute(_BACKFILL)
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    op.execute(_INDEX)
    op.execute("ANALYZE ticket_message_search")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER ticket_message_search ON ticket_message")
    op.execute("DROP FUNCTION deskpal_ticket_message_search()")
    op.execute("DROP TABLE ticket_message_search")
    op.execute("DROP FUNCTION deskpal_search_bits(bigint, bigint, bigint, int)")
    op.execute("DROP FUNCTION deskpal_search_window(int, bigint)")
    op.execute("DROP FUNCTION deskpal_search_terms(tsvector, bigint)")
    op.execute(_OLD_INDEX)
