"""/api/TicketMessages through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from deskpal.core.context import Role
from deskpal.core.db import transaction
from deskpal.endusers.models import EndUser
from deskpal.tickets.models import TicketEndUser
from tests.admin.helpers import invalid, problem
from tests.messages.helpers import (
    create_channel,
    create_message,
    create_ticket,
    phone,
    stored_message,
    stored_ticket,
)
from tests.messages.test_html import XSS_VECTORS, assert_inert
from tests.support import Tenant, db_of

SUMMARY_FIELDS = {
    "messageID", "ticketID", "dateCreated", "dateUpdated", "messageDate", "customerID", "senderType",
    "customerRepID", "customerRepName", "channel", "channelID", "channelName", "incoming", "isDraft",
    "isInternalNote", "message", "subject", "htmlBody", "textBody", "bodyPreview", "fromAddress",
    "fromName", "toAddress", "ccAddress", "bccAddress", "fromNumber", "toNumber", "uid", "isOpened",
    "isBounced", "lastOpenDate", "openCount", "messageIdentifier", "sendPending", "sentAt",
    "deliveryStatus", "deliveryError", "bounceStatus", "bounceDiagnostic", "threadingReason",
    "isAutoReply", "replyToAddress", "aiSpamStatus",
    "aiTopicsStatus", "aiReplyStatus", "isEscalated", "replyToMessageID", "forwardFromMessageID",
    "topics", "actions", "customFieldsData",
}  # fmt: skip
DETAIL_FIELDS = SUMMARY_FIELDS | {
    "headers", "ai_GeneratedResponse", "ai_ModifiedResponse", "aiPrompt", "pageScreenshot", "pageURL",
    "additionalInfo", "emailTemplateID", "sendRequestedAt", "deliveryResponse",
    "customFieldDefinitions",
}  # fmt: skip


async def _get(client: httpx.AsyncClient, headers: dict[str, str], message_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/TicketMessages/{message_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class TestCreatedMessageIsShownAsStored:
    """A create answers without reading the message back: it must show what a GET then shows."""

    async def test_create_new_raw_and_reply_answer_what_get_shows(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, name="Support mail")
        first = await create_message(
            client,
            tenant.headers,
            channelID=channel["channelID"],
            fromAddress="ann@example.com",
            fromName="Ann",
            htmlBody="<p>Hi <b>there</b><script>x()</script></p>",
            customFieldsData={},
        )
        reply = await create_message(
            client,
            tenant.headers,
            ticketID=first["ticketID"],
            incoming=False,
            senderType="CustomerRep",
            toAddress="ann@example.com",
            message="We are on it",
            replyToMessageID=first["messageID"],
        )
        raw = await create_message(
            client, tenant.headers, path="", ticketID=first["ticketID"], isInternalNote=True, message="note"
        )
        for created in (first, reply, raw):
            assert created == await _get(client, tenant.headers, created["messageID"])
        assert first["channelName"] == "Support mail"
        assert reply["customerRepName"] and reply["customerRepID"] == tenant.admin_rep_id


class TestCreateNew:
    async def test_without_ticket_id_creates_the_ticket_and_the_end_user(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = await create_message(
            client,
            tenant.headers,
            fromAddress="Ann@Example.com",
            fromName="Ann",
            subject="Order late",
            message="Where is my order?",
        )
        assert set(body) == DETAIL_FIELDS
        assert body["senderType"] == "EndUser" and body["incoming"] is True
        assert body["customerID"] == tenant.customer_id
        ticket = await _ticket(client, tenant, body["ticketID"])
        assert ticket["subject"] == "Order late" and ticket["channelType"] == "Email"
        assert ticket["uid"] == "ann@example.com"
        assert ticket["lastEndUserMessageID"] == body["messageID"]
        assert ticket["preview"] == "Where is my order?"
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            user = (await db.scalars(select(EndUser).where(EndUser.uid == "ann@example.com"))).one()
            links = (
                await db.scalars(
                    select(TicketEndUser.ticket_id).where(TicketEndUser.end_user_id == user.end_user_id)
                )
            ).all()
        assert user.name == "Ann" and user.email == "ann@example.com"
        assert list(links) == [body["ticketID"]]

    async def test_a_phone_number_names_the_end_user(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = await create_message(client, tenant.headers, channel="WhatsApp", fromNumber="+32470000001")
        ticket = await _ticket(client, tenant, body["ticketID"])
        assert ticket["uid"] == "+32470000001" and ticket["channelType"] == "WhatsApp"
        assert [u["phone"] for u in ticket["endUsers"]] == ["+32470000001"]

    async def test_outbound_draft_from_the_reference_example(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, "Email")
        ticket = await create_ticket(client, tenant.headers, channelID=channel["channelID"])
        body = await create_message(
            client,
            tenant.headers,
            ticketID=ticket["ticketID"],
            channel="Email",
            channelID=channel["channelID"],
            incoming=False,
            isDraft=True,
            subject="Follow-up",
            message="Thanks for your question.",
        )
        assert body["isDraft"] is True and body["senderType"] == "CustomerRep"
        assert body["customerRepID"] == tenant.admin_rep_id and body["customerRepName"]
        assert body["channelName"] == "Email channel" and body["sendPending"] is False
        after = await _ticket(client, tenant, ticket["ticketID"])
        assert after["preview"] is None and after["lastMessageDate"] is None  # drafts don't move it

    async def test_reply_without_ticket_id_goes_into_the_replied_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_message(client, tenant.headers, fromAddress="bob@example.com")
        reply = await create_message(
            client, tenant.headers, incoming=False, message="On it", replyToMessageID=first["messageID"]
        )
        assert reply["ticketID"] == first["ticketID"]
        assert reply["replyToMessageID"] == first["messageID"]

    async def test_forward_draft_clears_reply_linkage(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_message(client, tenant.headers, fromAddress="bob@example.com")
        fwd = await create_message(
            client,
            tenant.headers,
            incoming=False,
            isDraft=True,
            toAddress="colleague@example.com",
            replyToMessageID=first["messageID"],
            forwardFromMessageID=first["messageID"],
        )
        assert fwd["forwardFromMessageID"] == first["messageID"]
        assert fwd["replyToMessageID"] is None
        assert fwd["ticketID"] == first["ticketID"]

    async def test_incoming_message_reopens_a_closed_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, isClosed=True, status="Closed")
        await create_message(client, tenant.headers, ticketID=ticket["ticketID"], message="still broken")
        after = await _ticket(client, tenant, ticket["ticketID"])
        assert after["isClosed"] is False and after["status"] == "Open" and after["closeDate"] is None
        assert after["isRead"] is False

    async def test_outgoing_message_leaves_a_closed_ticket_closed(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, isClosed=True, status="Closed")
        await create_message(client, tenant.headers, ticketID=ticket["ticketID"], incoming=False)
        assert (await _ticket(client, tenant, ticket["ticketID"]))["isClosed"] is True

    async def test_search_finds_the_new_message_at_once(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = await create_message(client, tenant.headers, message="the flux capacitor is leaking")
        r = await client.get("/api/Tickets?search=capacit", headers=tenant.headers)
        assert [t["ticketID"] for t in r.json()["items"]] == [body["ticketID"]]
        html = await create_message(
            client, tenant.headers, message=None, htmlBody="<p>zebra <b>crossing</b></p>"
        )
        r = await client.get("/api/Tickets?search=zebra crossing", headers=tenant.headers)
        assert [t["ticketID"] for t in r.json()["items"]] == [html["ticketID"]]

    async def test_validation_errors_name_the_fields(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        url = "/api/TicketMessages/create-new"
        h = tenant.headers
        invalid(await client.post(url, json={"channel": "Fax", "message": "x"}, headers=h), "channel")
        invalid(await client.post(url, json={"message": "no channel"}, headers=h), "channel")
        long_address = "a" * 312 + "@example.com"
        invalid(
            await client.post(url, json={"channel": "Email", "fromAddress": long_address}, headers=h),
            "fromAddress",
        )
        invalid(
            await client.post(url, json={"channel": "Email", "channelID": 999999}, headers=h), "channelID"
        )
        invalid(
            await client.post(url, json={"channel": "Email", "replyToMessageID": 999999}, headers=h),
            "replyToMessageID",
        )
        invalid(await client.post(url, json={"channel": "Email", "ticketID": "x"}, headers=h), "ticketID")
        invalid(
            await client.post(url, json={"channel": "Email", "customFieldsData": []}, headers=h),
            "customFieldsData",
        )

    async def test_custom_fields_are_validated_against_definitions(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        definition = {"name": "orderNo", "fieldType": "number", "entityType": "TicketMessage"}
        r = await client.post("/api/CustomFieldDefinitions", json=definition, headers=tenant.headers)
        assert r.status_code == 201, r.text
        bad = await client.post(
            "/api/TicketMessages/create-new",
            json={"channel": "Email", "customFieldsData": {"orderNo": "abc"}},
            headers=tenant.headers,
        )
        invalid(bad, "customFieldsData.orderNo")
        good = await create_message(client, tenant.headers, customFieldsData={"orderNo": 42})
        assert good["customFieldsData"] == {"orderNo": 42}
        assert [d["name"] for d in good["customFieldDefinitions"]] == ["orderNo"]


class TestCreateRaw:
    async def test_creates_in_an_existing_ticket(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers)
        body = await create_message(
            client,
            tenant.headers,
            path="",
            ticketID=ticket["ticketID"],
            messageIdentifier="<a@b>",
            **{"headers": "Message-ID: <a@b>"},
        )
        assert body["ticketID"] == ticket["ticketID"] and body["messageIdentifier"] == "<a@b>"
        assert body["headers"] == "Message-ID: <a@b>"

    async def test_needs_a_visible_ticket(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        url = "/api/TicketMessages"
        invalid(await client.post(url, json={"message": "x"}, headers=tenant.headers), "ticketID")
        problem(await client.post(url, json={"ticketID": 999999}, headers=tenant.headers), 404)


class TestList:
    async def test_pages_sorts_and_uses_the_envelope(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        first = await create_message(client, tenant.headers, message="one")
        tid = first["ticketID"]
        ids = [first["messageID"]]
        for text in ("two", "three"):
            ids.append(
                (await create_message(client, tenant.headers, ticketID=tid, message=text))["messageID"]
            )
        r = await client.get(f"/api/TicketMessages?ticketId={tid}&pageSize=2", headers=tenant.headers)
        body = r.json()
        assert set(body) == {"items", "totalCount", "totalPages"}
        assert body["totalCount"] == 3 and body["totalPages"] == 2
        assert [m["messageID"] for m in body["items"]] == ids[:2]
        assert set(body["items"][0]) == SUMMARY_FIELDS
        r = await client.get(
            f"/api/TicketMessages?ticketId={tid}&pageNumber=1&pageSize=10&sortBy=messageID&sortOrder=desc",
            headers=tenant.headers,
        )
        assert [m["messageID"] for m in r.json()["items"]] == ids[::-1]

    async def test_needs_a_ticket_the_caller_sees(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        invalid(await client.get("/api/TicketMessages", headers=tenant.headers), "ticketId")
        invalid(
            await client.get("/api/TicketMessages?ticketId=1&sortBy=nope", headers=tenant.headers), "sortBy"
        )
        invalid(
            await client.get("/api/TicketMessages?ticketId=1&pageSize=101", headers=tenant.headers),
            "pageSize",
        )
        problem(await client.get("/api/TicketMessages?ticketId=999999", headers=tenant.headers), 404)
        mine = await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id)
        agent = await tenant.headers_for(Role.AGENT)
        problem(await client.get(f"/api/TicketMessages?ticketId={mine['ticketID']}", headers=agent), 404)


class TestUpdate:
    async def test_changes_only_the_given_fields(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        msg = await create_message(
            client, tenant.headers, incoming=False, isDraft=True, subject="s", message="m"
        )
        url = f"/api/TicketMessages/{msg['messageID']}"
        body = {
            "messageID": msg["messageID"],
            "ai_ModifiedResponse": "better answer",
            "toAddress": "ann@example.com",
            "ccAddress": "cc@example.com",
            "additionalInfo": "vip",
            "message": "edited",
        }
        r = await client.put(url, json=body, headers=tenant.headers)
        assert r.status_code == 204, r.text
        got = await _get(client, tenant.headers, msg["messageID"])
        assert got["ai_ModifiedResponse"] == "better answer" and got["toAddress"] == "ann@example.com"
        assert got["message"] == "edited" and got["bodyPreview"] == "edited" and got["subject"] == "s"
        assert got["isDraft"] is True and got["dateUpdated"] is not None

    async def test_publishing_a_draft_moves_the_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        draft = await create_message(
            client,
            tenant.headers,
            ticketID=ticket["ticketID"],
            incoming=False,
            isDraft=True,
            message="answer",
        )
        url = f"/api/TicketMessages/{draft['messageID']}"
        r = await client.put(
            url, json={"messageID": draft["messageID"], "isDraft": False}, headers=tenant.headers
        )
        assert r.status_code == 204, r.text
        assert (await _ticket(client, tenant, ticket["ticketID"]))["preview"] == "answer"

    async def test_route_id_must_match(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        msg = await create_message(client, tenant.headers)
        url = f"/api/TicketMessages/{msg['messageID']}"
        invalid(
            await client.put(url, json={"messageID": msg["messageID"] + 1}, headers=tenant.headers),
            "messageID",
        )
        invalid(await client.put(url, json={"subject": "x"}, headers=tenant.headers), "messageID")
        problem(
            await client.put(
                "/api/TicketMessages/999999", json={"messageID": 999999}, headers=tenant.headers
            ),
            404,
        )


class TestDelete:
    async def test_delete_then_404_and_the_ticket_forgets_it(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_message(client, tenant.headers, message="first")
        second = await create_message(client, tenant.headers, ticketID=first["ticketID"], message="second")
        r = await client.delete(f"/api/TicketMessages/{second['messageID']}", headers=tenant.headers)
        assert r.status_code == 204
        problem(await client.get(f"/api/TicketMessages/{second['messageID']}", headers=tenant.headers), 404)
        ticket = await _ticket(client, tenant, first["ticketID"])
        assert ticket["lastEndUserMessageID"] == first["messageID"] and ticket["preview"] == "first"
        r = await client.get("/api/Tickets?search=second", headers=tenant.headers)
        assert r.json()["items"] == []


class TestDraft:
    async def test_returns_the_newest_draft_reply(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        msg = await create_message(client, tenant.headers)
        url = f"/api/TicketMessages/{msg['messageID']}/draft"
        problem(await client.get(url, headers=tenant.headers), 404, "NO_DRAFT")
        for text in ("old draft", "new draft"):
            await create_message(
                client,
                tenant.headers,
                incoming=False,
                isDraft=True,
                message=text,
                replyToMessageID=msg["messageID"],
            )
        r = await client.get(url, headers=tenant.headers)
        assert r.status_code == 200 and r.json()["message"] == "new draft"
        assert set(r.json()) == DETAIL_FIELDS


class TestInternalNotes:
    async def test_notes_do_not_move_the_ticket_and_are_never_sent(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_message(client, tenant.headers, message="question")
        note = await create_message(
            client,
            tenant.headers,
            ticketID=first["ticketID"],
            incoming=True,
            isInternalNote=True,
            message="psst",
        )
        assert note["isInternalNote"] is True and note["sendPending"] is False
        ticket = await _ticket(client, tenant, first["ticketID"])
        assert ticket["preview"] == "question" and ticket["lastEndUserMessageID"] == first["messageID"]
        listed = await client.get(f"/api/TicketMessages?ticketId={first['ticketID']}", headers=tenant.headers)
        assert note["messageID"] in [m["messageID"] for m in listed.json()["items"]]  # reps see notes

    async def test_phone_auth_neither_writes_nor_reads_notes(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone_headers = await phone(client, tenant)
        msg = await create_message(client, phone_headers, channel="Phone", message="caller said hi")
        note = await create_message(client, tenant.headers, ticketID=msg["ticketID"], isInternalNote=True)
        problem(await client.get(f"/api/TicketMessages/{note['messageID']}", headers=phone_headers), 404)
        r = await client.post(
            "/api/TicketMessages/create-new",
            json={"ticketID": msg["ticketID"], "isInternalNote": True, "message": "x"},
            headers=phone_headers,
        )
        problem(r, 403, "INTERNAL_NOTE_REPS_ONLY")
        r = await client.get(f"/api/TicketMessageTopics?messageId={note['messageID']}", headers=phone_headers)
        problem(r, 404)


class TestHtmlSafety:
    async def test_xss_vectors_come_back_inert(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        payload = "<p>Hello <b>there</b></p>" + "".join(XSS_VECTORS)
        body = await create_message(client, tenant.headers, message=None, htmlBody=payload)
        assert_inert(body["htmlBody"])
        assert "<b>there</b>" in body["htmlBody"]
        stored = await stored_message(app, tenant, body["messageID"])
        assert stored is not None and stored.html_body == body["htmlBody"]
        assert body["textBody"].startswith("Hello there")
        # Plain text: what was markup is gone; escaped text stays text (clients escape it again).
        assert "<b>" not in body["bodyPreview"] and "onerror" not in body["textBody"]
        assert len(body["bodyPreview"]) <= 200

    async def test_given_text_is_kept(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = await create_message(client, tenant.headers, htmlBody="<p>html</p>", textBody="plain")
        assert body["textBody"] == "plain" and body["bodyPreview"] == "plain"


class TestAccess:
    async def test_roles(self, app: object, client: httpx.AsyncClient, tenant: Tenant) -> None:
        viewer, agent, restricted = [
            await tenant.headers_for(r) for r in (Role.VIEWER, Role.AGENT, Role.RESTRICTED)
        ]
        mine = await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id)
        unassigned = await create_ticket(client, tenant.headers)
        in_mine = await create_message(client, tenant.headers, ticketID=mine["ticketID"])
        in_unassigned = await create_message(client, tenant.headers, ticketID=unassigned["ticketID"])
        # viewer: reads everything, writes nothing
        await _get(client, viewer, in_mine["messageID"])
        problem(
            await client.post("/api/TicketMessages/create-new", json={"channel": "Email"}, headers=viewer),
            403,
        )
        problem(await client.delete(f"/api/TicketMessages/{in_mine['messageID']}", headers=viewer), 403)
        # agent: unassigned tickets and their own; restricted: only their own
        await _get(client, agent, in_unassigned["messageID"])
        problem(await client.get(f"/api/TicketMessages/{in_mine['messageID']}", headers=agent), 404)
        problem(
            await client.get(f"/api/TicketMessages/{in_unassigned['messageID']}", headers=restricted), 404
        )
        own = await create_message(client, restricted, message="restricted writes")
        await _get(client, restricted, own["messageID"])  # the new ticket is theirs
        r = await client.delete(f"/api/TicketMessages/{in_unassigned['messageID']}", headers=agent)
        assert r.status_code == 204

    async def test_phone_auth_only_reaches_its_own_channel(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id, phone_headers = await phone(client, tenant)
        _, other_phone = await phone(client, tenant)
        msg = await create_message(client, phone_headers, channel="Phone", fromNumber="+3220000000")
        assert msg["channelID"] == channel_id
        await _get(client, phone_headers, msg["messageID"])
        problem(await client.get(f"/api/TicketMessages/{msg['messageID']}", headers=other_phone), 404)
        email = await create_message(client, tenant.headers)
        problem(await client.get(f"/api/TicketMessages/{email['messageID']}", headers=phone_headers), 404)
        r = await client.put(
            f"/api/TicketMessages/{msg['messageID']}",
            json={"messageID": msg["messageID"], "additionalInfo": "from the call"},
            headers=phone_headers,
        )
        assert r.status_code == 204, r.text
        # phone auth may not list (TicketAccess) nor delete
        problem(
            await client.get(f"/api/TicketMessages?ticketId={msg['ticketID']}", headers=phone_headers), 403
        )
        problem(await client.delete(f"/api/TicketMessages/{msg['messageID']}", headers=phone_headers), 403)
        r = await client.post(
            "/api/TicketMessages/create-new",
            json={"channel": "Phone", "channelID": 999999, "message": "x"},
            headers=phone_headers,
        )
        problem(r, 403)

    async def test_phone_auth_opens_phone_tickets_in_its_channel(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id, phone_headers = await phone(client, tenant)
        r = await client.post(
            "/api/TicketMessages/create-new",
            json={"message": "a call", "fromNumber": "+3221111111"},
            headers=phone_headers,
        )
        assert r.status_code == 201, r.text
        msg = r.json()
        assert (msg["channel"], msg["channelID"]) == ("Phone", channel_id)
        ticket = await _ticket(client, tenant, msg["ticketID"])
        assert (ticket["channelType"], ticket["channelID"]) == ("Phone", channel_id)
        # an Email message cannot come through a Phone channel's token
        r = await client.post(
            "/api/TicketMessages/create-new", json={"channel": "Email", "message": "x"}, headers=phone_headers
        )
        invalid(r, "channel")

    async def test_no_token_and_bad_tokens_are_401(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        msg = await create_message(client, tenant.headers)
        url = f"/api/TicketMessages/{msg['messageID']}"
        problem(await client.get(url), 401)
        for token in ("dpk_nope", "dpp_nope", "not-a-jwt"):
            problem(await client.get(url, headers={"Authorization": f"Bearer {token}"}), 401)


async def test_stored_rows_match_the_response(app: object, client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = await create_message(
        client, tenant.headers, fromAddress="x@example.com", pageURL="https://shop.example/p"
    )
    stored = await stored_message(app, tenant, body["messageID"])
    assert stored is not None
    assert stored.page_url == "https://shop.example/p" and stored.from_address == "x@example.com"
    ticket = await stored_ticket(app, tenant, body["ticketID"])
    assert ticket.last_end_user_message_id == body["messageID"]
