"""GET and POST /api/TicketMessages/unsubscribejobad: one-click unsubscribe from a job ad's mail."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from deskpal.core.context import Ctx
from deskpal.core.db import transaction
from deskpal.email import tracking
from tests.mail.helpers import create_message, outgoing, stored_message, suppressions
from tests.support import Tenant, db_of

CONFIRMED = "You will no longer receive mail about this job ad."
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


async def _job_ad_mail(
    client: httpx.AsyncClient,
    tenant: Tenant,
    job_ad: Any = "JA-42",
    to: str = "Jane <Jane@X.example>, bob@y.example",
) -> dict[str, Any]:
    return await outgoing(client, tenant, toAddress=to, customFieldsData={"jobAdID": job_ad})


async def _link(app: FastAPI, tenant: Tenant, message_id: int) -> str:
    row = await stored_message(app, tenant, message_id)
    assert row is not None
    url = tracking.unsubscribe_url(app.state.settings.public_url, row)
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == app.state.settings.public_url
    return f"{parts.path}?{parts.query}"


def _confirmed(response: httpx.Response, job_ad: str = "JA-42") -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert CONFIRMED in response.text and f"<code>{job_ad}</code>" in response.text
    assert "no-store" in response.headers["cache-control"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "src=" not in response.text and "href=" not in response.text  # nothing loaded from anywhere


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "not valid" in response.text and CONFIRMED not in response.text


class TestLink:
    async def test_only_job_ad_mail_has_a_link_and_it_is_stable(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant)
        assert await _link(app, tenant, mail["messageID"]) == await _link(app, tenant, mail["messageID"])
        numbered = await _job_ad_mail(client, tenant, job_ad=1234)
        assert "token=" in await _link(app, tenant, numbered["messageID"])
        for plain in (
            await outgoing(client, tenant),
            await outgoing(client, tenant, customFieldsData={"jobAdID": ""}),
            await outgoing(client, tenant, customFieldsData={"jobAdID": True}),
            await outgoing(client, tenant, customFieldsData={"jobAdID": "x" * 201}),
        ):
            row = await stored_message(app, tenant, plain["messageID"])
            assert row is not None and tracking.unsubscribe_url("https://d.example", row) is None


class TestUnsubscribe:
    async def test_get_suppresses_each_to_address_once_and_a_replay_writes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant)
        link = await _link(app, tenant, mail["messageID"])
        _confirmed(await client.get(link))
        rows = [("JA-42", "bob@y.example", mail["messageID"]), ("JA-42", "jane@x.example", mail["messageID"])]
        assert await suppressions(app, tenant) == rows
        _confirmed(await client.get(link))  # replayed: the same page, nothing new
        _confirmed(await client.post(link, content="List-Unsubscribe=One-Click", headers=ONE_CLICK))
        assert await suppressions(app, tenant) == rows

    async def test_one_click_post_unsubscribes_with_any_body(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant, to="carol@z.example")
        link = await _link(app, tenant, mail["messageID"])
        _confirmed(await client.post(link, content="List-Unsubscribe=One-Click", headers=ONE_CLICK))
        assert await suppressions(app, tenant) == [("JA-42", "carol@z.example", mail["messageID"])]
        other = await _job_ad_mail(client, tenant, job_ad="JA-7", to="dan@z.example")
        _confirmed(await client.post(await _link(app, tenant, other["messageID"])), "JA-7")
        assert ("JA-7", "dan@z.example", other["messageID"]) in await suppressions(app, tenant)

    async def test_clicks_at_once_write_each_row_once(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant)
        link = await _link(app, tenant, mail["messageID"])
        answers = await asyncio.gather(
            *(client.post(link) for _ in range(4)), *(client.get(link) for _ in range(4))
        )
        for answer in answers:
            _confirmed(answer)
        assert len(await suppressions(app, tenant)) == 2

    async def test_wrong_garbled_and_missing_tokens_are_404_and_write_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant)
        link = await _link(app, tenant, mail["messageID"])
        token = link.split("token=", 1)[1]
        customer, message, tag = token.split(".")
        theirs = await _job_ad_mail(client, other_tenant)
        forged = [
            f"{customer}.{message}.{tag[:-1]}{'A' if tag[-1] != 'A' else 'B'}",  # the tag changed
            f"{customer}.{theirs['messageID']}.{tag}",  # another message under this tag
            f"{other_tenant.customer_id}.{message}.{tag}",  # another customer
            f"{customer}.{message}",
            f"0{customer}.{message}.{tag}",
            f"{customer}.{message}.{tag}.x",
            "not-a-token",
            "é.é.é",
            "",
        ]
        for bad in forged:
            _refused(await client.get("/api/TicketMessages/unsubscribejobad", params={"token": bad}))
            _refused(await client.post("/api/TicketMessages/unsubscribejobad", params={"token": bad}))
        _refused(await client.get("/api/TicketMessages/unsubscribejobad"))
        assert await suppressions(app, tenant) == [] and await suppressions(app, other_tenant) == []

    async def test_a_deleted_message_or_one_no_longer_about_a_job_ad_is_404(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant)
        link = await _link(app, tenant, mail["messageID"])
        put = {"messageID": mail["messageID"], "customFieldsData": {"jobAdID": None}}
        r = await client.put(f"/api/TicketMessages/{mail['messageID']}", json=put, headers=tenant.headers)
        assert r.status_code == 204, r.text
        _refused(await client.get(link))
        gone = await _job_ad_mail(client, tenant)
        gone_link = await _link(app, tenant, gone["messageID"])
        r = await client.delete(f"/api/TicketMessages/{gone['messageID']}", headers=tenant.headers)
        assert r.status_code == 204, r.text
        _refused(await client.get(gone_link))
        assert await suppressions(app, tenant) == []

    async def test_head_writes_nothing(self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant) -> None:
        mail = await _job_ad_mail(client, tenant)
        link = await _link(app, tenant, mail["messageID"])
        head = await client.head(link)
        assert head.status_code == 200 and head.content == b""
        assert (await client.head("/api/TicketMessages/unsubscribejobad?token=x")).status_code == 404
        assert await suppressions(app, tenant) == []

    async def test_the_job_ad_id_is_escaped_and_extra_parameters_are_ignored(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant, job_ad="<script>alert(1)</script>")
        response = await client.get(await _link(app, tenant, mail["messageID"]) + "&utm_source=newsletter")
        assert response.status_code == 200 and "<script>" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


class TestSuppressed:
    async def test_returns_the_unsubscribed_addresses_of_that_job_ad(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        mail = await _job_ad_mail(client, tenant)
        _confirmed(await client.get(await _link(app, tenant, mail["messageID"])))

        async def check(who: Tenant, job_ad: str, addresses: list[str]) -> set[str]:
            async with transaction(db_of(app), write=False, customer_id=who.customer_id) as db:
                return await tracking.suppressed(Ctx.system(db, who.customer_id), job_ad, addresses)

        asked = ["JANE@x.example", "Bob <bob@y.example>", "eve@z.example", "  "]
        assert await check(tenant, "JA-42", asked) == {"jane@x.example", "bob@y.example"}
        assert await check(tenant, "JA-43", asked) == set()
        assert await check(tenant, "JA-42", []) == set()
        assert await check(other_tenant, "JA-42", asked) == set()  # another customer's list is its own

    async def test_incoming_job_ad_messages_unsubscribe_their_to_addresses_too(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # The link is the message's, whichever way it went: what is suppressed is its To list.
        mail = await create_message(
            client, tenant.headers, toAddress="jobs@acme.example", customFieldsData={"jobAdID": "JA-1"}
        )
        _confirmed(await client.get(await _link(app, tenant, mail["messageID"])), "JA-1")
        assert await suppressions(app, tenant) == [("JA-1", "jobs@acme.example", mail["messageID"])]


def test_link_tags_survive_a_key_rotation_and_name_their_purpose() -> None:
    from deskpal.core.secretbox import SecretBox

    old, rotated = SecretBox("old-key-" + "x" * 32), SecretBox("new-key-" + "y" * 32, ["old-key-" + "x" * 32])
    tag = old.sign("unsubscribe-job-ad", "1.2")
    assert rotated.verify("unsubscribe-job-ad", "1.2", tag)  # made before the rotation: still good
    assert not rotated.verify("other-purpose", "1.2", tag)
    assert not rotated.verify("unsubscribe-job-ad", "1.3", tag)
    assert not SecretBox("new-key-" + "y" * 32).verify("unsubscribe-job-ad", "1.2", tag)  # old key dropped
    assert not rotated.verify("unsubscribe-job-ad", "1.2", "é" * 22)
    assert rotated.sign("unsubscribe-job-ad", "1.2") == rotated.sign("unsubscribe-job-ad", "1.2") != tag
