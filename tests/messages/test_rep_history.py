"""Deleting a representative keeps the history they wrote (issue 10, item 13).

Every foreign key to customer_rep is decided here, one by one; a new one fails the first test
until it is. Then one rep does everything those keys record — a ticket assigned to them, a reply,
a note through the second API, a topic correction, an API key — is renamed and deleted, and
each place is read back through the API.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from deskpal.core.context import Role
from deskpal.models import Base
from tests.admin.helpers import bearer, login, problem, unique_email
from tests.messages.helpers import create_message, create_ticket
from tests.support import Tenant
from tests.tickets.helpers import create_topic

# (table, column) -> what deleting the rep does there, and why.
DECISIONS = {
    ("ticket", "customer_rep_id"): (
        "SET NULL",
        "the assignment is current state: the ticket goes back to the unassigned queue",
    ),
    ("ticket_message", "customer_rep_id"): ("SET NULL", "customerRepName keeps the author"),
    ("ticket_message", "created_by_rep_id"): ("SET NULL", "the second API's authorName keeps the author"),
    ("ticket_message_topic", "corrected_by_customer_rep_id"): (
        "SET NULL",
        "correctedByCustomerRepName keeps the corrector, as named when correcting",
    ),
    ("api_key", "customer_rep_id"): ("CASCADE", "a key acts as its rep: it cannot outlive it"),
}


def test_every_reference_to_a_rep_is_decided() -> None:
    found = {
        (table.name, fk.parent.name): fk.ondelete
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table.name == "customer_rep"
    }
    assert found == {place: action for place, (action, _) in DECISIONS.items()}


async def _rep(client: httpx.AsyncClient, tenant: Tenant) -> tuple[int, dict[str, str], dict[str, str]]:
    """An agent, with an API key's headers and a login token's."""
    email, password = unique_email("author"), "author-password"
    body = {"name": "Rita", "email": email, "password": password, "role": "agent"}
    created = await client.post("/api/CustomerReps", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    rep_id = created.json()["customerRepID"]
    key = await client.post(
        "/api/ApiKeys", json={"name": "k", "customerRepID": rep_id}, headers=tenant.headers
    )
    token = (await login(client, email, password)).json()["token"]
    return rep_id, bearer(key.json()["apiKey"]), bearer(token)


async def _get(client: httpx.AsyncClient, tenant: Tenant, path: str) -> Any:
    r = await client.get(path, headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()


class TestDeletedRepsHistory:
    async def test_every_place_the_rep_was_recorded_after_rename_and_delete(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        rep_id, key, token = await _rep(client, tenant)
        ticket = await create_ticket(client, key, uid="ann@example.com")
        assigned = await client.put(f"/api/Tickets/{ticket['ticketID']}/assign", headers=key)
        assert assigned.status_code == 200 and assigned.json()["customerRepID"] == rep_id, assigned.text
        reply = await create_message(
            client, key, ticketID=ticket["ticketID"], incoming=False, message="We are on it"
        )
        assert (reply["customerRepID"], reply["customerRepName"]) == (rep_id, "Rita")
        note = await client.post(
            "/helpdesk/api/messages",
            json={"ticket_id": str(ticket["ticketID"]), "type": "note", "content": "<p>internal</p>"},
            headers=token,
        )
        assert note.status_code == 201, note.text
        assert (note.json()["authorId"], note.json()["authorName"]) == (str(rep_id), "Rita")
        topic = await create_topic(client, tenant, "Delivery")
        corrected = await client.post(
            f"/api/TicketMessages/{reply['messageID']}/correct-topics",
            json={"topicIds": [topic]},
            headers=key,
        )
        assert corrected.status_code == 204, corrected.text

        # Renamed: the messages show the rep's name of now, while the rep exists.
        rep = await _get(client, tenant, f"/api/CustomerReps/{rep_id}")
        renamed = {"name": "Rita Final", "email": rep["email"], "role": "agent"}
        r = await client.put(f"/api/CustomerReps/{rep_id}", json=renamed, headers=tenant.headers)
        assert r.status_code == 200, r.text
        before = await _get(client, tenant, f"/api/TicketMessages/{reply['messageID']}")
        assert before["customerRepName"] == "Rita Final"

        assert (await client.delete(f"/api/CustomerReps/{rep_id}", headers=tenant.headers)).status_code == 204

        # Messages: the id is gone with the rep, the author's (last) name is not.
        shown = await _get(client, tenant, f"/api/TicketMessages/{reply['messageID']}")
        assert (shown["customerRepID"], shown["customerRepName"]) == (None, "Rita Final")
        assert shown["dateUpdated"] == before["dateUpdated"]  # keeping the name is no edit
        listed = await _get(client, tenant, f"/api/TicketMessages?ticketId={ticket['ticketID']}")
        by_id = {m["messageID"]: m for m in listed["items"]}
        assert by_id[reply["messageID"]]["customerRepName"] == "Rita Final"
        jwt = bearer(tenant.login_token())
        r = await client.get(f"/helpdesk/api/messages/{note.json()['id']}", headers=jwt)
        assert r.status_code == 200, r.text
        assert (r.json()["authorId"], r.json()["authorName"]) == (None, "Rita Final")
        # The topic correction keeps the name it was made under.
        links = await _get(client, tenant, f"/api/TicketMessageTopics?messageId={reply['messageID']}")
        assert [(x["correctedByCustomerRepID"], x["correctedByCustomerRepName"]) for x in links] == [
            (None, "Rita")
        ]
        # The ticket is unassigned, so that agents can pick it up, and the rep's keys are gone.
        got = await _get(client, tenant, f"/api/Tickets/{ticket['ticketID']}")
        assert (got["customerRepID"], got["customerRepName"]) == (None, None)
        agent = await tenant.headers_for(Role.AGENT)
        queue = await client.get("/api/Tickets?customerRepID=0", headers=agent)
        assert ticket["ticketID"] in [t["ticketID"] for t in queue.json()["items"]]
        problem(await client.get("/api/Topics", headers=key), 401, "UNAUTHORIZED")

    async def test_a_message_names_its_author_from_the_moment_it_is_written(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # Stored with the row, not looked up later: nothing about the rep is needed to show it.
        _, key, _ = await _rep(client, tenant)
        ticket = await create_ticket(client, key)
        outgoing = await create_message(client, key, ticketID=ticket["ticketID"], incoming=False)
        incoming = await create_message(client, key, ticketID=ticket["ticketID"], incoming=True)
        assert outgoing["customerRepName"] == "Rita"
        assert (incoming["customerRepID"], incoming["customerRepName"]) == (None, None)  # the end user's
