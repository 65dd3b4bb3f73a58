"""/api/TicketMessageTopics and POST /api/TicketMessages/{id}/correct-topics."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from deskpal.core.context import Role
from deskpal.core.db import transaction
from deskpal.messages.models import TicketMessageTopic
from tests.admin.helpers import invalid, problem
from tests.messages.helpers import create_message, phone, stored_message
from tests.support import Tenant, db_of
from tests.tickets.helpers import create_topic

TOPIC_FIELDS = {
    "ticketMessageTopicID", "messageID", "topicID", "topicName", "corrected", "correctionDate",
    "correctedByCustomerRepID", "correctedByCustomerRepName",
}  # fmt: skip
URL = "/api/TicketMessageTopics"


class TestTopicLinks:
    async def test_create_list_get_update_delete(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        msg = await create_message(client, tenant.headers)
        billing, login = (
            await create_topic(client, tenant, "Billing"),
            await create_topic(client, tenant, "Login"),
        )
        r = await client.post(
            URL, json={"messageID": msg["messageID"], "topicID": billing}, headers=tenant.headers
        )
        assert r.status_code == 201, r.text
        link = r.json()
        assert set(link) == TOPIC_FIELDS and link["topicName"] == "Billing" and link["corrected"] is False
        listed = await client.get(f"{URL}?messageId={msg['messageID']}", headers=tenant.headers)
        assert [x["ticketMessageTopicID"] for x in listed.json()] == [link["ticketMessageTopicID"]]
        detail = await client.get(f"/api/TicketMessages/{msg['messageID']}", headers=tenant.headers)
        assert [t["topicName"] for t in detail.json()["topics"]] == ["Billing"]
        one = f"{URL}/{link['ticketMessageTopicID']}"
        assert (await client.get(one, headers=tenant.headers)).json() == link
        r = await client.put(
            one, json={"messageID": msg["messageID"], "topicID": login}, headers=tenant.headers
        )
        assert r.status_code == 200 and r.json()["topicName"] == "Login"
        assert (await client.delete(one, headers=tenant.headers)).status_code == 204
        problem(await client.get(one, headers=tenant.headers), 404)

    async def test_errors(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        msg = await create_message(client, tenant.headers)
        topic = await create_topic(client, tenant, "Billing")
        body = {"messageID": msg["messageID"], "topicID": topic}
        assert (await client.post(URL, json=body, headers=tenant.headers)).status_code == 201
        problem(await client.post(URL, json=body, headers=tenant.headers), 409, "TOPIC_ALREADY_LINKED")
        invalid(await client.post(URL, json={**body, "topicID": 999999}, headers=tenant.headers), "topicID")
        invalid(
            await client.post(URL, json={"messageID": msg["messageID"]}, headers=tenant.headers), "topicID"
        )
        problem(await client.post(URL, json={**body, "messageID": 999999}, headers=tenant.headers), 404)
        invalid(await client.get(URL, headers=tenant.headers), "messageId")

    async def test_viewer_reads_but_cannot_link(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        msg = await create_message(client, tenant.headers)
        topic = await create_topic(client, tenant, "Billing")
        viewer = await tenant.headers_for(Role.VIEWER)
        body = {"messageID": msg["messageID"], "topicID": topic}
        problem(await client.post(URL, json=body, headers=viewer), 403)
        assert (await client.get(f"{URL}?messageId={msg['messageID']}", headers=viewer)).status_code == 200

    async def test_phone_auth_links_topics_on_its_own_channel_only(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone_headers = await phone(client, tenant)
        call = await create_message(client, phone_headers, channel="Phone")
        mail = await create_message(client, tenant.headers)
        topic = await create_topic(client, tenant, "Billing")
        r = await client.post(
            URL, json={"messageID": call["messageID"], "topicID": topic}, headers=phone_headers
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            URL, json={"messageID": mail["messageID"], "topicID": topic}, headers=phone_headers
        )
        problem(r, 404)
        problem(await client.get(f"{URL}?messageId={mail['messageID']}", headers=phone_headers), 404)


class TestCorrectTopics:
    async def test_replaces_links_and_records_the_correction(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        msg = await create_message(client, tenant.headers)
        a, b, c = [await create_topic(client, tenant, n) for n in ("A", "B", "C")]
        await client.post(URL, json={"messageID": msg["messageID"], "topicID": a}, headers=tenant.headers)
        url = f"/api/TicketMessages/{msg['messageID']}/correct-topics"
        r = await client.post(url, json={"topicIds": [b, c, b]}, headers=tenant.headers)
        assert r.status_code == 204, r.text
        links = (await client.get(f"{URL}?messageId={msg['messageID']}", headers=tenant.headers)).json()
        assert sorted(x["topicID"] for x in links) == [b, c]
        assert all(x["corrected"] and x["correctionDate"] for x in links)
        assert {x["correctedByCustomerRepID"] for x in links} == {tenant.admin_rep_id}
        assert all(x["correctedByCustomerRepName"] for x in links)
        stored = await stored_message(app, tenant, msg["messageID"])
        assert stored is not None and stored.ai_topics_status == "Corrected"
        detail = await client.get(f"/api/TicketMessages/{msg['messageID']}", headers=tenant.headers)
        assert detail.json()["aiTopicsStatus"] == "Corrected"

    async def test_an_unknown_topic_changes_nothing(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        msg = await create_message(client, tenant.headers)
        a = await create_topic(client, tenant, "A")
        await client.post(URL, json={"messageID": msg["messageID"], "topicID": a}, headers=tenant.headers)
        url = f"/api/TicketMessages/{msg['messageID']}/correct-topics"
        invalid(await client.post(url, json={"topicIds": [a, 999999]}, headers=tenant.headers), "topicIds")
        invalid(await client.post(url, json={"topicIds": "x"}, headers=tenant.headers), "topicIds")
        async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
            rows = (await db.scalars(select(TicketMessageTopic))).all()
        assert [(r.topic_id, r.corrected) for r in rows] == [(a, False)]

    async def test_viewer_and_phone_auth_cannot_correct(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone_headers = await phone(client, tenant)
        call = await create_message(client, phone_headers, channel="Phone")
        url = f"/api/TicketMessages/{call['messageID']}/correct-topics"
        problem(
            await client.post(url, json={"topicIds": []}, headers=await tenant.headers_for(Role.VIEWER)), 403
        )
        problem(await client.post(url, json={"topicIds": []}, headers=phone_headers), 403)
