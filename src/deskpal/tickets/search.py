"""Full-text search over ticket-message text: SQLite FTS5 and PostgreSQL tsvector + GIN.

Both indexes cover a message's subject and text body and are kept current inside the writing
transaction by the database itself (SQLite: triggers feeding an external-content FTS5 table;
PostgreSQL: a stored generated tsvector column). The objects are created by the tickets migration
and are not part of the ORM metadata; the Alembic env leaves them out of drift checks.

Accents are folded on both sides: SQLite's unicode61 tokenizer removes diacritics itself, and on
PostgreSQL the indexed text goes through deskpal_fold(), a translate() over the Latin letters with
diacritics (no `unaccent` extension needed), which `fold()` below mirrors for the query.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, select, text
from sqlalchemy.sql import column, table

from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket

FTS_TABLE = "ticket_message_fts"  # SQLite
FTS_COLUMN = "search_vector"  # PostgreSQL
FTS_OBJECT_PREFIXES = (FTS_TABLE, "ix_ticket_message_search_vector")
MAX_TERMS = 8
# A search ranks the newest this many matching messages (in the tickets the other filters select).
CANDIDATES = 500
# Prefix indexes for words of 3 to 8 letters: every search word is a prefix, and without them FTS5
# merges the doclists of every word the prefix starts (15-20x slower for common words, measured on
# 1M messages; docs/performance.md). Longer words fall back to that merge.
FTS_PREFIXES = "3 4 5 6 7 8"
_INSERT = (
    f"INSERT INTO {FTS_TABLE}(rowid, subject, text_body) VALUES (new.message_id, new.subject, new.text_body);"
)
_TOKEN = re.compile(r"[^\W_]+")


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
    dialect: str, words: list[str], where: list[ColumnElement[bool]], limit: int | None = None
) -> tuple[Select[Any], bool]:
    """Ticket ids with a relevance score: the tickets of the newest `limit` messages that match all
    words (each as a prefix) among the tickets `where` selects, each scored by its best message.

    Returns the statement (columns ticket_id, score) and whether a higher score is better.

    Ranking every match costs time in proportion to the matches, and two common words match tens
    of thousands of messages; so the engine walks the matches newest first (FTS5 in rowid order;
    PostgreSQL by the primary key or a bitmap of the GIN index, whichever its planner prefers),
    stops after `limit` that pass the ticket filters and scores only those. A search that matches
    fewer messages than that is exact; a broader one is ranked among its newest matches.
    """
    limit = CANDIDATES if limit is None else limit
    if dialect == "postgresql":
        vector: ColumnElement[Any] = literal_column(f"ticket_message.{FTS_COLUMN}")
        query = func.to_tsquery(text("'simple'::regconfig"), " & ".join(f"{w}:*" for w in words))
        # Narrow rows through the sort (the vectors would spill it to disk), then the vectors of
        # the candidates only, by primary key, for ts_rank.
        newest = (
            select(TicketMessage.message_id, TicketMessage.ticket_id)
            .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
            .where(vector.op("@@")(query), *where)
            .order_by(TicketMessage.message_id.desc())
            .limit(limit)
            .subquery("newest")
        )
        best: ColumnElement[Any] = func.max(func.ts_rank(vector, query))
        scored = (
            select(newest.c.ticket_id, best.label("score"))
            .select_from(newest)
            .join(TicketMessage, TicketMessage.message_id == newest.c.message_id)
            .group_by(newest.c.ticket_id)
        )
        return scored, True
    fts = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
    match = " ".join(f'"{w}"*' for w in words)
    # bm25 (lower is better) is computed only for the rows the MATCH query returns.
    newest = (
        select(TicketMessage.ticket_id, func.bm25(literal_column(FTS_TABLE)).label("score"))
        .select_from(fts)
        .join(TicketMessage, TicketMessage.message_id == fts.c.rowid)
        .join(Ticket, Ticket.ticket_id == TicketMessage.ticket_id)
        .where(fts.c[FTS_TABLE].op("MATCH")(match), *where)
        .order_by(fts.c.rowid.desc())
        .limit(limit)
        .subquery("newest")
    )
    return select(newest.c.ticket_id, func.min(newest.c.score).label("score")).group_by(
        newest.c.ticket_id
    ), False


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
