"""A ticket's lastMessageDate, preview and lastEndUserMessageID follow its newest public message on
every path that changes the messages, and never move backwards (deskpal.messages.latest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from tests.messages.helpers import create_message, session_headers
from tests.support import Tenant, db_of
from tests.tickets.helpers import add_message, create_ticket

OLD, NEW, LATER = "2024-03-01T09:00:00Z", "2024-03-02T09:00:00Z", "2024-03-03T09:00:00Z"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def _ticket(client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _last(ticket: dict[str, Any]) -> tuple[Any, Any, Any]:
    return ticket["lastMessageDate"], ticket["preview"], ticket["lastEndUserMessageID"]


async def _conversation(client: httpx.AsyncClient, tenant: Tenant) -> tuple[int, int]:
    """A ticket whose newest message is an end user's, dated NEW; its id and that message's."""
    newest = await create_message(client, tenant.headers, message="newest words", messageDate=NEW)
    return newest["ticketID"], newest["messageID"]


# --- paths that add a message dated before the newest one ------------------------------------------


async def _create_new(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> None:
    await create_message(client, tenant.headers, ticketID=ticket_id, message="older words", messageDate=OLD)


async def _raw(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> None:
    body = {"ticketID": ticket_id, "message": "older words", "messageDate": OLD}
    r = await client.post("/api/TicketMessages", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text


async def _service(app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> None:
    # add_message: data seeding, through intake (as an import: no reopening).
    async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
        await add_message(
            Ctx.system(db, tenant.customer_id), ticket_id, message="older words", message_date=_utc(OLD)
        )


async def _published_dated_draft(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, ticket_id: int
) -> None:
    draft = await create_message(
        client,
        tenant.headers,
        ticketID=ticket_id,
        incoming=True,
        isDraft=True,
        message="older words",
        messageDate=OLD,
    )
    body = {"messageID": draft["messageID"], "isDraft": False}
    r = await client.put(f"/api/TicketMessages/{draft['messageID']}", json=body, headers=tenant.headers)
    assert r.status_code == 204, r.text


Adder = Callable[[FastAPI, httpx.AsyncClient, Tenant, int], Awaitable[None]]
OLDER_MESSAGES: dict[str, Adder] = {
    "create-new": _create_new,
    "raw": _raw,
    "add_message": _service,
    "published draft": _published_dated_draft,
}


class TestNeverBackwards:
    @pytest.mark.parametrize("path", OLDER_MESSAGES)
    async def test_an_older_message_leaves_the_last_message_alone(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, path: str
    ) -> None:
        ticket_id, newest = await _conversation(client, tenant)
        before = _last(await _ticket(client, tenant, ticket_id))
        assert before == (NEW, "newest words", newest)
        await OLDER_MESSAGES[path](app, client, tenant, ticket_id)
        assert _last(await _ticket(client, tenant, ticket_id)) == before
        listed = await client.get(f"/api/TicketMessages?ticketId={ticket_id}", headers=tenant.headers)
        assert listed.json()["totalCount"] == 2  # the older message is there, just not the newest

    async def test_a_newer_message_moves_all_three(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket_id, _ = await _conversation(client, tenant)
        later = await create_message(
            client, tenant.headers, ticketID=ticket_id, message="later", messageDate=LATER
        )
        assert _last(await _ticket(client, tenant, ticket_id)) == (LATER, "later", later["messageID"])

    async def test_an_older_end_user_message_is_last_among_end_user_messages_only(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_message(client, tenant.headers, message="question", messageDate=OLD)
        tid = first["ticketID"]
        await create_message(
            client, tenant.headers, ticketID=tid, incoming=False, message="answer", messageDate=LATER
        )
        between = await create_message(client, tenant.headers, ticketID=tid, message="more", messageDate=NEW)
        # Not the newest message, but the newest from the end user.
        assert _last(await _ticket(client, tenant, tid)) == (LATER, "answer", between["messageID"])

    async def test_a_helpdesk_message_before_a_future_dated_one(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        future = await create_message(
            client, tenant.headers, message="from the future", messageDate="2999-01-01T00:00:00Z"
        )
        jwt = await session_headers(app, tenant)
        body = {"ticket_id": str(future["ticketID"]), "type": "request", "content": "<p>now</p>"}
        r = await client.post("/helpdesk/api/messages", json=body, headers=jwt)
        assert r.status_code == 201, r.text
        got = await _ticket(client, tenant, future["ticketID"])
        assert _last(got) == ("2999-01-01T00:00:00Z", "from the future", future["messageID"])


class TestDrafts:
    async def test_publishing_an_old_draft_makes_it_the_newest(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # Written before the end user's last message, sent after it: it joins the conversation now.
        ticket = await create_ticket(client, tenant.headers)
        tid = ticket["ticketID"]
        draft = await create_message(
            client, tenant.headers, ticketID=tid, incoming=False, isDraft=True, message="reply"
        )
        await create_message(client, tenant.headers, ticketID=tid, message="are you there?")
        before = await _ticket(client, tenant, tid)
        body = {"messageID": draft["messageID"], "isDraft": False}
        r = await client.put(f"/api/TicketMessages/{draft['messageID']}", json=body, headers=tenant.headers)
        assert r.status_code == 204, r.text
        after = await _ticket(client, tenant, tid)
        assert after["preview"] == "reply"
        assert _utc(after["lastMessageDate"]) > _utc(before["lastMessageDate"])
        published = await client.get(f"/api/TicketMessages/{draft['messageID']}", headers=tenant.headers)
        assert published.json()["messageDate"] == after["lastMessageDate"]
        assert after["lastEndUserMessageID"] == before["lastEndUserMessageID"]


# --- paths that take the newest message away, or change it -----------------------------------------


async def _delete(client: httpx.AsyncClient, tenant: Tenant, message_id: int) -> None:
    r = await client.delete(f"/api/TicketMessages/{message_id}", headers=tenant.headers)
    assert r.status_code == 204, r.text


async def _unpublish(client: httpx.AsyncClient, tenant: Tenant, message_id: int) -> None:
    body = {"messageID": message_id, "isDraft": True}
    r = await client.put(f"/api/TicketMessages/{message_id}", json=body, headers=tenant.headers)
    assert r.status_code == 204, r.text


Remover = Callable[[httpx.AsyncClient, Tenant, int], Awaitable[None]]
REMOVERS: dict[str, Remover] = {"delete": _delete, "back to a draft": _unpublish}


class TestTakingTheNewestAway:
    @pytest.mark.parametrize("path", REMOVERS)
    async def test_the_next_newest_by_date_takes_over(
        self, client: httpx.AsyncClient, tenant: Tenant, path: str
    ) -> None:
        # Created in the order newer, older, newest: the next newest is by date, not by creation.
        newer = await create_message(client, tenant.headers, message="newer", messageDate=NEW)
        tid = newer["ticketID"]
        await create_message(client, tenant.headers, ticketID=tid, message="older", messageDate=OLD)
        newest = await create_message(
            client, tenant.headers, ticketID=tid, message="newest", messageDate=LATER
        )
        await REMOVERS[path](client, tenant, newest["messageID"])
        assert _last(await _ticket(client, tenant, tid)) == (NEW, "newer", newer["messageID"])

    @pytest.mark.parametrize("path", REMOVERS)
    async def test_removing_an_older_message_changes_nothing(
        self, client: httpx.AsyncClient, tenant: Tenant, path: str
    ) -> None:
        ticket_id, newest = await _conversation(client, tenant)
        older = await create_message(
            client, tenant.headers, ticketID=ticket_id, message="older", messageDate=OLD
        )
        await REMOVERS[path](client, tenant, older["messageID"])
        assert _last(await _ticket(client, tenant, ticket_id)) == (NEW, "newest words", newest)

    @pytest.mark.parametrize("path", REMOVERS)
    async def test_removing_the_only_message_empties_them(
        self, client: httpx.AsyncClient, tenant: Tenant, path: str
    ) -> None:
        ticket_id, newest = await _conversation(client, tenant)
        await REMOVERS[path](client, tenant, newest)
        assert _last(await _ticket(client, tenant, ticket_id)) == (None, None, None)

    async def test_editing_the_newest_message_changes_the_preview(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket_id, newest = await _conversation(client, tenant)
        older = await create_message(
            client, tenant.headers, ticketID=ticket_id, message="older", messageDate=OLD
        )
        for message_id, text in ((older["messageID"], "older, edited"), (newest, "newest, edited")):
            body = {"messageID": message_id, "message": text}
            r = await client.put(f"/api/TicketMessages/{message_id}", json=body, headers=tenant.headers)
            assert r.status_code == 204, r.text
        assert _last(await _ticket(client, tenant, ticket_id)) == (NEW, "newest, edited", newest)
