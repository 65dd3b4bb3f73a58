"""search: PostgreSQL's narrow search table gets its tenant column, customer_id

`ticket_message_search` (migration 0008) had no customer_id: a search reached the tenant only through
its join to ticket, so the table could not be checked like every other tenant table
(core.tenancy.tenant_bound), and a search's windows were measured from the newest message of any
customer. Now each row carries its message's customer_id (NOT NULL, filled by the trigger as the other
columns are), and every SELECT of a search compares it with :tenant_id.

The table is rebuilt rather than altered: an UPDATE of every row would write each row and its GIN
entries a second time and leave half the table dead; copied again in id order (as 0008 did), a
window's rows stay together. The new column sits with the fixed-width ones, before the vector, so it
costs 8 bytes a row and no padding. A btree index (customer_id, message_id) gives a search its
tenant's newest and oldest message id (the window bounds) in two index probes. The GIN index is
unchanged: its rows are filtered by customer_id on the heap visit a window makes anyway (the vector
is read for ranking); a tenant term in the GIN index would only pay on databases where many
customers share words and id ranges, and costs a GIN posting list as long as the tenant's messages
(docs/tickets.md). Writers of ticket_message wait until this commits (the table lock below), so no
message is written between the copy and the new trigger. About as long as 0008: the GIN build
dominates (docs/performance.md). SQLite is unchanged (FTS5 is reached through ticket_message, which
is scoped).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"  # the lead re-chains at merge
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of deskpal.tickets.search's PostgreSQL DDL as of this revision.
_FUNCTION = "CREATE OR REPLACE FUNCTION deskpal_ticket_message_search() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'INSERT' THEN INSERT INTO ticket_message_search (message_id, ticket_id, customer_id, search_vector) VALUES (NEW.message_id, NEW.ticket_id, NEW.customer_id, NEW.search_vector); ELSIF TG_OP = 'UPDATE' THEN UPDATE ticket_message_search SET message_id = NEW.message_id, ticket_id = NEW.ticket_id, customer_id = NEW.customer_id, search_vector = NEW.search_vector WHERE message_id = OLD.message_id; ELSE DELETE FROM ticket_message_search WHERE message_id = OLD.message_id; END IF; RETURN NULL; END $$"
_TRIGGER = "CREATE TRIGGER ticket_message_search AFTER INSERT OR DELETE OR UPDATE OF message_id, ticket_id, customer_id, subject, text_body ON ticket_message FOR EACH ROW EXECUTE FUNCTION deskpal_ticket_message_search()"
_TABLE = "CREATE TABLE ticket_message_search (message_id bigint PRIMARY KEY, ticket_id bigint NOT NULL, customer_id bigint NOT NULL, search_vector tsvector NOT NULL)"
_BACKFILL = "INSERT INTO ticket_message_search (message_id, ticket_id, customer_id, search_vector) SELECT message_id, ticket_id, customer_id, search_vector FROM ticket_message ORDER BY message_id"
_INDEXES = (
    "CREATE INDEX ix_ticket_message_search_vector ON ticket_message_search USING gin (deskpal_search_terms(search_vector, message_id))",
    "CREATE INDEX ix_ticket_message_search_customer_id ON ticket_message_search (customer_id, message_id)",
)

# 0008's objects, for the downgrade.
_OLD_FUNCTION = "CREATE OR REPLACE FUNCTION deskpal_ticket_message_search() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'INSERT' THEN INSERT INTO ticket_message_search (message_id, ticket_id, search_vector) VALUES (NEW.message_id, NEW.ticket_id, NEW.search_vector); ELSIF TG_OP = 'UPDATE' THEN UPDATE ticket_message_search SET message_id = NEW.message_id, ticket_id = NEW.ticket_id, search_vector = NEW.search_vector WHERE message_id = OLD.message_id; ELSE DELETE FROM ticket_message_search WHERE message_id = OLD.message_id; END IF; RETURN NULL; END $$"
_OLD_TRIGGER = "CREATE TRIGGER ticket_message_search AFTER INSERT OR DELETE OR UPDATE OF message_id, ticket_id, subject, text_body ON ticket_message FOR EACH ROW EXECUTE FUNCTION deskpal_ticket_message_search()"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Writers of messages wait for this transaction: none is missed between the copy and the trigger.
    op.execute("LOCK TABLE ticket_message IN SHARE ROW EXCLUSIVE MODE")
    op.execute("DROP TABLE ticket_message_search")
    op.execute(_TABLE)
    op.execute(_FUNCTION)
    op.execute("DROP TRIGGER ticket_message_search ON ticket_message")
    op.execute(_TRIGGER)
    op.execute(_BACKFILL)
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for statement in _INDEXES:
        op.execute(statement)
    op.execute("ANALYZE ticket_message_search")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_ticket_message_search_customer_id")
    op.execute(_OLD_FUNCTION)
    op.execute("DROP TRIGGER ticket_message_search ON ticket_message")
    op.execute(_OLD_TRIGGER)
    op.execute("ALTER TABLE ticket_message_search DROP COLUMN customer_id")
