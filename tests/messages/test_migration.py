"""Migration 0003 on a database that already holds messages: rows kept, full-text search still fed."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deskpal.migrate import upgrade

_ROWS = (
    "INSERT INTO customer (customer_id, name, created_at) VALUES (1, 'c', '2026-01-01 00:00:00')",
    "INSERT INTO ticket (ticket_id, token, created_at, status, subject, channel_type, escalated, is_spam, "
    "is_important, is_closed, is_processed, is_read, custom_fields_data, customer_id) VALUES (1, 't', "
    "'2026-01-01 00:00:00', 'Open', 's', 'Email', false, false, false, false, true, false, '{}', 1)",
    "INSERT INTO ticket_message (message_id, ticket_id, created_at, incoming, sender_type, is_draft, "
    "is_internal_note, subject, text_body, custom_fields_data, customer_id) VALUES (1, 1, "
    "'2026-01-01 00:00:00', true, 'EndUser', false, false, 'old', 'kangaroo pouch', '{}', 1)",
)


async def _search(url: str, word: str) -> list[int]:
    sqlite = url.startswith("sqlite")
    query = (
        "SELECT rowid FROM ticket_message_fts WHERE ticket_message_fts MATCH :w ORDER BY rowid"
        if sqlite
        else "SELECT message_id FROM ticket_message WHERE search_vector @@ to_tsquery('simple', :w) "
        "ORDER BY message_id"
    )
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(query), {"w": word})).scalars())
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _exercise(url: str) -> None:
    await asyncio.to_thread(upgrade, url, "0002")
    await _execute(url, *_ROWS)
    await asyncio.to_thread(upgrade, url)
    assert await _search(url, "kangaroo") == [1]  # the old row is still indexed
    await _execute(
        url,
        "INSERT INTO ticket_message (message_id, ticket_id, created_at, incoming, sender_type, is_draft, "
        "is_internal_note, is_forward, is_opened, is_bounced, send_pending, is_escalated, attachment_refs, "
        "text_body, custom_fields_data, customer_id) VALUES (2, 1, '2026-01-02 00:00:00', true, 'EndUser', "
        "false, false, false, false, false, false, false, '[]', 'wombat burrow', '{}', 1)",
        "UPDATE ticket_message SET text_body = 'platypus' WHERE message_id = 1",
    )
    assert await _search(url, "wombat") == [2]  # the insert trigger / generated column
    assert await _search(url, "platypus") == [1]  # the update trigger
    assert await _search(url, "kangaroo") == []


async def test_upgrade_keeps_messages_searchable(fresh_database: str) -> None:
    await _exercise(fresh_database)
