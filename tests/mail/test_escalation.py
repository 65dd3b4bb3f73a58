"""POST /api/TicketMessages/{ticketToken}/escalate and POST /api/TicketMessages/{messageId}/escalate-by-id."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.context import Role
from deskpal.core.jobs import JobStatus
from tests.admin.helpers import invalid, problem
from tests.mail.helpers import create_message, jobs_of, notice_address, stored_message
from tests.messages.helpers import phone
from tests.support import Tenant, run_jobs_until_idle
from tests.tickets.helpers import create_channel

ESCALATED = {"message": "Ticket escalated"}


async def _conversation(client: httpx.AsyncClient, tenant: Tenant, **ticket: Any) -> dict[str, Any]:
    """A ticket with the end user's mail, a rep's reply, then a draft and an internal note."""
    first = await create_message(client, tenant.headers, **ticket)
    into = {"ticketID": first["ticketID"]}
    reply = await create_message(client, tenant.headers, incoming=False, message="We are on it", **into)
    await create_message(client, tenant.headers, incoming=False, isDraft=True, message="draft", **into)
    await create_message(client, tenant.headers, incoming=False, isInternalNote=True, message="note", **into)
    shown = await client.get(f"/api/Tickets/{first['ticketID']}", headers=tenant.headers)
    return {"first": first, "reply": reply, "ticket": shown.json()}


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _message(client: httpx.AsyncClient, tenant: Tenant, message_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/TicketMessages/{message_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _escalated(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == ESCALATED


class TestByToken:
    async def test_the_newest_public_message_and_the_ticket_are_escalated(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        ticket = made["ticket"]
        assert ticket["escalated"] is False and ticket["aiFeedbackComments"] == []
        body = {
            "feedbackComment": "User is very upset and needs urgent help.",
            "email": "Manager@Example.com",
        }
        _escalated(await client.post(f"/api/TicketMessages/{ticket['token']}/escalate", json=body))
        reply = await _message(client, tenant, made["reply"]["messageID"])
        assert reply["isEscalated"] is True
        assert (await _message(client, tenant, made["first"]["messageID"]))["isEscalated"] is False
        shown = await _ticket(client, tenant, ticket["ticketID"])
        assert shown["escalated"] is True
        assert shown["aiFeedbackComments"] == ["User is very upset and needs urgent help."]
        row = await stored_message(app, tenant, made["reply"]["messageID"])
        assert row is not None and row.escalated_at is not None
        assert row.escalation_comment == "User is very upset and needs urgent help."
        (job,) = await jobs_of(app, tenant)
        assert job.payload == {"message_id": made["reply"]["messageID"], "address": "manager@example.com"}
        assert job.status == JobStatus.QUEUED and job.idempotency_key is not None
        assert job.idempotency_key.startswith(f"escalation:{made['reply']['messageID']}:")

    @pytest.mark.parametrize("token", ["00000000-0000-4000-8000-000000000000", "not-a-token", "x" * 64])
    async def test_a_wrong_token_is_404_and_changes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, token: str
    ) -> None:
        made = await _conversation(client, tenant)
        r = await client.post(f"/api/TicketMessages/{token}/escalate", json={"feedbackComment": "x"})
        body = problem(r, 404, "NOT_FOUND")
        assert made["ticket"]["token"] not in r.text and "ticket" in body["detail"]
        assert (await _ticket(client, tenant, made["ticket"]["ticketID"]))["escalated"] is False
        assert await jobs_of(app, tenant) == []

    async def test_a_token_in_another_spelling_still_names_its_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        _escalated(await client.post(f"/api/TicketMessages/{made['ticket']['token'].upper()}/escalate"))
        assert (await _ticket(client, tenant, made["ticket"]["ticketID"]))["escalated"] is True

    @pytest.mark.usefixtures("one_window")
    async def test_more_than_five_a_minute_per_token_is_429_with_retry_after(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        url = f"/api/TicketMessages/{made['ticket']['token']}/escalate"
        for n in range(5):
            _escalated(await client.post(url, json={"feedbackComment": f"try {n}"}))
        limited = await client.post(url, json={"feedbackComment": "one more"})
        problem(limited, 429, "RATE_LIMITED")
        respelled = made["ticket"]["token"].upper().replace("-", "")  # the same token to uuid.UUID
        problem(await client.post(f"/api/TicketMessages/{respelled}/escalate"), 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        comments = (await _ticket(client, tenant, made["ticket"]["ticketID"]))["aiFeedbackComments"]
        assert comments == [f"try {n}" for n in range(5)]

    @pytest.mark.usefixtures("one_window")
    async def test_more_than_twenty_a_minute_per_address_is_429_whatever_the_token(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for n in range(20):
            r = await client.post(f"/api/TicketMessages/guess-{n}/escalate")
            problem(r, 404)
        made = await _conversation(client, tenant)
        limited = await client.post(f"/api/TicketMessages/{made['ticket']['token']}/escalate")
        problem(limited, 429, "RATE_LIMITED")
        assert "retry-after" in limited.headers
        assert (await _ticket(client, tenant, made["ticket"]["ticketID"]))["escalated"] is False

    async def test_a_ticket_with_no_message_an_end_user_saw_is_404(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        note = await create_message(client, tenant.headers, incoming=False, isInternalNote=True, message="n")
        ticket = await _ticket(client, tenant, note["ticketID"])
        problem(await client.post(f"/api/TicketMessages/{ticket['token']}/escalate"), 404)
        assert (await _ticket(client, tenant, note["ticketID"]))["escalated"] is False


@pytest.fixture
def one_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiter's clock stands still in the middle of a minute: a slow run cannot cross into the
    next window half-way through the test."""
    from types import SimpleNamespace

    from deskpal.core import ratelimit

    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))


class TestById:
    @pytest.mark.parametrize("role", [Role.ADMIN, Role.AGENT])
    async def test_reps_who_write_escalate_one_message(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, role: Role
    ) -> None:
        made = await _conversation(client, tenant)
        first = made["first"]["messageID"]
        r = await client.post(
            f"/api/TicketMessages/{first}/escalate-by-id",
            json={"feedbackComment": "wrong answer"},
            headers=await tenant.headers_for(role),
        )
        _escalated(r)
        assert (await _message(client, tenant, first))["isEscalated"] is True
        assert (await _message(client, tenant, made["reply"]["messageID"]))["isEscalated"] is False
        shown = await _ticket(client, tenant, made["ticket"]["ticketID"])
        assert shown["escalated"] is True and shown["aiFeedbackComments"] == ["wrong answer"]
        listed = await client.get("/api/Tickets", headers=tenant.headers)
        assert listed.json()["items"][0]["aiFeedbackComments"] == ["wrong answer"]
        assert await jobs_of(app, tenant) == []  # no address in the body, none on the channel

    async def test_a_viewer_is_refused_and_nothing_changes(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        first = made["first"]["messageID"]
        r = await client.post(
            f"/api/TicketMessages/{first}/escalate-by-id", headers=await tenant.headers_for(Role.VIEWER)
        )
        problem(r, 403)
        assert (await _message(client, tenant, first))["isEscalated"] is False

    async def test_a_restricted_rep_cannot_see_an_unassigned_ticket_s_message(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        restricted = await tenant.headers_for(Role.RESTRICTED)
        r = await client.post(
            f"/api/TicketMessages/{made['first']['messageID']}/escalate-by-id", headers=restricted
        )
        problem(r, 404)

    async def test_without_credentials_it_is_401(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        made = await _conversation(client, tenant)
        problem(await client.post(f"/api/TicketMessages/{made['first']['messageID']}/escalate-by-id"), 401)

    async def test_phone_auth_escalates_messages_of_its_own_channel_only(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone_headers = await phone(client, tenant)
        _, other_phone = await phone(client, tenant)
        call = await create_message(client, phone_headers, channel="Phone", fromNumber="+3220000000")
        url = f"/api/TicketMessages/{call['messageID']}/escalate-by-id"
        problem(await client.post(url, headers=other_phone), 404)
        _escalated(await client.post(url, json={"feedbackComment": "caller angry"}, headers=phone_headers))
        assert (await _message(client, tenant, call["messageID"]))["isEscalated"] is True

    async def test_another_customer_s_message_is_404(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        first = made["first"]["messageID"]
        r = await client.post(f"/api/TicketMessages/{first}/escalate-by-id", headers=other_tenant.headers)
        problem(r, 404)
        problem(await client.post("/api/TicketMessages/999999/escalate-by-id", headers=tenant.headers), 404)
        assert (await _message(client, tenant, first))["isEscalated"] is False


class TestBodyAndNotice:
    async def test_bad_fields_are_400_naming_them(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        made = await _conversation(client, tenant)
        url = f"/api/TicketMessages/{made['first']['messageID']}/escalate-by-id"
        for body, field in (
            ({"email": "not an address"}, "email"),
            ({"email": "a@b@c"}, "email"),
            ({"feedbackComment": "x" * 4001}, "feedbackComment"),
            ({"feedbackComment": "a\x00b"}, "feedbackComment"),
        ):
            invalid(await client.post(url, json=body, headers=tenant.headers), field)
            token_url = f"/api/TicketMessages/{made['ticket']['token']}/escalate"
            invalid(await client.post(token_url, json=body), field)
        assert (await _ticket(client, tenant, made["ticket"]["ticketID"]))["escalated"] is False

    async def test_the_channel_s_escalation_address_is_the_default(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(
            client, tenant, "Email", settings={"escalationAddress": "Boss <Boss@Acme.example>"}
        )
        assert channel["settings"]["escalationAddress"] == "boss@acme.example"
        made = await _conversation(client, tenant, channelID=channel["channelID"])
        first = made["first"]["messageID"]
        _escalated(await client.post(f"/api/TicketMessages/{first}/escalate-by-id", headers=tenant.headers))
        assert await notice_address(app, tenant, first) == "boss@acme.example"
        # The body's address wins over the channel's.
        reply = made["reply"]["messageID"]
        _escalated(
            await client.post(
                f"/api/TicketMessages/{reply}/escalate-by-id",
                json={"email": "x@y.example"},
                headers=tenant.headers,
            )
        )
        assert await notice_address(app, tenant, reply) == "x@y.example"

    async def test_again_appends_the_new_comment_and_a_repeat_changes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        url = f"/api/TicketMessages/{made['first']['messageID']}/escalate-by-id"
        first = {"feedbackComment": "slow", "email": "m@x.example"}
        for body in (
            first,
            first,
            {"feedbackComment": "  "},
            {"feedbackComment": "still slow", "email": "m@x.example"},
        ):
            _escalated(await client.post(url, json=body, headers=tenant.headers))
        _escalated(
            await client.post(
                url, json={"feedbackComment": "still slow", "email": "m@x.example"}, headers=tenant.headers
            )
        )
        shown = await _ticket(client, tenant, made["ticket"]["ticketID"])
        assert shown["aiFeedbackComments"] == ["slow", "still slow"]  # the blank one keeps no comment
        jobs = await jobs_of(app, tenant)
        assert [j.payload["address"] for j in jobs] == ["m@x.example", "m@x.example"]
        assert len({j.idempotency_key for j in jobs}) == 2
        # A repeat to another address tells that address too, without keeping the comment twice.
        _escalated(
            await client.post(
                url, json={"feedbackComment": "still slow", "email": "n@x.example"}, headers=tenant.headers
            )
        )
        assert [j.payload["address"] for j in await jobs_of(app, tenant)][-1] == "n@x.example"
        shown = await _ticket(client, tenant, made["ticket"]["ticketID"])
        assert shown["aiFeedbackComments"] == ["slow", "still slow"]

    async def test_a_body_is_optional(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        made = await _conversation(client, tenant)
        _escalated(
            await client.post(
                f"/api/TicketMessages/{made['first']['messageID']}/escalate-by-id", headers=tenant.headers
            )
        )
        assert (await _ticket(client, tenant, made["ticket"]["ticketID"]))["aiFeedbackComments"] == []

    async def test_a_notice_with_no_smtp_channel_to_send_it_fails_for_good(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        made = await _conversation(client, tenant)
        r = await client.post(
            f"/api/TicketMessages/{made['first']['messageID']}/escalate-by-id",
            json={"email": "m@x.example"},
            headers=tenant.headers,
        )
        _escalated(r)
        await run_jobs_until_idle(app)
        (job,) = await jobs_of(app, tenant)
        assert job.status == JobStatus.DEAD and job.attempts == 1
        assert job.last_error is not None and "SMTP" in job.last_error
