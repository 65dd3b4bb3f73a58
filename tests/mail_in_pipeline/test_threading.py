"""Threading end to end: a customer's mail comes in through the raw-mail endpoint, an agent answers
it through the send flow (real SMTP, the tests' sink), and the customer's answers — as Gmail,
Outlook and Apple Mail write them — come back in, each into the same ticket with its reason."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import httpx
from fastapi import FastAPI

from tests.mail_in_pipeline.helpers import (
    CUSTOMER,
    SUPPORT,
    inbound_mail,
    message,
    new_id,
    raw_mail,
    received,
    ticket,
    ticket_count,
)
from tests.messages.helpers import messages_of
from tests.support import Tenant, run_jobs_until_idle


async def conversation(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channel: dict[str, Any], sink: Any
) -> dict[str, Any]:
    """The customer's first mail in, the agent's answer out: the ids a reply refers to."""
    first_id = new_id()
    first = await received(client, tenant, channel["channelID"], raw_mail(message_id=first_id))
    await run_jobs_until_idle(app)
    mail = await inbound_mail(client, tenant, first["inboundMailID"])
    r = await client.post(
        f"/api/TicketMessages/{mail['messageID']}/send",
        json={"modifiedAnswer": "It ships today."},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    await run_jobs_until_idle(app)
    sent = email.message_from_bytes(sink.messages[-1].raw, policy=email.policy.default)
    return {
        "ticket_id": mail["ticketID"],
        "first_id": first_id,
        "ours": sent["Message-ID"],
        "subject": sent["Subject"],
        "answer_id": r.json()["messageID"],
    }


async def filed(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channel: dict[str, Any], raw: bytes
) -> dict[str, Any]:
    answer = await received(client, tenant, channel["channelID"], raw)
    await run_jobs_until_idle(app)
    return await inbound_mail(client, tenant, answer["inboundMailID"])


def gmail_reply(thread: dict[str, Any]) -> bytes:
    return raw_mail(
        subject=thread["subject"],
        body=(
            "Thanks, that is quick!\n\n"
            "On Sun, Dec 6, 2026 at 10:05 AM Acme Support <support@acme.test> wrote:\n"
            "> It ships today.\n"
        ),
        headers={
            "In-Reply-To": thread["ours"],
            "References": f"{thread['first_id']} {thread['ours']}",
            "Message-ID": new_id("mail.gmail.com"),
        },
    )


def outlook_reply(thread: dict[str, Any]) -> bytes:
    # Outlook (desktop, German) threads by Thread-Index and its own Thread-Topic, rewrites the
    # subject with "AW:" and sends neither In-Reply-To nor References.
    return raw_mail(
        subject="AW: " + thread["subject"].removeprefix("Re: "),
        body=(
            "Danke!\n\n-----Ursprüngliche Nachricht-----\nVon: Acme Support <support@acme.test>\n"
            "Gesendet: Sonntag, 6. Dezember 2026 10:05\nBetreff: "
            + thread["subject"]
            + "\n\nIt ships today.\n"
        ),
        headers={
            "Thread-Topic": "My order is late",
            "Thread-Index": "AQHZ1x2bq4G5c3f8T0CwYh3Z2b6E8g==",
            "X-Mailer": "Microsoft Outlook 16.0",
            "Message-ID": new_id("customer.onmicrosoft.com"),
        },
    )


def apple_mail_reply(thread: dict[str, Any]) -> bytes:
    return raw_mail(
        subject=thread["subject"],
        body=(
            "Great, thank you.\n\nSent from my iPhone\n\n> On 6 Dec 2026, at 10:05, Acme Support "
            "<support@acme.test> wrote:\n>\n> It ships today.\n"
        ),
        headers={
            "In-Reply-To": thread["ours"],
            "References": f"{thread['first_id']} {thread['ours']}",
            "X-Mailer": "iPhone Mail (21F90)",
            "Content-Type": "text/plain; charset=utf-8",
            "Message-ID": new_id("icloud.com"),
        },
    )


class TestReplies:
    async def test_gmail_outlook_and_apple_mail_replies_join_the_ticket_with_their_reason(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        tag = f"[#{thread['ticket_id']}]"
        assert tag in thread["subject"]
        expected = {
            "gmail": f"In-Reply-To: {thread['ours']}",
            "outlook": f"Subject: {tag}",
            "apple": f"In-Reply-To: {thread['ours']}",
        }
        raws = {"gmail": gmail_reply, "outlook": outlook_reply, "apple": apple_mail_reply}
        for client_name, make in raws.items():
            mail = await filed(app, client, tenant, mail_channel, make(thread))
            assert mail["status"] == "stored", (client_name, mail)
            assert mail["ticketID"] == thread["ticket_id"], client_name
            msg = await message(client, tenant, mail["messageID"])
            assert msg["threadingReason"] == expected[client_name], client_name
        assert await ticket_count(app, tenant) == 1
        conversation_ = await messages_of(client, tenant, thread["ticket_id"])
        assert len(conversation_) == 5  # the first mail, our answer, three replies

    async def test_references_alone_thread_when_in_reply_to_names_something_unknown(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        raw = raw_mail(
            subject="something else entirely",
            headers={
                "In-Reply-To": new_id("elsewhere.test"),
                "References": f"{thread['first_id']} {new_id()}",
            },
        )
        mail = await filed(app, client, tenant, mail_channel, raw)
        assert mail["ticketID"] == thread["ticket_id"]
        assert (await message(client, tenant, mail["messageID"]))["threadingReason"] == (
            f"References: {thread['first_id']}"
        )

    async def test_a_stranger_naming_the_ticket_in_the_subject_opens_a_new_ticket(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        raw = raw_mail(sender="Mallory <mallory@evil.test>", subject=f"Re: [#{thread['ticket_id']}] hello")
        mail = await filed(app, client, tenant, mail_channel, raw)
        assert mail["ticketID"] != thread["ticket_id"]
        reason = (await message(client, tenant, mail["messageID"]))["threadingReason"]
        assert reason.startswith("new (") and "mallory@evil.test is not a participant" in reason

    async def test_a_reply_to_a_closed_ticket_reopens_it(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        await close(client, tenant, thread["ticket_id"])
        mail = await filed(app, client, tenant, mail_channel, gmail_reply(thread))
        assert mail["ticketID"] == thread["ticket_id"]
        assert (await ticket(client, tenant, thread["ticket_id"]))["isClosed"] is False

    async def test_with_closed_ticket_reply_new_ticket_a_follow_up_ticket_is_opened(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        settings = {**mail_channel["settings"], "closedTicketReply": "newTicket"}
        r = await client.put(
            f"/api/Channels/{mail_channel['channelID']}",
            json={"name": mail_channel["name"], "settings": settings},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        await close(client, tenant, thread["ticket_id"])
        mail = await filed(app, client, tenant, mail_channel, gmail_reply(thread))
        assert mail["ticketID"] != thread["ticket_id"]
        reason = (await message(client, tenant, mail["messageID"]))["threadingReason"]
        assert reason == f"follow-up of #{thread['ticket_id']} (In-Reply-To: {thread['ours']})"
        assert (await ticket(client, tenant, thread["ticket_id"]))["isClosed"] is True

    async def test_replies_go_to_reply_to_when_the_mail_names_one(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        raw = raw_mail(
            sender="Web form <noreply@forms.test>",
            headers={"Reply-To": f"Zoë Customer <{CUSTOMER}>"},
        )
        mail = await filed(app, client, tenant, mail_channel, raw)
        msg = await message(client, tenant, mail["messageID"])
        assert msg["fromAddress"] == "noreply@forms.test"
        assert msg["replyToAddress"] == f"Zoë Customer <{CUSTOMER}>"
        r = await client.post(
            f"/api/TicketMessages/{msg['messageID']}/send",
            json={"modifiedAnswer": "We are on it."},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        await run_jobs_until_idle(app)
        assert smtp_sink.messages[-1].recipients == [CUSTOMER]


async def close(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> None:
    r = await client.patch(
        f"/api/Tickets/{ticket_id}",
        json=[{"op": "replace", "path": "/status", "value": "Closed"}],
        headers=tenant.headers,
    )
    assert r.status_code in (200, 204), r.text


def dsn(ours: str, *, action: str = "failed", status: str = "5.1.1") -> bytes:
    """A Postfix delivery-status report (RFC 3464) about the mail `ours`."""
    boundary = "7F1A2B3C.1733479200/mx.customer.test"
    words = "550 5.1.1 <zoe@customer.test>: Recipient address rejected: User unknown"
    if action == "delayed":
        words = "451 4.4.1 host mx.customer.test[192.0.2.1]: Connection timed out"
    subject = "Undelivered Mail Returned to Sender"
    if action == "delayed":
        subject = "Delayed Mail (still being retried)"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\n"
        f"To: {SUPPORT}\r\n"
        f"Subject: {subject}\r\n"
        "Date: Sun, 06 Dec 2026 10:06:00 +0100\r\n"
        f"Message-ID: {new_id('mx.customer.test')}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.customer.test.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{CUSTOMER}>: host mx.customer.test[192.0.2.1] said: {words}\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.test\r\n"
        "Arrival-Date: Sun,  6 Dec 2026 10:05:59 +0100 (CET)\r\n\r\n"
        f"Final-Recipient: rfc822; {CUSTOMER}\r\n"
        f"Original-Recipient: rfc822;{CUSTOMER}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.customer.test\r\n"
        f"Diagnostic-Code: smtp; {words}\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: Acme Support <{SUPPORT}>\r\n"
        f"To: {CUSTOMER}\r\n"
        "Subject: Re: My order is late\r\n"
        f"Message-ID: {ours}\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode("ascii")


class TestBounces:
    async def test_a_bounce_of_our_mail_marks_it_bounced_notes_the_ticket_and_opens_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        mail = await filed(app, client, tenant, mail_channel, dsn(thread["ours"]))
        assert mail["status"] == "stored" and mail["kind"] == "bounce"
        assert mail["ticketID"] == thread["ticket_id"]
        answer = await message(client, tenant, thread["answer_id"])
        assert answer["isBounced"] is True and answer["deliveryStatus"] == "bounced"
        assert answer["bounceStatus"] == "5.1.1" and "User unknown" in answer["bounceDiagnostic"]
        note = await message(client, tenant, mail["messageID"])
        assert note["isInternalNote"] is True and note["ticketID"] == thread["ticket_id"]
        assert CUSTOMER in note["message"] and "5.1.1" in note["message"]
        assert await ticket_count(app, tenant) == 1

    async def test_a_bounce_naming_nothing_of_ours_is_stored_with_no_ticket(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        mail = await filed(app, client, tenant, mail_channel, dsn(new_id("spoofed.test")))
        assert (mail["status"], mail["kind"], mail["ticketID"]) == ("stored", "bounce", None)
        assert await ticket_count(app, tenant) == 0

    async def test_a_delay_warning_marks_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        mail = await filed(
            app, client, tenant, mail_channel, dsn(thread["ours"], action="delayed", status="4.4.1")
        )
        assert mail["status"] == "stored" and mail["kind"] == "bounce" and mail["ticketID"] is None
        answer = await message(client, tenant, thread["answer_id"])
        assert answer["isBounced"] is False and answer["deliveryStatus"] == "sent"


def out_of_office(thread: dict[str, Any] | None) -> bytes:
    headers = {
        "Auto-Submitted": "auto-replied",
        "X-Auto-Response-Suppress": "All",
        "Precedence": "bulk",
    }
    subject = "Automatic reply: Your mail"
    if thread is not None:
        headers |= {"In-Reply-To": thread["ours"], "References": thread["ours"]}
        subject = "Automatic reply: " + thread["subject"]
    return raw_mail(
        subject=subject,
        body="I am out of the office until 4 January with no access to my mail.",
        headers=headers,
    )


class TestAutoReplies:
    async def test_an_out_of_office_answer_reopens_nothing_and_sends_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        thread = await conversation(app, client, tenant, mail_channel, smtp_sink)
        await close(client, tenant, thread["ticket_id"])
        sent_before = len(smtp_sink.messages)
        mail = await filed(app, client, tenant, mail_channel, out_of_office(thread))
        assert mail["status"] == "stored" and mail["kind"] == "autoreply"
        assert mail["ticketID"] == thread["ticket_id"]
        msg = await message(client, tenant, mail["messageID"])
        assert msg["isAutoReply"] is True
        shown = await ticket(client, tenant, thread["ticket_id"])
        assert shown["isClosed"] is True and shown["status"] == "Closed"
        await run_jobs_until_idle(app)
        assert len(smtp_sink.messages) == sent_before

    async def test_an_out_of_office_answer_to_nothing_of_ours_opens_no_ticket(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        mail = await filed(app, client, tenant, mail_channel, out_of_office(None))
        assert (mail["status"], mail["kind"], mail["ticketID"], mail["messageID"]) == (
            "stored",
            "autoreply",
            None,
            None,
        )
        assert "no ticket opened" in mail["outcome"]
        assert await ticket_count(app, tenant) == 0
