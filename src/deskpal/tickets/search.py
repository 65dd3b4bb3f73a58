"""Full-text search over ticket-message text: SQLite FTS5 and PostgreSQL tsvector + GIN.

Both indexes cover a message's subject and text body and are kept current inside the writing
transaction by the database itself (SQLite: triggers feeding an external-content FTS5 table;
PostgreSQL: a trigger copying the stored generated tsvector column `ticket_message.search_vector`
into the narrow table `ticket_message_search`, whose GIN index holds every word, its prefixes of 3
to 8 letters and a recency bucket; see `_pg_matching`). The objects are created by migrations and
are not part of the ORM metadata; the Alembic env leaves them out of drift checks.

The narrow table carries the message's customer_id (migration 0014), and every SELECT of a search
compares it with :tenant_id, so core.tenancy.tenant_bound checks the table as it checks a mapped
tenant table (it counts an unmapped table with a customer_id column as one).

Accents are folded on both sides: SQLite's unicode61 tokenizer removes diacritics itself, and on
PostgreSQL the indexed text goes through deskpal_fold(), a translate() over the Latin letters with
diacritics (no `unaccent` extension needed), which `fold()` below mirrors for the query.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.sql import column, table

from deskpal.core.tenancy import TENANT_PARAM
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket

FTS_TABLE = "ticket_message_fts"  # SQLite
FTS_COLUMN = "search_vector"  # PostgreSQL: the generated column, copied into SEARCH_TABLE
SEARCH_TABLE = "ticket_message_search"  # PostgreSQL
# The GIN index kept its name when it moved from ticket_message to SEARCH_TABLE (migration 0007).
SEARCH_INDEX = "ix_ticket_message_search_vector"
# The tenant's messages in id order (migration 0014): a search's bounds, and its rows per window.
SEARCH_TENANT_INDEX = "ix_ticket_message_search_customer_id"
MAX_TERMS = 8
# A search ranks the newest this many matching messages (in the tickets the other filters select).
CANDIDATES = 500
# Prefix indexes for words of 3 to 8 letters: every search word is a prefix, and without them FTS5
# merges the doclists of every word the prefix starts (15-20x slower for common words, measured on
# 1M messages; docs/performance.md). Longer words fall back to that merge.
FTS_PREFIXES = "3 4 5 6 7 8"
# PostgreSQL's GIN index holds the same prefixes as whole terms: a prefix query (`word:*`) makes GIN
# read and merge the posting lists of every term the prefix starts (20-50 ms for a common word on
# 1M messages) where a whole term is a lookup that the other words' lists can skip through.
PG_PREFIX_MIN, PG_PREFIX_MAX = 3, 8
# Recency buckets, also terms of the GIN index: for each size from 2**15 to 2**24 message ids, the
# term '~<bits>:<message_id >> bits>'. Two neighbouring buckets of one size (the newest and the one
# before) are a window: one GIN lookup of the words AND two bucket terms reads only the matches in
# it. A search reads the smallest window first; then, from the rate of matches found so far, the
# smallest window expected to hold 1.25 times the candidates still missing; once more; then every
# older message (see `_pg_matching`).
BUCKET_BITS = (15, 24)
ADAPTIVE_WINDOWS = 2  # after the first one, before the last (all older messages)
_INSERT = (
    f"INSERT INTO {FTS_TABLE}(rowid, subject, text_body) VALUES (new.message_id, new.subject, new.text_body);"
)
_TOKEN = re.compile(r"[^\W_]+")
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")


@cache
def fold_table() -> tuple[str, str]:
    """(from, to) for translate(): each Latin letter with diacritics and its bare ASCII letter."""
    src, dst = [], []
    for code in range(0x00C0, 0x0250):
        ch = chr(code)
        base = unicodedata.normalize("NFKD", ch)[:1]
        if base != ch and base.isascii() and base.isalpha():
            src.append(ch)
            dst.append(base.lower())
    return "".join(src), "".join(dst)


@cache
def _translation() -> dict[int, str]:
    src, dst = fold_table()
    return {ord(a): b for a, b in zip(src, dst, strict=True)}


def fold(value: str) -> str:
    return value.translate(_translation()).lower()


def terms(query: str) -> list[str]:
    """The words of a search, folded; punctuation and operators are not syntax, only separators."""
    return _TOKEN.findall(fold(query))[:MAX_TERMS]


def matching_tickets(
    dialect: str, where: list[ColumnElement[bool]], *, long_words: bool = False, limit: int | None = None
) -> tuple[Select[Any], bool]:
    """Ticket ids with a relevance score: the tickets of the newest `limit` messages that match all
    words (each as a prefix) among the tickets `where` selects, each scored by its best message.

    Returns the statement (columns ticket_id, score) and whether a higher score is better. The
    words are bound when it runs (`search_params`), so a statement serves every search of the same
    shape (`long_words`: whether a word is longer than the longest indexed prefix); `where` and the
    statement are scoped by the bound :tenant_id (core.tenancy.tenant_bound).

    Ranking every match costs time in proportion to the matches, and two common words match tens
    of thousands of messages; so the engine walks the matches newest first (FTS5 in rowid order;
    PostgreSQL window by window, `_pg_matching`), stops after `limit` that pass the ticket filters
    and scores only those. A search that matches fewer messages than that is exact; a broader one
    is ranked among its newest matches.
    """
    limit = CANDIDATES if limit is None else limit
    if dialect == "postgresql":
        return _pg_matching(where, limit, long_words), True
    fts = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
    # bm25 (lower is better) is computed only for the rows the MATCH query returns.
    newest = (
        select(TicketMessage.ticket_id, func.bm25(literal_column(FTS_TABLE)).label("score"))
        .select_from(fts)
        .join(TicketMessage, TicketMessage.message_id == fts.c.rowid)
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(
            fts.c[FTS_TABLE].op("MATCH")(bindparam("search_match", type_=String())),
            TicketMessage.customer_id == bindparam(TENANT_PARAM),
            *where,
        )
        .order_by(fts.c.rowid.desc())
        .limit(limit)
        .subquery("newest")
    )
    return select(newest.c.ticket_id, func.min(newest.c.score).label("score")).group_by(
        newest.c.ticket_id
    ), False


def has_long_words(words: list[str]) -> bool:
    return any(len(w) > PG_PREFIX_MAX for w in words)


def search_params(dialect: str, words: list[str]) -> dict[str, str]:
    """The words, as the statement of matching_tickets takes them."""
    if dialect == "postgresql":
        return {
            "search_index_query": _index_query(words),
            "search_prefix_query": " & ".join(f"{w}:*" for w in words),
        }
    return {"search_match": " ".join(f'"{w}"*' for w in words)}


def _index_query(words: list[str]) -> str:
    """The words as GIN index terms: a word of 3 to 8 letters is a whole term (the index holds every
    word's prefixes of those lengths, so the word matches any word it starts); a longer word is
    looked up by its first 8 letters and checked whole on the rows found (`_pg_matching`); a
    shorter one stays a prefix query, which GIN answers by merging the lists of every term it
    starts."""
    return " & ".join(w if PG_PREFIX_MIN <= len(w) <= PG_PREFIX_MAX else f"{w}:*" for w in words)


def _pg_matching(where: list[ColumnElement[bool]], limit: int, long_words: bool) -> Select[Any]:
    """The newest `limit` matches, found window by window, newest first, each window a GIN lookup
    restricted to its recency buckets (so only the matches inside it are read from the heap); a
    window runs only while the windows before it found fewer than `limit`, the last one covers
    every older message. One statement: each window is a CTE gated by a one-time filter on the
    counts before it, so PostgreSQL skips the windows it does not need.

    A bitmap of every match costs one heap visit per match (tens of thousands for two common words)
    and walking the primary key tests every row; a window costs a GIN lookup and its own matches."""
    msg = table(
        SEARCH_TABLE,
        column("message_id", BigInteger),
        column("ticket_id", BigInteger),
        column("customer_id", BigInteger),
        column("search_vector", TSVECTOR),
    )
    ids = msg.alias("ids")
    # The tenant's own newest and oldest message (two ends of the (customer_id, message_id) index):
    # its windows start at its newest message, wherever the other customers' ids are.
    bounds = (
        select(func.max(ids.c.message_id).label("newest"), func.min(ids.c.message_id).label("oldest"))
        .where(ids.c.customer_id == bindparam(TENANT_PARAM))
        .cte("bounds")
    )
    newest_id = select(bounds.c.newest).scalar_subquery()
    index_terms = func.deskpal_search_terms(msg.c.search_vector, msg.c.message_id, type_=TSVECTOR)
    word_query = func.to_tsquery(_SIMPLE, bindparam("search_index_query", type_=String()), type_=TSQUERY)
    prefix_query = func.to_tsquery(_SIMPLE, bindparam("search_prefix_query", type_=String()), type_=TSQUERY)

    windows: list[CTE] = []
    # Each window's size (bits) and floor (its oldest id), computed once in a CTE of their own:
    # written inline, every window would repeat the expressions of all the windows before it.
    steps: list[CTE] = []
    for number in range(ADAPTIVE_WINDOWS + 2):
        found = sum((_count(w) for w in windows[1:]), _count(windows[0])) if windows else None
        if number == 0:
            # An int written into the SQL (not a parameter): there is no bigint >> bigint.
            first: ColumnElement[Any] = literal(BUCKET_BITS[0], Integer(), literal_execute=True)
            step = select(first.label("bits"), _floor(bounds.c.newest, first).label("floor"))
            steps.append(step.select_from(bounds).cte("step1"))
        elif number <= ADAPTIVE_WINDOWS:
            assert found is not None
            before = steps[-1]
            size = (
                select(
                    func.deskpal_search_bits(bounds.c.newest, before.c.floor, found, limit).label("bits"),
                    bounds.c.newest,
                    before.c.floor,
                )
                .select_from(bounds.join(before, true()))  # one row each
                .subquery()
            )
            # A window skipped (no size is big enough: bits is NULL) leaves the floor where it was.
            floor = func.coalesce(_floor(size.c.newest, size.c.bits), size.c.floor)
            steps.append(select(size.c.bits, floor.label("floor")).cte(f"step{number + 1}"))
        match: list[ColumnElement[bool]] = []
        if number < len(steps):
            bits = select(steps[number].c.bits).scalar_subquery()
            buckets = func.deskpal_search_window(bits, newest_id, type_=TSQUERY)
            match.append(index_terms.op("@@")(word_query.op("&&", return_type=TSQUERY)(buckets)))
        else:
            match.append(index_terms.op("@@")(word_query))
        gate: list[ColumnElement[bool]] = []
        if found is not None:
            # A bigger window contains the smaller ones: their matches are read again, not kept
            # twice. `+ 0`: a filter on the rows the GIN lookup found, not a bitmap of older ids.
            floor_before = select(steps[number - 1].c.floor).scalar_subquery()
            match.append(msg.c.message_id + 0 < floor_before)
            # Nothing older to read once a window reached back to the first message.
            gate.extend((found < limit, floor_before > select(bounds.c.oldest).scalar_subquery()))
        if long_words:
            match.append(msg.c.search_vector.op("@@")(prefix_query))
        # The ticket filters per match, by primary key (LATERAL ... LIMIT 1 is never flattened
        # into a join): the planner cannot estimate a window's few matches and would otherwise
        # hash every ticket of the customer that passes the filters (~20 ms at 100,000 tickets).
        allowed = (
            select(literal_column("1").label("ok"))
            .select_from(Ticket)
            .where(Ticket.ticket_id == msg.c.ticket_id, *where)
            .limit(1)
            .lateral(f"allowed{number + 1}")
        )
        windows.append(
            select(msg.c.message_id, msg.c.ticket_id, msg.c.search_vector)
            .select_from(msg)
            .join(allowed, true())
            .where(msg.c.customer_id == bindparam(TENANT_PARAM), *gate, *match)
            .order_by(msg.c.message_id.desc())
            .limit(limit)
            .cte(f"window{number + 1}")
        )
    matches = union_all(*(select(w.c.message_id, w.c.ticket_id, w.c.search_vector) for w in windows))
    every = matches.subquery()
    # The CTEs go inside this subquery (a statement that starts with SELECT, like the others).
    newest = (
        select(every)
        .add_cte(bounds, *steps, *windows, nest_here=True)
        .order_by(every.c.message_id.desc())
        .limit(limit)
        .subquery("newest")
    )
    # Ranked as before the index moved: the message's own vector against the words as prefixes.
    best: ColumnElement[Any] = func.max(func.ts_rank(newest.c.search_vector, prefix_query))
    return select(newest.c.ticket_id, best.label("score")).group_by(newest.c.ticket_id)


def _floor(newest: ColumnElement[Any], bits: ColumnElement[Any]) -> ColumnElement[Any]:
    """The oldest id of the window of 2**bits-id buckets: the start of the bucket before the newest."""
    return ((newest.op(">>")(bits)) - 1).op("<<")(bits)


def _count(window: CTE) -> ColumnElement[int]:
    return select(func.count()).select_from(window).scalar_subquery()


# The current DDL (the migrations carry their own copies, so that edits here cannot rewrite history:
# 0002 created the table, 0006 added the prefix indexes).
SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(subject, text_body, content='ticket_message', "
    f"content_rowid='message_id', tokenize='unicode61 remove_diacritics 2', prefix='{FTS_PREFIXES}')",
    f"CREATE TRIGGER {FTS_TABLE}_ai AFTER INSERT ON ticket_message BEGIN {_INSERT} END",
    f"CREATE TRIGGER {FTS_TABLE}_ad AFTER DELETE ON ticket_message BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, subject, text_body) "
    "VALUES ('delete', old.message_id, old.subject, old.text_body); END",
    f"CREATE TRIGGER {FTS_TABLE}_au AFTER UPDATE OF subject, text_body ON ticket_message BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, subject, text_body) "
    "VALUES ('delete', old.message_id, old.subject, old.text_body); "
    f"{_INSERT} END",
)

# PostgreSQL's current objects (migration 0008 created them, 0014 added the tenant column; each
# carries its own copy). The trigger
# copies the generated column rather than computing the vector again. The functions are PARALLEL
# RESTRICTED so that no search plans parallel workers: a window reads a few hundred rows, and
# starting workers costs more (3-5 ms) than that.
PG_DDL = (
    "CREATE FUNCTION deskpal_search_terms(vector tsvector, message_id bigint) RETURNS tsvector "
    "LANGUAGE sql IMMUTABLE PARALLEL RESTRICTED STRICT AS $$ SELECT vector || array_to_tsvector(ARRAY("
    "SELECT DISTINCT left(w.lexeme, n) FROM unnest(vector) AS w, "
    f"generate_series({PG_PREFIX_MIN}, {PG_PREFIX_MAX}) AS n WHERE length(w.lexeme) > n) || ARRAY("
    "SELECT '~' || b || ':' || (message_id >> b) "
    f"FROM generate_series({BUCKET_BITS[0]}, {BUCKET_BITS[1]}) AS b)) $$",
    "CREATE FUNCTION deskpal_search_window(bits int, newest bigint) RETURNS tsquery "
    "LANGUAGE sql IMMUTABLE PARALLEL RESTRICTED STRICT AS $$ SELECT (quote_literal("
    "'~' || bits || ':' || (newest >> bits)) || ' | ' || quote_literal('~' || bits || ':' || "
    "((newest >> bits) - 1)))::tsquery $$",
    # The smallest window reaching back far enough to hold, at the rate of the windows read so far
    # (down to `floor`, `found` matches), 1.25 times the `wanted - found` matches missing; none
    # found: 20 times as far. NULL when even the biggest window is too small.
    "CREATE FUNCTION deskpal_search_bits(newest bigint, floor bigint, found bigint, wanted int) "
    "RETURNS int LANGUAGE sql IMMUTABLE PARALLEL RESTRICTED STRICT AS $$ SELECT min(b) "
    f"FROM generate_series({BUCKET_BITS[0]}, {BUCKET_BITS[1]}) AS b "
    "WHERE newest - (((newest >> b) - 1) << b) >= (newest - floor) "
    "* (1 + 1.25 * (wanted - found) / greatest(found, wanted / 16.0)) $$",
    # The tenant column (migration 0014) sits with the fixed-width ones, before the vector.
    f"CREATE TABLE {SEARCH_TABLE} (message_id bigint PRIMARY KEY, ticket_id bigint NOT NULL, "
    "customer_id bigint NOT NULL, search_vector tsvector NOT NULL)",
    f"CREATE FUNCTION deskpal_{SEARCH_TABLE}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP = 'INSERT' THEN INSERT INTO {SEARCH_TABLE} (message_id, ticket_id, customer_id, "
    "search_vector) VALUES (NEW.message_id, NEW.ticket_id, NEW.customer_id, NEW.search_vector); "
    f"ELSIF TG_OP = 'UPDATE' THEN UPDATE {SEARCH_TABLE} SET message_id = NEW.message_id, "
    "ticket_id = NEW.ticket_id, customer_id = NEW.customer_id, search_vector = NEW.search_vector "
    "WHERE message_id = OLD.message_id; "
    f"ELSE DELETE FROM {SEARCH_TABLE} WHERE message_id = OLD.message_id; END IF; RETURN NULL; END $$",
    f"CREATE TRIGGER {SEARCH_TABLE} AFTER INSERT OR DELETE OR UPDATE OF message_id, ticket_id, "
    "customer_id, subject, text_body ON ticket_message FOR EACH ROW EXECUTE FUNCTION "
    f"deskpal_{SEARCH_TABLE}()",
)
# Filling the table from ticket_message (in id order, so that a window's rows sit together), and
# the index, built after the rows are in: much faster than growing it row by row.
PG_BACKFILL = (
    f"INSERT INTO {SEARCH_TABLE} (message_id, ticket_id, customer_id, search_vector) "
    "SELECT message_id, ticket_id, customer_id, search_vector FROM ticket_message ORDER BY message_id"
)
PG_INDEX = (
    f"CREATE INDEX {SEARCH_INDEX} ON {SEARCH_TABLE} "
    "USING gin (deskpal_search_terms(search_vector, message_id))"
)
PG_TENANT_INDEX = f"CREATE INDEX {SEARCH_TENANT_INDEX} ON {SEARCH_TABLE} (customer_id, message_id)"
