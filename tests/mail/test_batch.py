"""Send jobs run in batches (email/outbox.py): one read for the batch, one SMTP session per server,
a refused mail failing alone, a session the server ends opened again; both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event, select

from deskpal.core.db import transaction
from deskpal.core.jobs import JobRow
from deskpal.email.outbox import BATCH
from deskpal.messages.models import TicketMessage
from tests.mail.helpers import queue_sends
from tests.mail.smtp_sink import SmtpSink
from tests.support import Tenant, db_of, run_jobs_until_idle


async def _states(app: FastAPI, tenant: Tenant, ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        stmt = select(TicketMessage.message_id, TicketMessage.delivery_status, TicketMessage.delivery_error)
        rows = (await db.execute(stmt.where(TicketMessage.message_id.in_(ids)))).all()
        return {mid: (status, error) for mid, status, error in rows}


@contextmanager
def _statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = db_of(app).engine.sync_engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_a_batch_goes_over_one_connection_in_a_few_statements(
    app: FastAPI, tenant: Tenant, mail_channel: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    ids = await queue_sends(app, tenant, mail_channel["channelID"], BATCH)
    with _statements(app) as seen:
        await run_jobs_until_idle(app)
    assert {status for status, _ in (await _states(app, tenant, ids)).values()} == {"sent"}
    assert len(smtp_sink.messages) == BATCH
    assert len({m.connection for m in smtp_sink.messages}) == 1
    # Per mail: its state written and its job finished; the rest (the claim, the batch's messages,
    # tickets, threads and attachments, channel, template, customer) once per batch.
    per_mail = [
        s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))
    ]
    assert len(per_mail) <= 2 * BATCH + 15, f"{len(per_mail)} statements for {BATCH} mails"


async def test_a_refused_mail_fails_alone_and_the_session_goes_on(
    app: FastAPI, tenant: Tenant, mail_channel: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse_recipient("customer2@example.test")
    ids = await queue_sends(app, tenant, mail_channel["channelID"], 5)
    await run_jobs_until_idle(app)
    states = await _states(app, tenant, ids)
    assert states[ids[2]] == ("failed", "550 5.1.1 No such user")
    assert [states[i][0] for i in ids if i != ids[2]] == ["sent"] * 4
    assert len({m.connection for m in smtp_sink.messages}) == 1  # RSET, not a new connection
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        jobs = (await db.scalars(select(JobRow).where(JobRow.kind == "email.send"))).all()
    by_message = {j.payload["message_id"]: j.status for j in jobs}
    assert by_message[ids[2]] == "dead" and {by_message[i] for i in ids if i != ids[2]} == {"done"}


async def test_a_session_the_server_ends_is_opened_again(
    app: FastAPI, tenant: Tenant, mail_channel: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    sent_before = 0

    def closing_after_two() -> None:
        nonlocal sent_before
        sent_before += 1
        if sent_before == 3:
            smtp_sink.fail_next(421, "4.7.0 Too many messages in this session", stage="data")

    smtp_sink.on_data = closing_after_two
    ids = await queue_sends(app, tenant, mail_channel["channelID"], 6)
    await run_jobs_until_idle(app)
    states = await _states(app, tenant, ids)
    assert states[ids[2]] == ("deferred", "421 4.7.0 Too many messages in this session")  # retried later
    assert [states[i][0] for i in ids if i != ids[2]] == ["sent"] * 5
    assert len({m.connection for m in smtp_sink.messages}) == 2
