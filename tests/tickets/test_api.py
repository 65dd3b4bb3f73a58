"""The Tickets API, through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from deskpal.core.context import Role
from deskpal.core.db import transaction
from deskpal.endusers.models import EndUser
from deskpal.messages.models import TicketMessage
from deskpal.tickets.models import Ticket, TicketTopic
from tests.support import Tenant, db_of
from tests.tickets.helpers import add_messages, create_channel, create_ticket, create_topic

READ_FIELDS = {
    "ticketID", "token", "dateCreated", "status", "subject", "channelType", "channelID", "channelName",
    "customerRepID", "customerRepName", "endUserID", "uid", "escalated", "isSpam", "isImportant",
    "isClosed", "isProcessed", "isRead", "closeDate", "endDate", "followUpDate", "lastMessageDate",
    "preview", "summary", "twilio_CallSid", "fromNumber", "toNumber", "customFieldsData",
    "aiFeedbackComments", "endUsers", "topics", "hasRecording", "lastEndUserMessageID",
}  # fmt: skip


async def _stored(app: object, tenant: Tenant, ticket_id: int) -> Ticket | None:
    async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
        return await db.get(Ticket, ticket_id)


async def _phone(client: httpx.AsyncClient, tenant: Tenant) -> tuple[int, dict[str, str]]:
    channel = await create_channel(client, tenant, "Phone")
    return channel["channelID"], {"Authorization": f"Bearer {channel['phoneAuthToken']}"}


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [t["ticketID"] for t in response.json()["items"]]


class TestCreateTicket:
    async def test_created_ticket_uses_the_seed_json_names(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, "Email")
        body = await create_ticket(
            client,
            tenant.headers,
            channelID=channel["channelID"],
            customerRepID=tenant.admin_rep_id,
            uid="ann@example.com",
            twilio_CallSid="CA123",
            customFieldsData={"priority": "urgent"},
        )
        assert set(body) == READ_FIELDS
        assert body["channelName"] == "Email channel"
        assert body["customerRepName"]
        assert body["aiFeedbackComments"] == [] and body["topics"] == []
        assert body["twilio_CallSid"] == "CA123"
        assert body["customFieldsData"] == {"priority": "urgent"}
        assert [u["uid"] for u in body["endUsers"]] == ["ann@example.com"]
        assert body["endUserID"] == body["endUsers"][0]["endUserID"]
        assert body["hasRecording"] is False and body["lastEndUserMessageID"] is None
        assert len(body["token"]) == 36

    @pytest.mark.parametrize("field", ["status", "subject", "channelType"])
    async def test_missing_required_field_is_400_naming_it(
        self, client: httpx.AsyncClient, tenant: Tenant, field: str
    ) -> None:
        body = {"status": "Open", "subject": "s", "channelType": "Email"}
        del body[field]
        response = await client.post("/api/Tickets", json=body, headers=tenant.headers)
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == [field]

    @pytest.mark.parametrize(("field", "value"), [("channelType", "x" * 21), ("uid", "u" * 255)])
    async def test_overlong_field_is_400_naming_it(
        self, client: httpx.AsyncClient, tenant: Tenant, field: str, value: str
    ) -> None:
        body = {"status": "Open", "subject": "s", "channelType": "Email", field: value}
        response = await client.post("/api/Tickets", json=body, headers=tenant.headers)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == field

    async def test_limits_are_inclusive(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = await create_ticket(client, tenant.headers, channelType="x" * 20, uid="u" * 254)
        assert body["channelType"] == "x" * 20

    async def test_unknown_channel_is_400_naming_channel_id(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = {"status": "Open", "subject": "s", "channelType": "Email", "channelID": 999}
        response = await client.post("/api/Tickets", json=body, headers=tenant.headers)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "channelID"

    async def test_custom_fields_are_validated_against_definitions(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        definition = {"name": "priority", "fieldType": "select", "options": ["low", "high"], "required": True}
        created = await client.post("/api/CustomFieldDefinitions", json=definition, headers=tenant.headers)
        assert created.status_code == 201, created.text
        base = {"status": "Open", "subject": "s", "channelType": "Email"}
        bad = await client.post(
            "/api/Tickets", json={**base, "customFieldsData": {"priority": "urgent"}}, headers=tenant.headers
        )
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "customFieldsData.priority"
        missing = await client.post("/api/Tickets", json=base, headers=tenant.headers)
        assert missing.status_code == 400
        ok = await create_ticket(client, tenant.headers, customFieldsData={"priority": "high"})
        assert ok["customFieldsData"] == {"priority": "high"}

    async def test_naive_dates_are_taken_as_utc(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = await create_ticket(client, tenant.headers, endDate="2024-04-01T10:00:00")
        assert body["endDate"] == "2024-04-01T10:00:00Z"

    async def test_phone_auth_creates_tickets_in_its_channel(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel_id, phone = await _phone(client, tenant)
        body = await create_ticket(client, phone, channelType="Phone", fromNumber="+3212345")
        assert body["channelID"] == channel_id

    async def test_phone_auth_cannot_create_in_another_channel(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone = await _phone(client, tenant)
        other = await create_channel(client, tenant, "Email")
        body = {"status": "Open", "subject": "s", "channelType": "Phone", "channelID": other["channelID"]}
        response = await client.post("/api/Tickets", json=body, headers=phone)
        assert response.status_code == 403

    async def test_viewer_cannot_create_ticket(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        body = {"status": "Open", "subject": "s", "channelType": "Email"}
        response = await client.post("/api/Tickets", json=body, headers=await tenant.headers_for(Role.VIEWER))
        assert response.status_code == 403

    async def test_restricted_rep_owns_the_ticket_it_creates(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = await create_ticket(client, await tenant.headers_for(Role.RESTRICTED))
        assert body["customerRepID"] == tenant.rep_ids[Role.RESTRICTED]

    async def test_agent_cannot_create_ticket_assigned_to_another_rep(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        body = {
            "status": "Open",
            "subject": "s",
            "channelType": "Email",
            "customerRepID": tenant.admin_rep_id,
        }
        response = await client.post("/api/Tickets", json=body, headers=await tenant.headers_for(Role.AGENT))
        assert response.status_code == 403
        assert response.json()["code"] == "ASSIGNMENT_NOT_ALLOWED"

    async def test_no_token_is_401(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        response = await client.post(
            "/api/Tickets", json={"status": "Open", "subject": "s", "channelType": "x"}
        )
        assert response.status_code == 401


class TestGetTicket:
    @pytest.mark.parametrize(
        ("role", "assigned_to", "visible"),
        [
            (Role.ADMIN, "other", True),
            (Role.VIEWER, "other", True),
            (Role.AGENT, "self", True),
            (Role.AGENT, "nobody", True),
            (Role.AGENT, "other", False),
            (Role.RESTRICTED, "self", True),
            (Role.RESTRICTED, "nobody", False),
            (Role.RESTRICTED, "other", False),
        ],
    )
    async def test_access_matrix(
        self, client: httpx.AsyncClient, tenant: Tenant, role: Role, assigned_to: str, visible: bool
    ) -> None:
        headers = await tenant.headers_for(role)
        other = await tenant.key_for(Role.AGENT if role is not Role.AGENT else Role.RESTRICTED)
        assert other
        other_id = tenant.rep_ids[Role.AGENT if role is not Role.AGENT else Role.RESTRICTED]
        rep = {"self": tenant.rep_ids.get(role, tenant.admin_rep_id), "nobody": None, "other": other_id}
        ticket = await create_ticket(client, tenant.headers, customerRepID=rep[assigned_to])
        response = await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=headers)
        assert response.status_code == (200 if visible else 404)
        listed = await client.get("/api/Tickets", headers=headers)
        assert _ids(listed) == ([ticket["ticketID"]] if visible else [])

    async def test_phone_auth_is_refused(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        _, phone = await _phone(client, tenant)
        ticket = await create_ticket(client, phone, channelType="Phone")
        response = await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=phone)
        assert response.status_code == 403

    async def test_bad_token_is_401(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        response = await client.get("/api/Tickets/1", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401

    async def test_missing_ticket_is_404(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        assert (await client.get("/api/Tickets/12345", headers=tenant.headers)).status_code == 404


class TestListFilters:
    async def test_status_is_repeatable(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        a = await create_ticket(client, tenant.headers, status="Open")
        b = await create_ticket(client, tenant.headers, status="Pending")
        await create_ticket(client, tenant.headers, status="Closed")
        response = await client.get("/api/Tickets?status=Open&status=Pending", headers=tenant.headers)
        assert sorted(_ids(response)) == sorted([a["ticketID"], b["ticketID"]])

    async def test_channel_ids_are_repeatable(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        c1, c2, c3 = [(await create_channel(client, tenant, "Email"))["channelID"] for _ in range(3)]
        a = await create_ticket(client, tenant.headers, channelID=c1)
        b = await create_ticket(client, tenant.headers, channelID=c2)
        await create_ticket(client, tenant.headers, channelID=c3)
        response = await client.get(f"/api/Tickets?channelIDs={c1}&channelIDs={c2}", headers=tenant.headers)
        assert sorted(_ids(response)) == sorted([a["ticketID"], b["ticketID"]])

    async def test_customer_rep_id_and_zero_for_unassigned(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mine = await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id)
        nobody = await create_ticket(client, tenant.headers)
        by_rep = await client.get(f"/api/Tickets?customerRepID={tenant.admin_rep_id}", headers=tenant.headers)
        assert _ids(by_rep) == [mine["ticketID"]]
        assert _ids(await client.get("/api/Tickets?customerRepID=0", headers=tenant.headers)) == [
            nobody["ticketID"]
        ]

    @pytest.mark.parametrize(
        ("field", "param", "value", "other"),
        [
            ("channelType", "channelType", "Chat", "Email"),
            ("uid", "uid", "ann@example.com", "bob@example.com"),
            ("isSpam", "isSpam", True, False),
            ("isClosed", "isClosed", True, False),
        ],
    )
    async def test_simple_filters(
        self, client: httpx.AsyncClient, tenant: Tenant, field: str, param: str, value: Any, other: Any
    ) -> None:
        def body(v: Any) -> dict[str, Any]:
            # A closed ticket's status is Closed (docs/tickets.md).
            return {field: v, "status": "Closed" if v else "Open"} if field == "isClosed" else {field: v}

        hit = await create_ticket(client, tenant.headers, **body(value))
        miss = await create_ticket(client, tenant.headers, **body(other))
        as_param = str(value).lower() if isinstance(value, bool) else value
        assert _ids(await client.get("/api/Tickets", params={param: as_param}, headers=tenant.headers)) == [
            hit["ticketID"]
        ]
        other_param = str(other).lower() if isinstance(other, bool) else other
        assert _ids(
            await client.get("/api/Tickets", params={param: other_param}, headers=tenant.headers)
        ) == [miss["ticketID"]]

    async def test_end_user_id(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ann = await create_ticket(client, tenant.headers, uid="ann@example.com")
        await create_ticket(client, tenant.headers, uid="bob@example.com")
        response = await client.get(f"/api/Tickets?endUserID={ann['endUserID']}", headers=tenant.headers)
        assert _ids(response) == [ann["ticketID"]]

    async def test_future_follow_ups_are_hidden_unless_asked(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        later = await create_ticket(client, tenant.headers, followUpDate=future)
        due = await create_ticket(client, tenant.headers, followUpDate=past)
        assert _ids(await client.get("/api/Tickets", headers=tenant.headers)) == [due["ticketID"]]
        both = await client.get("/api/Tickets?includeFollowUp=true", headers=tenant.headers)
        assert sorted(_ids(both)) == sorted([later["ticketID"], due["ticketID"]])

    async def test_total_count_leaves_out_future_follow_ups_under_every_filter(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # The count is "all minus those with a future follow-up": check it against the items.
        agent = await tenant.headers_for(Role.AGENT)
        future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        for status in ("Open", "Pending"):
            for follow_up in (None, past, future):
                for rep in (None, tenant.admin_rep_id):
                    await create_ticket(
                        client, tenant.headers, status=status, followUpDate=follow_up, customerRepID=rep
                    )
        await create_ticket(client, tenant.headers, followUpDate=future, isProcessed=False)
        for headers, query, expected in [
            (tenant.headers, {}, 8),
            (tenant.headers, {"status": "Open"}, 4),
            (tenant.headers, {"status": "Open", "includeFollowUp": "true"}, 6),
            (agent, {"status": "Pending"}, 2),
            (agent, {"includeFollowUp": "true"}, 6),
        ]:
            response = await client.get("/api/Tickets", params={**query, "pageSize": 100}, headers=headers)
            body = response.json()
            assert (body["totalCount"], len(body["items"])) == (expected, expected), query

    async def test_unprocessed_tickets_are_not_listed_but_readable(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        intake = await create_ticket(client, tenant.headers, isProcessed=False)
        assert _ids(await client.get("/api/Tickets", headers=tenant.headers)) == []
        response = await client.get(f"/api/Tickets/{intake['ticketID']}", headers=tenant.headers)
        assert response.status_code == 200

    async def test_paging_envelope(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for _ in range(5):
            await create_ticket(client, tenant.headers)
        response = await client.get("/api/Tickets?pageNumber=2&pageSize=2", headers=tenant.headers)
        body = response.json()
        assert body["totalCount"] == 5 and body["totalPages"] == 3 and len(body["items"]) == 2
        default = (await client.get("/api/Tickets", headers=tenant.headers)).json()
        assert len(default["items"]) == 5

    @pytest.mark.parametrize(
        "query",
        ["pageSize=101", "pageNumber=0", "sortBy=nope", "sortOrder=up", "isSpam=maybe", "channelIDs=x",
         "customerRepID=-1", "sortBy=relevance", "search=%21%21"],
    )  # fmt: skip
    async def test_bad_query_is_400_naming_the_parameter(
        self, client: httpx.AsyncClient, tenant: Tenant, query: str
    ) -> None:
        response = await client.get(f"/api/Tickets?{query}", headers=tenant.headers)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["field"].split(".")[0] == query.split("=")[0]


DATES = ["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z"]


class TestListSorting:
    @pytest.mark.parametrize(
        ("sort_by", "field", "values"),
        [
            ("status", "status", ["B", "A", "C"]),
            ("subject", "subject", ["beta", "alpha", "gamma"]),
            ("followUpDate", "followUpDate", DATES),
            ("closeDate", "closeDate", DATES),
            ("lastMessageDate", "lastMessageDate", DATES),
        ],
    )  # fmt: skip
    async def test_sort_by_field_both_ways(
        self,
        app: object,
        client: httpx.AsyncClient,
        tenant: Tenant,
        sort_by: str,
        field: str,
        values: list[str],
    ) -> None:
        ids = {}
        for v in values:
            if field == "lastMessageDate":  # kept from the messages: a message of that date sets it
                ids[v] = (await create_ticket(client, tenant.headers))["ticketID"]
                await add_messages(app, tenant, ids[v], "hi", message_date=datetime.fromisoformat(v))
                continue
            extra = {"status": "Closed"} if field == "closeDate" else {}  # only a closed ticket has one
            ids[v] = (await create_ticket(client, tenant.headers, **{field: v}, **extra))["ticketID"]
        ascending = [ids[v] for v in sorted(values)]
        params = {"sortBy": sort_by, "includeFollowUp": "true"}
        desc = await client.get("/api/Tickets", params=params, headers=tenant.headers)
        assert _ids(desc) == ascending[::-1]  # default order is desc
        asc = await client.get("/api/Tickets", params={**params, "sortOrder": "asc"}, headers=tenant.headers)
        assert _ids(asc) == ascending

    @pytest.mark.parametrize("sort_by", [None, "ticketID", "dateCreated"])
    async def test_default_and_creation_sorts_are_newest_first(
        self, client: httpx.AsyncClient, tenant: Tenant, sort_by: str | None
    ) -> None:
        ids = [(await create_ticket(client, tenant.headers))["ticketID"] for _ in range(3)]
        params = {"sortBy": sort_by} if sort_by else {}
        assert _ids(await client.get("/api/Tickets", params=params, headers=tenant.headers)) == ids[::-1]


class TestSearch:
    async def test_search_finds_message_text_with_prefixes_and_folded_accents(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        a = await create_ticket(client, tenant.headers)
        b = await create_ticket(client, tenant.headers)
        await add_messages(app, tenant, a["ticketID"], "Ma crème brûlée est trop sucrée")
        await add_messages(app, tenant, b["ticketID"], "Cannot reset my password")
        for query, expected in [
            ("creme brulee", [a]),
            ("CRÈME", [a]),
            ("brû", [a]),
            ("passw", [b]),
            ("reset password", [b]),
            ("password crème", []),
        ]:
            response = await client.get("/api/Tickets", params={"search": query}, headers=tenant.headers)
            assert _ids(response) == [t["ticketID"] for t in expected], query

    async def test_search_ranks_better_matches_first(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        weak = await create_ticket(client, tenant.headers)
        strong = await create_ticket(client, tenant.headers)
        await add_messages(app, tenant, weak["ticketID"], "invoice " + "lorem ipsum dolor " * 30)
        await add_messages(app, tenant, strong["ticketID"], "invoice invoice invoice overdue invoice")
        response = await client.get("/api/Tickets?search=invoice", headers=tenant.headers)
        assert _ids(response) == [strong["ticketID"], weak["ticketID"]]
        by_date = await client.get("/api/Tickets?search=invoice&sortBy=dateCreated", headers=tenant.headers)
        assert _ids(by_date) == [strong["ticketID"], weak["ticketID"]]
        oldest = await client.get(
            "/api/Tickets?search=invoice&sortBy=dateCreated&sortOrder=asc", headers=tenant.headers
        )
        assert _ids(oldest) == [weak["ticketID"], strong["ticketID"]]

    async def test_search_combines_with_filters_and_visibility(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        theirs = await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id)
        open_ = await create_ticket(client, tenant.headers)
        closed = await create_ticket(client, tenant.headers, status="Closed")
        for t in (theirs, open_, closed):
            await add_messages(app, tenant, t["ticketID"], "printer on fire")
        response = await client.get("/api/Tickets?search=printer&isClosed=false", headers=agent)
        assert _ids(response) == [open_["ticketID"]]
        assert response.json()["totalCount"] == 1

    async def test_search_never_sees_another_tenant(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = await create_ticket(client, other_tenant.headers)
        await add_messages(app, other_tenant, theirs["ticketID"], "confidential merger plans")
        response = await client.get("/api/Tickets?search=merger", headers=tenant.headers)
        assert _ids(response) == []

    async def test_index_follows_deletes_and_rollbacks(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        await add_messages(app, tenant, ticket["ticketID"], "kangaroo")
        with pytest.raises(RuntimeError):
            async with transaction(db_of(app), customer_id=tenant.customer_id) as db:
                from deskpal.core.context import Ctx
                from tests.tickets.helpers import add_message

                await add_message(Ctx.system(db, tenant.customer_id), ticket["ticketID"], message="wombat")
                raise RuntimeError("roll back")
        assert _ids(await client.get("/api/Tickets?search=wombat", headers=tenant.headers)) == []
        assert _ids(await client.get("/api/Tickets?search=kangaroo", headers=tenant.headers)) == [
            ticket["ticketID"]
        ]
        assert (
            await client.delete(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)
        ).status_code == 204
        assert _ids(await client.get("/api/Tickets?search=kangaroo", headers=tenant.headers)) == []

    async def test_search_operators_are_plain_words(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        await add_messages(app, tenant, ticket["ticketID"], "error NEAR the AND gate")
        for query in ['"error', "error)", "near(error", "and & or | !gate", "error*", "-gate:*"]:
            response = await client.get("/api/Tickets", params={"search": query}, headers=tenant.headers)
            assert response.status_code == 200, (query, response.text)


class TestSearchCandidates:
    """A search ranks the newest search.CANDIDATES matching messages of the tickets the other
    filters select (here made small)."""

    @pytest.fixture(autouse=True)
    def few_candidates(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from deskpal.tickets import search

        monkeypatch.setattr(search, "CANDIDATES", 3)

    async def _matching(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant, n: int, **kw: Any
    ) -> list[int]:
        ids = []
        for _ in range(n):
            t = await create_ticket(client, tenant.headers, **kw)
            await add_messages(app, tenant, t["ticketID"], "the router keeps rebooting")
            ids.append(t["ticketID"])
        return ids

    async def test_a_broad_search_ranks_and_counts_its_newest_matches(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ids = await self._matching(app, client, tenant, 5)
        response = await client.get("/api/Tickets?search=router&sortBy=ticketID", headers=tenant.headers)
        assert _ids(response) == ids[:1:-1]
        assert (response.json()["totalCount"], response.json()["totalPages"]) == (3, 1)

    async def test_pages_of_a_search_are_cut_from_the_ranked_hits(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ids = await self._matching(app, client, tenant, 3)
        pages = [
            _ids(
                await client.get(
                    f"/api/Tickets?search=router&pageSize=2&pageNumber={n}", headers=tenant.headers
                )
            )
            for n in (1, 2, 3)
        ]
        # Equal scores tie by id, newest first.
        assert pages == [ids[:0:-1], ids[:1], []]
        asc = await client.get("/api/Tickets?search=router&sortOrder=asc&pageSize=2", headers=tenant.headers)
        assert _ids(asc) == ids[:2]

    async def test_filters_and_visibility_apply_before_the_cut(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        older = await self._matching(app, client, tenant, 2)  # unassigned: the agent sees them
        await self._matching(app, client, tenant, 3, customerRepID=tenant.admin_rep_id)
        response = await client.get("/api/Tickets?search=router", headers=agent)
        assert sorted(_ids(response)) == older
        closed = await self._matching(app, client, tenant, 1, status="Closed")
        await self._matching(app, client, tenant, 3)
        response = await client.get("/api/Tickets?search=router&isClosed=true", headers=tenant.headers)
        assert _ids(response) == closed

    async def test_another_tenants_newer_matches_do_not_crowd_out_ours(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        ours = await self._matching(app, client, tenant, 1)
        await self._matching(app, client, other_tenant, 4)
        assert _ids(await client.get("/api/Tickets?search=router", headers=tenant.headers)) == ours


class TestMessagesKeepTicketsCurrent:
    async def test_last_message_fields_follow_new_messages(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        from deskpal.messages.models import SenderType

        ticket = await create_ticket(client, tenant.headers, uid="ann@example.com")
        [first] = await add_messages(app, tenant, ticket["ticketID"], "Hello, my order is late")
        await add_messages(
            app,
            tenant,
            ticket["ticketID"],
            "We are on it",
            incoming=False,
            sender_type=SenderType.CUSTOMER_REP,
        )
        await add_messages(
            app, tenant, ticket["ticketID"], "secret note", is_internal_note=True, incoming=False
        )
        body = (await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)).json()
        assert body["lastEndUserMessageID"] == first
        assert body["preview"] == "We are on it"
        assert body["lastMessageDate"] is not None

    async def test_a_message_uid_links_its_end_user(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        await add_messages(app, tenant, ticket["ticketID"], "hi", uid="+32470000000")
        body = (await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)).json()
        assert body["uid"] == "+32470000000"
        assert [u["uid"] for u in body["endUsers"]] == ["+32470000000"]


class TestReplaceTicket:
    async def test_put_replaces_fields_and_answers_204(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, isImportant=True)
        body = {"status": "Pending", "subject": "New subject", "channelType": "Chat", "escalated": True}
        response = await client.put(f"/api/Tickets/{ticket['ticketID']}", json=body, headers=tenant.headers)
        assert response.status_code == 204, response.text
        stored = await _stored(app, tenant, ticket["ticketID"])
        assert stored is not None
        assert (stored.status, stored.subject, stored.channel_type) == ("Pending", "New subject", "Chat")
        assert stored.escalated is True and stored.is_important is False

    async def test_closing_stamps_the_close_date(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers)
        body = {"status": "Closed", "subject": "s", "channelType": "Email", "isClosed": True}
        await client.put(f"/api/Tickets/{ticket['ticketID']}", json=body, headers=tenant.headers)
        got = (await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)).json()
        assert got["isClosed"] is True and got["closeDate"] is not None

    @pytest.mark.parametrize(
        ("role", "target", "status"),
        [
            (Role.AGENT, "self", 204),
            (Role.AGENT, "admin", 403),
            (Role.RESTRICTED, "admin", 403),
            (Role.RESTRICTED, "nobody", 403),
            (Role.ADMIN, "agent", 204),
            (Role.VIEWER, "nobody", 403),
        ],
    )
    async def test_assignment_is_limited_by_role(
        self, client: httpx.AsyncClient, tenant: Tenant, role: Role, target: str, status: int
    ) -> None:
        headers = await tenant.headers_for(role)
        await tenant.key_for(Role.AGENT)
        owner = tenant.rep_ids.get(role) if role is Role.RESTRICTED else None
        ticket = await create_ticket(client, tenant.headers, customerRepID=owner)
        rep = {
            "self": tenant.rep_ids.get(role),
            "admin": tenant.admin_rep_id,
            "agent": tenant.rep_ids[Role.AGENT],
            "nobody": None,
        }[target]
        body = {"status": "Open", "subject": "s", "channelType": "Email", "customerRepID": rep}
        response = await client.put(f"/api/Tickets/{ticket['ticketID']}", json=body, headers=headers)
        assert response.status_code == status, response.text

    async def test_assigning_an_unknown_rep_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers)
        body = {"status": "Open", "subject": "s", "channelType": "Email", "customerRepID": 9999}
        response = await client.put(f"/api/Tickets/{ticket['ticketID']}", json=body, headers=tenant.headers)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "customerRepID"

    async def test_fields_the_server_also_writes_change_only_when_named(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, "Chat")
        ticket = await create_ticket(
            client,
            tenant.headers,
            channelID=channel["channelID"],
            channelType="Chat",
            customerRepID=tenant.admin_rep_id,
            uid="ann@example.com",
            fromNumber="+3211111111",
        )
        url = f"/api/Tickets/{ticket['ticketID']}"
        base = {"status": "Open", "subject": "s", "channelType": "Chat"}
        assert (await client.put(url, json=base, headers=tenant.headers)).status_code == 204
        kept = await _stored(app, tenant, ticket["ticketID"])
        assert kept is not None
        assert (kept.customer_rep_id, kept.channel_id, kept.uid, kept.from_number) == (
            tenant.admin_rep_id,
            channel["channelID"],
            "ann@example.com",
            "+3211111111",
        )
        named = {**base, "channelType": "Email", "customerRepID": None, "channelID": None, "uid": "bob"}
        assert (await client.put(url, json=named, headers=tenant.headers)).status_code == 204
        written = await _stored(app, tenant, ticket["ticketID"])
        assert written is not None
        assert (written.customer_rep_id, written.channel_id, written.uid, written.channel_type) == (
            None,
            None,
            "bob",
            "Email",
        )


PATCH = {"Content-Type": "application/json-patch+json"}
STATUS_X = {"op": "replace", "path": "/status", "value": "X"}


class TestPatchTicket:
    async def _patch(
        self, client: httpx.AsyncClient, headers: dict[str, str], ticket_id: int, ops: list[dict[str, Any]]
    ) -> httpx.Response:
        import json

        return await client.patch(
            f"/api/Tickets/{ticket_id}", content=json.dumps(ops), headers={**headers, **PATCH}
        )

    async def test_patch_applies_operations(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers, customFieldsData={"a": "1"})
        response = await self._patch(
            client,
            tenant.headers,
            ticket["ticketID"],
            [
                {"op": "replace", "path": "/status", "value": "Pending"},
                {"op": "add", "path": "/customFieldsData/b", "value": "2"},
                {"op": "test", "path": "/subject", "value": "Login not working"},
                {"op": "copy", "from": "/subject", "path": "/summary"},
            ],
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "Pending" and body["summary"] == "Login not working"
        assert body["customFieldsData"] == {"a": "1", "b": "2"}

    @pytest.mark.parametrize(
        ("ops", "field"),
        [
            ([STATUS_X, {"op": "replace", "path": "/channelType", "value": "y" * 21}], "channelType"),
            ([STATUS_X, {"op": "test", "path": "/subject", "value": "nope"}], "subject"),
            ([{"op": "replace", "path": "/nope", "value": 1}], "nope"),
            ([{"op": "add", "path": "/ticketID", "value": 7}], "ticketID"),
            ([{"op": "remove", "path": "/status"}], "status"),
            ([{"op": "jump", "path": "/status"}], "0.op"),
        ],
    )  # fmt: skip
    async def test_failing_patch_changes_nothing(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant, ops: list[dict[str, Any]], field: str
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        response = await self._patch(client, tenant.headers, ticket["ticketID"], ops)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["field"] == field
        stored = await _stored(app, tenant, ticket["ticketID"])
        assert stored is not None and stored.status == "Open"

    async def test_phone_auth_patches_its_channel_but_cannot_move_it(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone = await _phone(client, tenant)
        other = await create_channel(client, tenant, "Email")
        ticket = await create_ticket(client, phone, channelType="Phone")
        ok = await self._patch(
            client, phone, ticket["ticketID"], [{"op": "replace", "path": "/status", "value": "Ringing"}]
        )
        assert ok.status_code == 200 and ok.json()["status"] == "Ringing"
        moved = await self._patch(
            client,
            phone,
            ticket["ticketID"],
            [{"op": "replace", "path": "/channelID", "value": other["channelID"]}],
        )
        assert moved.status_code == 403
        assert moved.json()["code"] == "CHANNEL_CHANGE_NOT_ALLOWED"

    async def test_phone_auth_cannot_reach_other_channels(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone = await _phone(client, tenant)
        ticket = await create_ticket(client, tenant.headers)
        response = await self._patch(
            client, phone, ticket["ticketID"], [{"op": "replace", "path": "/status", "value": "x"}]
        )
        assert response.status_code == 404

    @pytest.mark.parametrize(
        ("field", "value"), [("lastMessageDate", "2000-01-01T00:00:00Z"), ("preview", "forged")]
    )
    async def test_fields_kept_from_the_messages_are_not_writable(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant, field: str, value: str
    ) -> None:
        ticket = await create_ticket(client, tenant.headers)
        await add_messages(app, tenant, ticket["ticketID"], "hello")
        before = (await client.get(f"/api/Tickets/{ticket['ticketID']}", headers=tenant.headers)).json()
        response = await self._patch(
            client,
            tenant.headers,
            ticket["ticketID"],
            [{"op": "replace", "path": f"/{field}", "value": value}],
        )
        assert response.status_code == 400, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
        # Unchanged (a test op, or another field's change) is fine.
        same = [
            {"op": "test", "path": f"/{field}", "value": before[field]},
            {"op": "replace", "path": "/subject", "value": "renamed"},
        ]
        ok = await self._patch(client, tenant.headers, ticket["ticketID"], same)
        assert ok.status_code == 200, ok.text
        assert ok.json()[field] == before[field] and ok.json()["subject"] == "renamed"

    async def test_viewer_cannot_patch(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers)
        viewer = await tenant.headers_for(Role.VIEWER)
        response = await self._patch(
            client, viewer, ticket["ticketID"], [{"op": "replace", "path": "/status", "value": "x"}]
        )
        assert response.status_code == 403


class TestDeleteTicket:
    async def test_delete_is_204_then_404_and_takes_messages_and_links(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        topic = await create_topic(client, tenant, "Billing")
        ticket = await create_ticket(client, tenant.headers, uid="ann@example.com")
        await add_messages(app, tenant, ticket["ticketID"], "hello")
        bulk = {"ticketIDs": [ticket["ticketID"]], "action": "updatetopics", "topicIds": [topic]}
        assert (await client.put("/api/Tickets/bulk", json=bulk, headers=tenant.headers)).status_code == 204
        url = f"/api/Tickets/{ticket['ticketID']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert (await client.delete(url, headers=tenant.headers)).status_code == 404
        assert (await client.get(url, headers=tenant.headers)).status_code == 404
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert await db.scalar(select(func.count(TicketMessage.message_id))) == 0
            assert await db.scalar(select(func.count(TicketTopic.topic_id))) == 0

    async def test_agent_cannot_delete_another_reps_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id)
        agent = await tenant.headers_for(Role.AGENT)
        assert (await client.delete(f"/api/Tickets/{ticket['ticketID']}", headers=agent)).status_code == 404


class TestBulkUpdate:
    async def _bulk(self, client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
        return await client.put("/api/Tickets/bulk", json=body, headers=headers)

    async def _get(self, client: httpx.AsyncClient, tenant: Tenant, ticket_id: int) -> dict[str, Any]:
        response = await client.get(f"/api/Tickets/{ticket_id}", headers=tenant.headers)
        return response.json()  # type: ignore[no-any-return]

    @pytest.mark.parametrize(
        ("action", "start", "field", "expected"),
        [
            ("close", {}, "isClosed", True),
            ("open", {"isClosed": True, "status": "Closed"}, "isClosed", False),
            ("invertstate", {}, "isClosed", True),
            ("invertstate", {"isClosed": True, "status": "Closed"}, "isClosed", False),
            ("spam", {}, "isSpam", True),
            ("notspam", {"isSpam": True}, "isSpam", False),
            ("read", {}, "isRead", True),
        ],
    )
    async def test_state_actions(
        self,
        client: httpx.AsyncClient,
        tenant: Tenant,
        action: str,
        start: dict[str, Any],
        field: str,
        expected: bool,
    ) -> None:
        ids = [(await create_ticket(client, tenant.headers, **start))["ticketID"] for _ in range(2)]
        response = await self._bulk(client, tenant.headers, ticketIDs=ids, action=action)
        assert response.status_code == 204, response.text
        for ticket_id in ids:
            body = await self._get(client, tenant, ticket_id)
            assert body[field] is expected
            if field == "isClosed":
                assert body["status"] == ("Closed" if expected else "Open")
                assert (body["closeDate"] is not None) is expected

    async def test_the_seed_example_closes_several_tickets(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ids = [(await create_ticket(client, tenant.headers))["ticketID"] for _ in range(2)]
        response = await client.put(
            "/api/Tickets/bulk", json={"ticketIDs": ids, "action": "close"}, headers=tenant.headers
        )
        assert response.status_code == 204

    async def test_customer_rep_id_null_preserves_zero_unassigns_positive_assigns(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = (await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id))["ticketID"]
        await self._bulk(client, tenant.headers, ticketIDs=[ticket], action="read", customerRepID=None)
        assert (await self._get(client, tenant, ticket))["customerRepID"] == tenant.admin_rep_id
        await self._bulk(client, tenant.headers, ticketIDs=[ticket], action="read", customerRepID=0)
        assert (await self._get(client, tenant, ticket))["customerRepID"] is None
        await tenant.key_for(Role.AGENT)
        agent_id = tenant.rep_ids[Role.AGENT]
        await self._bulk(client, tenant.headers, ticketIDs=[ticket], action="assign", customerRepID=agent_id)
        assert (await self._get(client, tenant, ticket))["customerRepID"] == agent_id

    async def test_one_invisible_ticket_refuses_the_whole_request(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        mine = (await create_ticket(client, tenant.headers))["ticketID"]
        theirs = (await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id))["ticketID"]
        response = await self._bulk(client, agent, ticketIDs=[mine, theirs], action="close")
        assert response.status_code == 404
        assert str(theirs) in response.json()["detail"]
        assert (await self._get(client, tenant, mine))["isClosed"] is False

    async def test_a_forbidden_assignment_refuses_the_whole_request(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        ids = [(await create_ticket(client, tenant.headers))["ticketID"] for _ in range(2)]
        response = await self._bulk(
            client, agent, ticketIDs=ids, action="close", customerRepID=tenant.admin_rep_id
        )
        assert response.status_code == 403
        for ticket_id in ids:
            body = await self._get(client, tenant, ticket_id)
            assert body["isClosed"] is False and body["customerRepID"] is None

    @pytest.mark.parametrize("action", ["detectspam", "detecttopics", "executeactions"])
    async def test_ai_actions_are_not_available_yet(
        self, client: httpx.AsyncClient, tenant: Tenant, action: str
    ) -> None:
        ticket = (await create_ticket(client, tenant.headers))["ticketID"]
        response = await self._bulk(client, tenant.headers, ticketIDs=[ticket], action=action)
        assert response.status_code == 422
        assert response.json()["code"] == "AI_NOT_AVAILABLE"

    async def test_update_topics_replaces_topic_links(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        billing, login = (
            await create_topic(client, tenant, "Billing"),
            await create_topic(client, tenant, "Login"),
        )
        ticket = (await create_ticket(client, tenant.headers))["ticketID"]
        for topics, names in [([billing, login], ["Billing", "Login"]), ([login], ["Login"]), ([], [])]:
            response = await self._bulk(
                client, tenant.headers, ticketIDs=[ticket], action="updatetopics", topicIds=topics
            )
            assert response.status_code == 204
            assert (await self._get(client, tenant, ticket))["topics"] == names

    async def test_update_topics_needs_existing_topic_ids(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ticket = (await create_ticket(client, tenant.headers))["ticketID"]
        missing = await self._bulk(client, tenant.headers, ticketIDs=[ticket], action="updatetopics")
        assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "topicIds"
        unknown = await self._bulk(
            client, tenant.headers, ticketIDs=[ticket], action="updatetopics", topicIds=[999]
        )
        assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "topicIds"

    async def test_delete_and_deletecleanup(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        a = (await create_ticket(client, tenant.headers, uid="ann@example.com"))["ticketID"]
        b = (await create_ticket(client, tenant.headers, uid="bob@example.com"))["ticketID"]
        await create_ticket(client, tenant.headers, uid="bob@example.com")
        assert (await self._bulk(client, tenant.headers, ticketIDs=[a], action="delete")).status_code == 204
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert await db.scalar(select(func.count(EndUser.end_user_id))) == 2
        assert (
            await self._bulk(client, tenant.headers, ticketIDs=[b], action="deletecleanup")
        ).status_code == 204
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            # ann lost her last ticket earlier, by plain delete: cleanup only looks at the deleted ones.
            uids = sorted((await db.scalars(select(EndUser.uid))).all())
        assert uids == ["ann@example.com", "bob@example.com"]
        assert (await client.get(f"/api/Tickets/{b}", headers=tenant.headers)).status_code == 404

    async def test_deletecleanup_removes_end_users_left_without_tickets(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        a = (await create_ticket(client, tenant.headers, uid="ann@example.com"))["ticketID"]
        assert (
            await self._bulk(client, tenant.headers, ticketIDs=[a], action="deletecleanup")
        ).status_code == 204
        async with transaction(db_of(app), write=False, customer_id=tenant.customer_id) as db:
            assert await db.scalar(select(func.count(EndUser.end_user_id))) == 0

    @pytest.mark.parametrize(
        "body",
        [{"action": "close"}, {"ticketIDs": [], "action": "close"}, {"ticketIDs": [1], "action": "explode"},
         {"ticketIDs": [1], "action": "close", "customerRepID": -1}, {"ticketIDs": ["x"], "action": "close"}],
    )  # fmt: skip
    async def test_bad_request_is_400(
        self, client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]
    ) -> None:
        response = await self._bulk(client, tenant.headers, **body)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"].split(".")[0] in {"ticketIDs", "action", "customerRepID"}

    async def test_viewer_cannot_bulk_update(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = (await create_ticket(client, tenant.headers))["ticketID"]
        viewer = await tenant.headers_for(Role.VIEWER)
        assert (await self._bulk(client, viewer, ticketIDs=[ticket], action="close")).status_code == 403


class TestAssign:
    async def test_assigns_to_the_calling_rep(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        ticket = await create_ticket(client, tenant.headers)
        response = await client.put(f"/api/Tickets/{ticket['ticketID']}/assign", headers=agent)
        assert response.status_code == 200, response.text
        assert response.json()["customerRepID"] == tenant.rep_ids[Role.AGENT]

    async def test_phone_ticket_records_the_forward(
        self, app: object, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        channel = await create_channel(client, tenant, "Phone", settings={"forwardNumber": "+3211111111"})
        ticket = await create_ticket(
            client, tenant.headers, channelType="Phone", channelID=channel["channelID"]
        )
        url = f"/api/Tickets/{ticket['ticketID']}/assign"
        assert (await client.put(url, headers=tenant.headers)).status_code == 200
        stored = await _stored(app, tenant, ticket["ticketID"])
        assert stored is not None and stored.forwarded_to_number == "+3211111111"
        response = await client.put(url, json={"forwardNumber": "+3222222222"}, headers=tenant.headers)
        assert response.status_code == 200
        stored = await _stored(app, tenant, ticket["ticketID"])
        assert stored is not None and stored.forwarded_to_number == "+3222222222"

    async def test_agent_cannot_take_another_reps_ticket(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        agent = await tenant.headers_for(Role.AGENT)
        ticket = await create_ticket(client, tenant.headers, customerRepID=tenant.admin_rep_id)
        assert (
            await client.put(f"/api/Tickets/{ticket['ticketID']}/assign", headers=agent)
        ).status_code == 404

    async def test_viewer_cannot_assign(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers)
        viewer = await tenant.headers_for(Role.VIEWER)
        assert (
            await client.put(f"/api/Tickets/{ticket['ticketID']}/assign", headers=viewer)
        ).status_code == 403


class TestHistorySummary:
    async def test_summarises_earlier_tickets_of_the_same_uid(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        old = await create_ticket(client, tenant.headers, uid="ann@example.com", subject="Broken printer")
        await create_ticket(client, tenant.headers, uid="bob@example.com", subject="Not ann")
        current = await create_ticket(client, tenant.headers, uid="ann@example.com")
        response = await client.get(
            f"/api/Tickets/{current['ticketID']}/history-summary", headers=tenant.headers
        )
        assert response.status_code == 200
        text = response.json()
        assert isinstance(text, str)
        assert "1 earlier ticket" in text and f"#{old['ticketID']}" in text and "Broken printer" in text
        assert "Not ann" not in text

    async def test_ticket_without_uid_has_no_history(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        ticket = await create_ticket(client, tenant.headers)
        response = await client.get(
            f"/api/Tickets/{ticket['ticketID']}/history-summary", headers=tenant.headers
        )
        assert response.status_code == 200 and "no uid" in response.json()

    async def test_phone_auth_reads_history_of_its_channel_only(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        _, phone = await _phone(client, tenant)
        mine = await create_ticket(client, phone, channelType="Phone", uid="+3200")
        other = await create_ticket(client, tenant.headers, uid="+3200")
        ok = await client.get(f"/api/Tickets/{mine['ticketID']}/history-summary", headers=phone)
        assert ok.status_code == 200 and "No earlier tickets" in ok.json()
        denied = await client.get(f"/api/Tickets/{other['ticketID']}/history-summary", headers=phone)
        assert denied.status_code == 404


class TestCreateChatTicket:
    async def _chat(self, client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
        return await create_channel(
            client, tenant, "Chat", allowedHostnames=["shop.example.com", "*.example.org"], **fields
        )

    @pytest.mark.parametrize(
        "headers",
        [{"Origin": "https://shop.example.com"}, {"Referer": "https://help.example.org/page?x=1"}],
    )
    async def test_anonymous_chat_from_an_allowed_host(
        self, client: httpx.AsyncClient, tenant: Tenant, headers: dict[str, str]
    ) -> None:
        channel = await self._chat(client, tenant)
        body = {"token": channel["token"], "message": "Hi, where is my parcel?", "email": "ann@example.com"}
        response = await client.post("/api/Tickets/createchatticket", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == {"ticketID", "token"}
        ticket = (await client.get(f"/api/Tickets/{created['ticketID']}", headers=tenant.headers)).json()
        assert ticket["channelID"] == channel["channelID"] and ticket["channelType"] == "Chat"
        assert ticket["token"] == created["token"] and ticket["uid"] == "ann@example.com"
        assert ticket["lastEndUserMessageID"] is not None
        found = await client.get("/api/Tickets?search=parcel", headers=tenant.headers)
        assert _ids(found) == [created["ticketID"]]

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Origin": "https://evil.example"}, {"Origin": "https://example.org"}, {"Origin": "null"},
         {"Referer": "not a url"}],
    )  # fmt: skip
    async def test_other_hosts_are_403(
        self, client: httpx.AsyncClient, tenant: Tenant, headers: dict[str, str]
    ) -> None:
        channel = await self._chat(client, tenant)
        body = {"token": channel["token"], "message": "hi"}
        response = await client.post("/api/Tickets/createchatticket", json=body, headers=headers)
        assert response.status_code == 403

    async def test_unknown_or_non_chat_token_is_403(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        email = await create_channel(client, tenant, "Email", allowedHostnames=["shop.example.com"])
        for token in ["nope", email["token"]]:
            response = await client.post(
                "/api/Tickets/createchatticket",
                json={"token": token, "message": "hi"},
                headers={"Origin": "https://shop.example.com"},
            )
            assert response.status_code == 403

    async def test_rate_limited_per_address(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        from deskpal.tickets.api import CHAT_LIMIT_PER_ADDRESS

        channel = await self._chat(client, tenant)
        body = {"token": channel["token"], "message": "hi"}
        statuses = [
            (
                await client.post(
                    "/api/Tickets/createchatticket", json=body, headers={"Origin": "https://shop.example.com"}
                )
            ).status_code
            for _ in range(CHAT_LIMIT_PER_ADDRESS + 1)
        ]
        assert statuses[:-1] == [201] * CHAT_LIMIT_PER_ADDRESS and statuses[-1] == 429

    async def test_missing_message_is_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        response = await client.post("/api/Tickets/createchatticket", json={"token": "x"})
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "message"


class TestOtherTenant:
    async def test_bulk_with_another_tenants_ids_is_404_and_changes_nothing(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = (await create_ticket(client, other_tenant.headers))["ticketID"]
        mine = (await create_ticket(client, tenant.headers))["ticketID"]
        response = await client.put(
            "/api/Tickets/bulk", json={"ticketIDs": [mine, theirs], "action": "close"}, headers=tenant.headers
        )
        assert response.status_code == 404
        for headers, ticket_id in [(tenant.headers, mine), (other_tenant.headers, theirs)]:
            body = (await client.get(f"/api/Tickets/{ticket_id}", headers=headers)).json()
            assert body["isClosed"] is False

    async def test_lists_and_filters_show_only_own_tickets(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await create_ticket(client, other_tenant.headers, uid="ann@example.com")
        mine = await create_ticket(client, tenant.headers, uid="ann@example.com")
        response = await client.get("/api/Tickets?uid=ann@example.com", headers=tenant.headers)
        assert _ids(response) == [mine["ticketID"]] and response.json()["totalCount"] == 1

    async def test_cannot_link_another_tenants_channel_or_rep(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        channel = await create_channel(client, other_tenant, "Email")
        for field, value in [
            ("channelID", channel["channelID"]),
            ("customerRepID", other_tenant.admin_rep_id),
        ]:
            body = {"status": "Open", "subject": "s", "channelType": "Email", field: value}
            response = await client.post("/api/Tickets", json=body, headers=tenant.headers)
            assert response.status_code == 400 and response.json()["errors"][0]["field"] == field
