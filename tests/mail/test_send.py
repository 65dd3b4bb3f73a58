"""The send endpoints end to end: the request queues, the worker sends over real SMTP, the sink
receives; both databases."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.db import transaction
from tests.messages.helpers import create_channel, create_message, stored_message
from tests.support import Tenant, db_of, run_jobs_until_idle

CUSTOMER = "Zoë Customer <zoe@customer.test>"


async def received(
    client: httpx.AsyncClient, tenant: Tenant, channel: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channelID": channel["channelID"],
        "fromAddress": CUSTOMER,
        "toAddress": "support@acme.test",
        "subject": "My order is late",
        "message": "Where is order 1234?",
        "messageIdentifier": "<c1@customer.test>",
        **fields,
    }
    return await create_message(client, tenant.headers, **body)


def parsed(sink: Any, index: int = -1) -> EmailMessage:
    raw = sink.messages[index].raw
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


async def send(
    client: httpx.AsyncClient, tenant: Tenant, message_id: int, path: str = "send", **body: Any
) -> httpx.Response:
    return await client.post(f"/api/TicketMessages/{message_id}/{path}", json=body, headers=tenant.headers)


class TestSend:
    async def test_modified_answer_is_sent_as_a_reply_that_threads(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        r = await send(client, tenant, incoming["messageID"], modifiedAnswer="It ships today.")
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["message"] == "Message sent successfully."
        assert answer["deliveryStatus"] == "queued"
        assert not smtp_sink.messages  # nothing leaves inside the request
        await run_jobs_until_idle(app)
        assert len(smtp_sink.messages) == 1
        mail = parsed(smtp_sink)
        assert mail["Message-ID"] == answer["messageIdentifier"]
        assert mail["In-Reply-To"] == "<c1@customer.test>"
        assert "<c1@customer.test>" in mail["References"]
        assert mail["Subject"] == f"Re: [#{incoming['ticketID']}] My order is late"
        assert "zoe@customer.test" in mail["To"]
        assert mail.get_content_type() == "multipart/alternative"
        assert "It ships today." in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert smtp_sink.messages[0].recipients == ["zoe@customer.test"]
        detail = (
            await client.get(f"/api/TicketMessages/{answer['messageID']}", headers=tenant.headers)
        ).json()
        assert detail["deliveryStatus"] == "sent" and detail["sendPending"] is False
        assert detail["sentAt"] is not None and detail["deliveryResponse"].startswith("250")
        assert detail["messageIdentifier"] == answer["messageIdentifier"]

    async def test_a_three_mail_exchange_threads(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        first = await received(client, tenant, mail_channel)
        ours = (await send(client, tenant, first["messageID"], modifiedAnswer="Looking into it.")).json()
        await run_jobs_until_idle(app)
        second = await received(
            client, tenant, mail_channel, ticketID=first["ticketID"], messageIdentifier="<c2@customer.test>",
            subject=f"Re: [#{first['ticketID']}] My order is late", message="Any news?",
        )  # fmt: skip
        r = await send(client, tenant, second["messageID"], modifiedAnswer="Delivered tomorrow.")
        assert r.status_code == 200, r.text
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert mail["In-Reply-To"] == "<c2@customer.test>"
        refs = mail["References"].split()
        assert refs == ["<c1@customer.test>", ours["messageIdentifier"], "<c2@customer.test>"]
        assert mail["Subject"].count(f"[#{first['ticketID']}]") == 1 and not mail["Subject"].startswith(
            "Re: Re:"
        )

    async def test_sending_twice_is_refused(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        assert (await send(client, tenant, incoming["messageID"], modifiedAnswer="One.")).status_code == 200
        again = await send(client, tenant, incoming["messageID"], modifiedAnswer="Two.")
        assert again.status_code == 409 and again.json()["code"] == "ALREADY_SENT"
        await run_jobs_until_idle(app)
        assert len(smtp_sink.messages) == 1

    async def test_nothing_prepared_is_a_422_naming_modified_answer(
        self, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        r = await send(client, tenant, incoming["messageID"])
        assert r.status_code == 422 and r.json()["code"] == "NOTHING_TO_SEND"
        assert r.json()["errors"][0]["field"] == "modifiedAnswer"

    async def test_the_stored_modified_ai_reply_is_sent(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        put = await client.put(
            f"/api/TicketMessages/{incoming['messageID']}",
            json={"messageID": incoming["messageID"], "ai_ModifiedResponse": "Edited AI answer."},
            headers=tenant.headers,
        )
        assert put.status_code == 204
        assert (await send(client, tenant, incoming["messageID"])).status_code == 200
        await run_jobs_until_idle(app)
        assert "Edited AI answer." in parsed(smtp_sink).get_body(("plain",)).get_content()  # type: ignore[union-attr]

    async def test_the_draft_reply_is_sent_as_it_is(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        draft = await create_message(
            client, tenant.headers, replyToMessageID=incoming["messageID"], incoming=False, isDraft=True,
            message="Draft answer.", toAddress="zoe@customer.test",
        )  # fmt: skip
        r = await send(client, tenant, incoming["messageID"])
        assert r.status_code == 200 and r.json()["messageID"] == draft["messageID"]
        await run_jobs_until_idle(app)
        row = await stored_message(app, tenant, draft["messageID"])
        assert row is not None and not row.is_draft and row.delivery_status == "sent"
        assert parsed(smtp_sink)["In-Reply-To"] == "<c1@customer.test>"

    async def test_a_channel_without_smtp_is_a_422(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        channel = await create_channel(client, tenant, "Email")
        incoming = await received(client, tenant, channel)
        r = await send(client, tenant, incoming["messageID"], modifiedAnswer="Hi")
        assert r.status_code == 422 and r.json()["code"] == "SMTP_NOT_CONFIGURED"

    async def test_another_customers_message_is_404(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        for path in ("send", "preview", "send-new", "send-forward"):
            r = await client.post(
                f"/api/TicketMessages/{incoming['messageID']}/{path}", json={}, headers=other_tenant.headers
            )
            assert r.status_code == 404, (path, r.text)


class TestSendNewAndForward:
    async def test_send_new_sends_the_draft_to_its_recipients_not_as_a_reply(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        draft = await create_message(
            client, tenant.headers, channelID=mail_channel["channelID"], incoming=False, isDraft=True,
            subject="Your invoice", message="Attached.", toAddress="a@x.test", ccAddress="b@x.test",
            bccAddress="c@x.test",
        )  # fmt: skip
        r = await send(client, tenant, draft["messageID"], "send-new")
        assert r.status_code == 200, r.text
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert mail["In-Reply-To"] is None and mail["Bcc"] is None
        assert sorted(smtp_sink.messages[-1].recipients) == ["a@x.test", "b@x.test", "c@x.test"]
        assert mail["Subject"] == f"[#{draft['ticketID']}] Your invoice"
        again = await send(client, tenant, draft["messageID"], "send-new")
        assert again.status_code == 409

    async def test_send_new_refuses_a_received_message(
        self, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        r = await send(client, tenant, incoming["messageID"], "send-new")
        assert r.status_code == 422 and r.json()["code"] == "NOT_SENDABLE"

    async def test_a_draft_to_nobody_is_refused(
        self, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        draft = await create_message(
            client, tenant.headers, channelID=mail_channel["channelID"], incoming=False, isDraft=True,
            subject="Hello", message="Text",
        )  # fmt: skip
        r = await send(client, tenant, draft["messageID"], "send-new")
        assert r.status_code == 422 and r.json()["code"] == "NO_RECIPIENT"

    async def test_forward_carries_the_original_and_its_attachments(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        up = await client.post(
            f"/api/TicketMessages/{incoming['messageID']}/attachments",
            files={"file": ("invoice.pdf", b"%PDF-1.4 test", "application/pdf")},
            headers=tenant.headers,
        )
        assert up.status_code in (200, 201), up.text
        draft = await create_message(
            client, tenant.headers, forwardFromMessageID=incoming["messageID"], incoming=False, isDraft=True,
            message="FYI, see below.", toAddress="colleague@acme.test",
        )  # fmt: skip
        r = await send(client, tenant, draft["messageID"], "send-forward")
        assert r.status_code == 200, r.text
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert mail["Subject"] == f"Fwd: [#{incoming['ticketID']}] My order is late"
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "FYI, see below." in text and "Where is order 1234?" in text
        files = [(p.get_filename(), p.get_content()) for p in mail.iter_attachments()]
        assert files == [("invoice.pdf", b"%PDF-1.4 test")]


class TestPreview:
    async def test_preview_shows_what_send_sends_and_changes_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        before = (
            await client.get(f"/api/TicketMessages?ticketId={incoming['ticketID']}", headers=tenant.headers)
        ).json()
        r = await send(client, tenant, incoming["messageID"], "preview", modifiedAnswer="Preview me.")
        assert r.status_code == 200, r.text
        shown = r.json()
        after = (
            await client.get(f"/api/TicketMessages?ticketId={incoming['ticketID']}", headers=tenant.headers)
        ).json()
        assert before == after
        await run_jobs_until_idle(app)
        assert not smtp_sink.messages
        assert shown["subject"].endswith("My order is late") and "Preview me." in shown["textBody"]
        assert shown["headers"]["In-Reply-To"] == "<c1@customer.test>"
        sent = (await send(client, tenant, incoming["messageID"], modifiedAnswer="Preview me.")).json()
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert mail["Subject"] == shown["subject"]
        assert mail.get_body(("plain",)).get_content().strip() == shown["textBody"].strip()  # type: ignore[union-attr]
        assert sent["messageID"] != incoming["messageID"]


class TestDeliveryStates:
    async def test_a_451_is_deferred_then_sent(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        smtp_sink.fail_next(451, "4.3.0 Try again later", stage="data")
        incoming = await received(client, tenant, mail_channel)
        out = (await send(client, tenant, incoming["messageID"], modifiedAnswer="Hi")).json()
        await run_jobs_until_idle(app)
        row = await stored_message(app, tenant, out["messageID"])
        assert row is not None and row.delivery_status == "deferred" and "451" in (row.delivery_error or "")
        await _make_due(app, tenant)
        await run_jobs_until_idle(app)
        row = await stored_message(app, tenant, out["messageID"])
        assert row is not None and row.delivery_status == "sent"
        assert len(smtp_sink.messages) == 1

    async def test_a_550_fails_with_the_servers_words_and_can_be_sent_again(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        smtp_sink.fail_next(550, "5.1.1 No such user", stage="rcpt")
        incoming = await received(client, tenant, mail_channel)
        out = (await send(client, tenant, incoming["messageID"], modifiedAnswer="Hi")).json()
        await run_jobs_until_idle(app)
        detail = (await client.get(f"/api/TicketMessages/{out['messageID']}", headers=tenant.headers)).json()
        assert detail["deliveryStatus"] == "failed" and "No such user" in detail["deliveryError"]
        jobs = (await client.get("/api/Jobs", headers=tenant.headers)).json()
        assert any("No such user" in (j.get("lastError") or "") for j in jobs["items"])
        retry = await send(client, tenant, out["messageID"], "send-new")
        assert retry.status_code == 200, retry.text
        await run_jobs_until_idle(app)
        assert (await stored_message(app, tenant, out["messageID"])).delivery_status == "sent"  # type: ignore[union-attr]


async def _make_due(app: FastAPI, tenant: Tenant) -> None:
    from sqlalchemy import update

    from deskpal.core.db import utcnow
    from deskpal.core.jobs import JobRow

    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        await db.execute(update(JobRow).where(JobRow.status == "queued").values(run_at=utcnow()))


class TestMailJobsCallOutWithNoTransaction:
    """Every email job's SMTP step runs with no transaction of deskpal's open (seen from outside,
    while the server holds the mail's DATA unanswered). tests/storage/test_job_network.py lists
    these job types as walked here."""

    @pytest.fixture
    async def observed(self, app: FastAPI, smtp_sink: Any) -> list[list[str]]:
        import asyncio

        from tests.core.job_helpers import open_transactions

        loop, seen = asyncio.get_running_loop(), []

        def look() -> None:
            seen.append(asyncio.run_coroutine_threadsafe(open_transactions(app), loop).result(timeout=10))

        smtp_sink.on_data = look
        return seen

    async def _run_alone(self, app: FastAPI) -> None:
        from deskpal.core.worker import Worker

        await Worker(db_of(app), concurrency=1, poll_seconds=0.01).run_pending()

    async def test_email_send(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any, observed: list[list[str]],
    ) -> None:  # fmt: skip
        incoming = await received(client, tenant, mail_channel)
        assert (await send(client, tenant, incoming["messageID"], modifiedAnswer="Hi")).status_code == 200
        await self._run_alone(app)
        assert len(smtp_sink.messages) == 1 and observed == [[]]

    async def test_email_escalation_notice(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any],
        smtp_sink: Any, observed: list[list[str]],
    ) -> None:  # fmt: skip
        incoming = await received(client, tenant, mail_channel)
        r = await client.post(
            f"/api/TicketMessages/{incoming['messageID']}/escalate-by-id",
            json={"feedbackComment": "Angry customer", "email": "manager@acme.test"},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        await self._run_alone(app)
        assert [m.recipients for m in smtp_sink.messages] == [["manager@acme.test"]] and observed == [[]]
        notice = parsed(smtp_sink)
        assert notice["Auto-Submitted"] == "auto-replied"
        assert "Angry customer" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]


class TestHelpdeskResponses:
    async def test_a_response_is_really_sent(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        incoming = await received(client, tenant, mail_channel)
        r = await client.post(
            "/helpdesk/api/messages",
            json={
                "ticket_id": str(incoming["ticketID"]),
                "type": "response",
                "content": "<p>Fixed <b>now</b>.</p>",
            },
            headers={"Authorization": f"Bearer {tenant.login_token()}"},
        )
        assert r.status_code == 201, r.text
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert smtp_sink.messages[0].recipients == ["zoe@customer.test"]
        assert mail["In-Reply-To"] == "<c1@customer.test>"
        assert "<b>now</b>" in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        row = await stored_message(app, tenant, int(r.json()["id"]))
        assert row is not None and row.delivery_status == "sent"

    async def test_without_a_channel_that_can_send_the_response_is_refused(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, "Email")
        incoming = await received(client, tenant, channel)
        body = {"ticket_id": str(incoming["ticketID"]), "type": "response", "content": "<p>Hi</p>"}
        auth = {"Authorization": f"Bearer {tenant.login_token()}"}
        r = await client.post("/helpdesk/api/messages", json=body, headers=auth)
        assert r.status_code == 422 and r.json()["code"] == "SMTP_NOT_CONFIGURED"
        listed = await client.get(
            f"/api/TicketMessages?ticketId={incoming['ticketID']}", headers=tenant.headers
        )
        assert listed.json()["totalCount"] == 1  # nothing half-written
        r = await client.post("/helpdesk/api/messages", json={**body, "send_email": False}, headers=auth)
        assert r.status_code == 201


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


class TestWhatTheMailCarries:
    async def _job_ad_mail(
        self, client: httpx.AsyncClient, tenant: Tenant, channel: dict[str, Any], to: str = "ann@x.test"
    ) -> dict[str, Any]:
        draft = await create_message(
            client, tenant.headers, channelID=channel["channelID"], incoming=False, isDraft=True,
            subject="Your application", message="Thanks for applying.", toAddress=to,
            customFieldsData={"jobAdID": "J-7"},
        )  # fmt: skip
        assert (await send(client, tenant, draft["messageID"], "send-new")).status_code == 200
        return draft

    async def test_pixel_and_one_click_unsubscribe_work_from_the_mail_itself(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        import re

        draft = await self._job_ad_mail(client, tenant, mail_channel)
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = str(mail["List-Unsubscribe"]).strip("<>")
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        pixel = re.search(r'src="([^"]*/api/TicketMessages/ot\?token=[^"]+)"', html)
        assert pixel is not None
        seen = await client.get(_path_of(pixel.group(1).replace("&amp;", "&")))
        assert seen.status_code == 200 and seen.headers["content-type"] == "image/gif"
        row = await stored_message(app, tenant, draft["messageID"])
        assert row is not None and row.is_opened and row.open_count == 1
        one_click = await client.post(
            _path_of(unsubscribe),
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200, one_click.text
        later = await self._job_ad_mail(client, tenant, mail_channel)
        await run_jobs_until_idle(app)
        assert len(smtp_sink.messages) == 1  # the second job-ad mail to ann was not sent
        detail = (
            await client.get(f"/api/TicketMessages/{later['messageID']}", headers=tenant.headers)
        ).json()
        assert detail["deliveryStatus"] == "suppressed" and detail["sendPending"] is False

    async def test_the_default_template_wraps_the_reply(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        made = await client.post(
            "/api/EmailTemplates",
            json={
                "name": "House style",
                "header": "<p>Dear {{ end_user.name }},</p>",
                "signature": "<p>{{ rep.name }}, {{ channel.name }}</p>",
                "footer": "<p>Acme Ltd, ticket {{ ticket.id }}</p>",
                "isDefault": True,
            },
            headers=tenant.headers,
        )
        assert made.status_code == 201, made.text
        incoming = await received(client, tenant, mail_channel)
        assert (
            await send(client, tenant, incoming["messageID"], modifiedAnswer="It ships.")
        ).status_code == 200
        await run_jobs_until_idle(app)
        text = parsed(smtp_sink).get_body(("plain",)).get_content()  # type: ignore[union-attr]
        order = [
            text.index(s) for s in ("Dear Zoë Customer,", "It ships.", "Admin, Support mail", "Acme Ltd")
        ]
        assert order == sorted(order), text
        assert f"ticket {incoming['ticketID']}" in text

    async def test_inline_images_ride_in_multipart_related(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        mail_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        from sqlalchemy import update

        from deskpal.attachments.models import TicketMessageAttachment

        incoming = await received(
            client, tenant, mail_channel, htmlBody='<p>See <img src="cid:logo@x"> and the file.</p>'
        )
        for name, kind in (("logo.png", "image/png"), ("terms.pdf", "application/pdf")):
            up = await client.post(
                f"/api/TicketMessages/{incoming['messageID']}/attachments",
                files={"file": (name, b"\x89PNG bytes" if kind == "image/png" else b"%PDF", kind)},
                headers=tenant.headers,
            )
            assert up.status_code in (200, 201), up.text
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            await db.execute(
                update(TicketMessageAttachment)
                .where(TicketMessageAttachment.file_name == "logo.png")
                .values(content_id="logo@x")
            )
        draft = await create_message(
            client, tenant.headers, forwardFromMessageID=incoming["messageID"], incoming=False, isDraft=True,
            message="Forwarding.", toAddress="colleague@acme.test",
        )  # fmt: skip
        assert (await send(client, tenant, draft["messageID"], "send-forward")).status_code == 200
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert mail.get_content_type() == "multipart/mixed"
        related = next(p for p in mail.iter_parts() if p.get_content_type() == "multipart/related")
        kinds = [p.get_content_type() for p in related.iter_parts()]
        assert kinds == ["multipart/alternative", "image/png"]
        image = list(related.iter_parts())[1]
        assert image["Content-ID"] == "<logo@x>"
        assert [p.get_filename() for p in mail.iter_attachments()] == ["terms.pdf"]


class TestOversizedAttachments:
    @pytest.fixture
    async def small_channel(
        self, client: httpx.AsyncClient, tenant: Tenant, smtp_sink: Any
    ) -> dict[str, Any]:
        from tests.mail.smtp_sink import email_channel_settings

        settings = email_channel_settings(smtp_sink, fromAddress="small@acme.test", maxAttachmentBytes=10)
        return await create_channel(client, tenant, "Email", settings=settings)

    async def _draft_with_file(
        self, client: httpx.AsyncClient, tenant: Tenant, channel: dict[str, Any]
    ) -> dict[str, Any]:
        draft = await create_message(
            client, tenant.headers, channelID=channel["channelID"], incoming=False, isDraft=True,
            subject="The report", message="Here it is.", toAddress="ann@x.test",
        )  # fmt: skip
        up = await client.post(
            f"/api/TicketMessages/{draft['messageID']}/attachments",
            files={"file": ("report.csv", b"a,b\n" * 10, "text/csv")},
            headers=tenant.headers,
        )
        assert up.status_code in (200, 201), up.text
        return draft

    async def test_without_a_decision_the_409_names_the_files_and_the_decisions(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        small_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        draft = await self._draft_with_file(client, tenant, small_channel)
        for body in ({}, {"oversizedAttachmentDecision": "refuse"}):
            r = await send(client, tenant, draft["messageID"], "send-new", **body)
            assert r.status_code == 409 and r.json()["code"] == "ATTACHMENTS_TOO_LARGE", r.text
            assert "report.csv" in r.json()["detail"]
            assert r.json()["errors"][0]["field"] == "oversizedAttachmentDecision"
        assert "'links'" in (await send(client, tenant, draft["messageID"], "send-new")).json()["detail"]
        row = await stored_message(app, tenant, draft["messageID"])
        assert row is not None and row.is_draft and row.delivery_status is None  # nothing written
        await run_jobs_until_idle(app)
        assert not smtp_sink.messages

    async def test_links_send_expiring_download_links_instead(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        small_channel: dict[str, Any],
        smtp_sink: Any,
    ) -> None:
        import re

        draft = await self._draft_with_file(client, tenant, small_channel)
        r = await send(client, tenant, draft["messageID"], "send-new", oversizedAttachmentDecision="links")
        assert r.status_code == 200, r.text
        await run_jobs_until_idle(app)
        mail = parsed(smtp_sink)
        assert list(mail.iter_attachments()) == []
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        found = re.search(r"report\.csv: (\S+/api/File/link/\S+)", text)
        assert found is not None, text
        got = await client.get(_path_of(found.group(1)).rstrip("?"))
        assert got.status_code == 200 and got.content == b"a,b\n" * 10
        forged = _path_of(found.group(1)).rstrip("?")[:-3] + "AAA"
        assert (await client.get(forged)).status_code == 404

    async def test_an_expired_link_is_410(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        from datetime import timedelta

        from deskpal.attachments.links import file_link

        link = file_link("", tenant.customer_id, 1, ttl=timedelta(seconds=-1))
        r = await client.get(link)
        assert r.status_code == 410 and "expired" in r.json()["detail"]
