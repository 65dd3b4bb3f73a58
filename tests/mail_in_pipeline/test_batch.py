"""email.receive runs in batches (email/inbound/jobs.py): up to BATCH mails of a customer filed in
one transaction, a few statements each; a mail that fails to file fails alone (its savepoint goes
back, the others commit); a reply filed in the same batch as the mail it answers finds it; both
databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from deskpal.conversations import service as conversations
from deskpal.email.inbound import filing
from deskpal.email.inbound.jobs import BATCH
from tests.mail_in_pipeline.helpers import inbound_mail, new_id, raw_mail, received, rows, ticket_count
from tests.messages.helpers import messages_of
from tests.support import Tenant, db_of, run_jobs_until_idle


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


def _work(seen: list[str]) -> list[str]:
    """The statements that do something (transaction and savepoint control left out)."""
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [s for s in seen if not s.lstrip().upper().startswith(control)]


async def test_a_batch_of_new_mails_and_replies_is_filed_in_a_few_statements_each(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
) -> None:
    channel_id = mail_channel["channelID"]
    firsts = [new_id() for _ in range(BATCH // 2)]
    for i, mid in enumerate(firsts):
        await received(client, tenant, channel_id, raw_mail(subject=f"Order {i}", message_id=mid))
    await run_jobs_until_idle(app)
    # Half replies to those (one ticket each), half new conversations from new senders.
    for i, mid in enumerate(firsts):
        reply = raw_mail(
            subject=f"Re: Order {i}", body="Any news?", headers={"In-Reply-To": mid, "References": mid}
        )
        await received(client, tenant, channel_id, reply)
        sender = f"New Sender {i} <new{i}@customer.test>"
        await received(client, tenant, channel_id, raw_mail(subject=f"Question {i}", sender=sender))
    with _statements(app) as seen:
        await run_jobs_until_idle(app)
    stored = await rows(app, tenant)
    assert [r.status for r in stored] == ["stored"] * (3 * len(firsts))
    assert await ticket_count(app, tenant) == 2 * len(firsts)
    replies = [r for r in stored[len(firsts) :] if r.subject and r.subject.startswith("Re:")]
    assert {r.ticket_id for r in replies} == {r.ticket_id for r in stored[: len(firsts)]}
    # 163 for 20 mails on both databases (before batches: one job, three transactions and 20
    # statements per mail, BEGIN and COMMIT included). Per mail: its message (new: its ticket and
    # end user) written, the end user read and linked, the ticket and the row updated, the job
    # finished. Once per batch: the claim, the rows, the channel, the Message-IDs, their tickets
    # and the channels' external ids.
    work = _work(seen)
    assert len(work) <= 7 * BATCH + 25, f"{len(work)} statements for {BATCH} mails"


async def test_a_mail_that_fails_to_file_fails_alone_and_leaves_nothing_behind(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    mail_channel: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel_id = mail_channel["channelID"]
    real_intake = conversations.intake

    async def intake_failing_once_written(ctx: Any, inbound: Any) -> Any:
        msg = await real_intake(ctx, inbound)  # the ticket and the message are written ...
        if inbound.message.subject == "poison":
            raise ValueError("a fault after the message was written")  # ... and must go back
        return msg

    monkeypatch.setattr(filing, "intake", intake_failing_once_written)
    answers = [
        await received(client, tenant, channel_id, raw_mail(subject=subject))
        for subject in ("before", "poison", "after")
    ]
    await run_jobs_until_idle(app)
    before, poison, after = [await inbound_mail(client, tenant, a["inboundMailID"]) for a in answers]
    assert before["status"] == after["status"] == "stored"
    assert poison["status"] == "failed" and poison["messageID"] is None
    assert "a fault after the message was written" in poison["error"]
    assert await ticket_count(app, tenant) == 2  # the poison mail's ticket went back with it
    assert before["ticketID"] != after["ticketID"]

    monkeypatch.setattr(filing, "intake", real_intake)
    r = await client.post(f"/api/InboundMails/{poison['inboundMailID']}/retry", headers=tenant.headers)
    assert r.status_code == 200, r.text
    await run_jobs_until_idle(app)
    retried = await inbound_mail(client, tenant, poison["inboundMailID"])
    assert retried["status"] == "stored" and retried["attempts"] == 2
    assert await ticket_count(app, tenant) == 3


async def test_a_reply_in_the_same_batch_as_the_mail_it_answers_joins_its_ticket(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
) -> None:
    """The first mail names an older, unknown thread in References and the reply only its
    In-Reply-To: their ordering keys differ, so both may run in one batch; the reply must still
    find the first mail filed moments before in the same transaction."""
    channel_id = mail_channel["channelID"]
    first_id = new_id()
    first = raw_mail(subject="Invoice", message_id=first_id, headers={"References": new_id("elsewhere.test")})
    reply = raw_mail(subject="Re: Invoice", body="Forgot the number: 77.", headers={"In-Reply-To": first_id})
    answers = [await received(client, tenant, channel_id, raw) for raw in (first, reply)]
    await run_jobs_until_idle(app)
    a, b = [await inbound_mail(client, tenant, x["inboundMailID"]) for x in answers]
    assert a["status"] == b["status"] == "stored"
    assert a["ticketID"] == b["ticketID"]
    listed = await messages_of(client, tenant, a["ticketID"])
    by_id = {m["messageID"]: m for m in listed}
    assert by_id[b["messageID"]]["threadingReason"] == f"In-Reply-To: {first_id}"
