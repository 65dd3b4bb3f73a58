"""Moving a message an agent disagrees with, and a mail's inline images and attachments."""

from __future__ import annotations

import base64
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
)
from tests.messages.helpers import messages_of
from tests.support import Tenant, run_jobs_until_idle


async def filed(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, channel: dict[str, Any], raw: bytes
) -> dict[str, Any]:
    answer = await received(client, tenant, channel["channelID"], raw)
    await run_jobs_until_idle(app)
    return await inbound_mail(client, tenant, answer["inboundMailID"])


async def move(client: httpx.AsyncClient, tenant: Tenant, message_id: int, body: Any) -> httpx.Response:
    return await client.post(f"/api/TicketMessages/{message_id}/move", json=body, headers=tenant.headers)


class TestMove:
    async def test_a_message_moved_to_another_ticket_leaves_both_tickets_current(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        first = await filed(
            app, client, tenant, mail_channel, raw_mail(subject="Order 1234", body="Where is it?")
        )
        # The same question, written again without any reference: threading opened a new ticket.
        second = await filed(
            app,
            client,
            tenant,
            mail_channel,
            raw_mail(
                subject="Still waiting",
                body="Any news on 1234?",
                headers={"Date": "Sun, 06 Dec 2026 11:00:00 +0100"},
            ),
        )
        assert first["ticketID"] != second["ticketID"]
        r = await move(client, tenant, second["messageID"], {"ticketID": first["ticketID"]})
        assert r.status_code == 200, r.text
        moved = r.json()
        assert moved["ticketID"] == first["ticketID"]
        assert moved["threadingReason"].startswith("moved by ") and moved["threadingReason"].endswith(
            f"from #{second['ticketID']}"
        )
        target = await ticket(client, tenant, first["ticketID"])
        assert target["lastMessageDate"].startswith("2026-12-06T10:00:00")
        assert "Any news on 1234?" in target["preview"]
        assert len(await messages_of(client, tenant, first["ticketID"])) == 2
        source = await ticket(client, tenant, second["ticketID"])
        assert source["lastMessageDate"] is None and source["preview"] is None
        assert await messages_of(client, tenant, second["ticketID"]) == []

    async def test_a_message_moved_to_a_new_ticket_opens_it(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        first = await filed(
            app, client, tenant, mail_channel, raw_mail(subject="Invoice", message_id=new_id())
        )
        reply = raw_mail(
            subject="Re: Invoice", body="A different question: can I change my address?",
            headers={"In-Reply-To": first["messageIdentifier"]},
        )  # fmt: skip
        second = await filed(app, client, tenant, mail_channel, reply)
        assert second["ticketID"] == first["ticketID"]
        r = await move(client, tenant, second["messageID"], {"newTicket": True})
        assert r.status_code == 200, r.text
        new_ticket = await ticket(client, tenant, r.json()["ticketID"])
        assert new_ticket["ticketID"] != first["ticketID"] and new_ticket["subject"] == "Re: Invoice"
        assert new_ticket["uid"] == CUSTOMER and new_ticket["channelID"] == mail_channel["channelID"]
        assert "change my address" in new_ticket["preview"]
        old = await ticket(client, tenant, first["ticketID"])
        assert "change my address" not in (old["preview"] or "")
        # The customer answers the moved mail's thread: the answer follows it.
        answer = raw_mail(
            subject="Re: Invoice", body="Here it is", headers={"In-Reply-To": second["messageIdentifier"]}
        )
        third = await filed(app, client, tenant, mail_channel, answer)
        assert third["ticketID"] == new_ticket["ticketID"]

    async def test_bad_move_requests_are_400_naming_ticket_id(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        mail = await filed(app, client, tenant, mail_channel, raw_mail())
        for body in (
            {},
            {"ticketID": mail["ticketID"], "newTicket": True},
            {"ticketID": 2**40},
            {"ticketID": mail["ticketID"]},
        ):
            r = await move(client, tenant, mail["messageID"], body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["errors"][0]["field"] == "ticketID"


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def html_mail_with_inline_image() -> bytes:
    image = base64.encodebytes(PNG).decode("ascii").replace("\n", "\r\n")
    return (
        f"From: Zoë Customer <{CUSTOMER}>\r\nTo: {SUPPORT}\r\nSubject: Screenshot\r\n"
        f"Date: Sun, 06 Dec 2026 10:00:00 +0100\r\nMessage-ID: {new_id()}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/related; boundary="REL"\r\n\r\n'
        "--REL\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<html><body><p>See the error:</p><img src="cid:shot.1@customer.test" alt="shot"></body></html>\r\n'
        "--REL\r\nContent-Type: image/png; name=shot.png\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-ID: <shot.1@customer.test>\r\nContent-Disposition: inline; filename=shot.png\r\n\r\n"
        f"{image}\r\n--REL--\r\n"
    ).encode()


class TestFiles:
    async def test_an_inline_image_is_an_attachment_and_the_html_shows_it_through_the_file_endpoint(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        mail = await filed(app, client, tenant, mail_channel, html_mail_with_inline_image())
        assert mail["status"] == "stored", mail
        r = await client.get(f"/api/TicketMessages/{mail['messageID']}/attachments", headers=tenant.headers)
        [file] = r.json()
        assert file["contentId"] == "shot.1@customer.test"
        assert file["isEndUserProvided"] is True and file["fileName"] == "shot.png"
        html = (await message(client, tenant, mail["messageID"]))["htmlBody"]
        assert "cid:" not in html and f"/api/File/{file['accessToken']}" in html
        image = await client.get(f"/api/File/{file['accessToken']}")
        assert image.status_code == 200 and image.content == PNG

    async def test_parts_unpacked_from_a_container_name_it(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, mail_channel: dict[str, Any]
    ) -> None:
        """What the parser unpacked (a winmail.dat's files, an attached mail's parts) records the
        attachment it came from: filed from a ParsedMail as the parser hands it over."""
        from deskpal.channels.models import Channel
        from deskpal.core.context import Ctx
        from deskpal.core.db import transaction
        from deskpal.email.inbound import filing
        from deskpal.email.inbound.parsed import ParsedAttachment, ParsedMail
        from deskpal.email.inbound.receive import receive
        from deskpal.storage import StoredBlob
        from tests.support import db_of

        parts = [
            ParsedAttachment("winmail.dat", "application/ms-tnef", b"TNEF"),
            ParsedAttachment("report.pdf", "application/pdf", b"%PDF-1.4", converted_from=0),
            ParsedAttachment("broken.txt", "text/plain", b"x", converted_from=7),
        ]
        mail = ParsedMail(
            message_id=new_id(), subject="Outlook", visible_text="See attached", attachments=parts
        )
        storage = app.state.storage
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            ctx = Ctx.system(db, tenant.customer_id)
            channel = await db.get(Channel, mail_channel["channelID"])
            assert channel is not None
            row = await receive(ctx, channel, raw_mail(), source="import", storage=storage)

            async def once(data: bytes) -> Any:
                yield data

            blobs: list[StoredBlob] = [
                await storage.put(f"attachments/{tenant.customer_id}", once(p.data), max_bytes=100)
                for p in parts
            ]
            await filing.file_mail(ctx, storage, row, channel, mail, blobs)
            message_id = row.message_id
        r = await client.get(f"/api/TicketMessages/{message_id}/attachments", headers=tenant.headers)
        files = {f["fileName"]: f for f in r.json()}
        container = files["winmail.dat"]["ticketMessageAttachmentID"]
        assert files["report.pdf"]["convertedFromAttachmentID"] == container
        assert files["winmail.dat"]["convertedFromAttachmentID"] is None
        assert files["broken.txt"]["convertedFromAttachmentID"] is None
        assert all(f["isEndUserProvided"] for f in files.values())
