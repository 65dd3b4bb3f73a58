"""Email templates: sandboxed rendering, wrapping a body, and /api/EmailTemplates."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.context import Ctx
from deskpal.core.errors import ValidationFailed
from deskpal.email import service
from deskpal.email.models import EmailTemplate
from deskpal.email.templates import MAX_OUTPUT_CHARS, check_source, context, render, wrap
from tests.admin.helpers import NON_ADMIN_ROLES, assert_utc, invalid, problem
from tests.cross_tenant import in_tenant
from tests.support import Tenant
from tests.tickets.helpers import create_ticket

CONTEXT = context(
    ticket_id=12,
    ticket_subject="Login",
    end_user_name="<script>alert(1)</script> Jane",
    end_user_email="jane@customer.example",
    rep_name="Rita",
    rep_email="rita@acme.example",
    channel_name="Support mail",
    customer_name="Acme & Co",
    message_subject="Re: [#12] Login",
    now=datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
)


def _refused(field: str, source: str) -> str:
    with pytest.raises(ValidationFailed) as caught:
        check_source(field, source)
    [error] = caught.value.errors
    assert error["field"] == field
    return error["message"]


class TestRender:
    def test_placeholders_render_from_the_context(self) -> None:
        source = (
            "#{{ ticket.id }} {{ ticket.subject }} {{ rep.name }} <{{ rep.email }}> {{ channel.name }} "
            "{{ end_user.email }} {{ message.subject }} {{ now }}"
        )
        assert render(source, CONTEXT) == (
            "#12 Login Rita <rita@acme.example> Support mail jane@customer.example Re: [#12] Login "
            "2026-12-03T09:30:00+00:00"
        )

    def test_placeholder_values_are_escaped_but_the_template_is_html(self) -> None:
        out = render("<b>Hello {{ end_user.name }}</b>, from {{ customer.name }}", CONTEXT)
        assert out == "<b>Hello &lt;script&gt;alert(1)&lt;/script&gt; Jane</b>, from Acme &amp; Co"

    def test_unknown_names_render_empty(self) -> None:
        assert (
            render("[{{ nope }}|{{ nope.deeper.still }}|{{ ticket.nope }}|{{ config }}]", CONTEXT) == "[|||]"
        )

    def test_if_and_filters(self) -> None:
        source = (
            "{% if rep.name %}Best, {{ rep.name|upper }}{% else %}The team{% endif %}{{ nope|default('!') }}"
        )
        assert render(source, CONTEXT) == "Best, RITA!"

    @pytest.mark.parametrize(
        "source",
        [
            "{{ ''.__class__.__mro__ }}",
            "{{ ''.__class__.__mro__[1].__subclasses__ }}",
            "{{ cycler.__init__ }}",
            "{{ cycler }}{{ joiner }}{{ lipsum }}{{ range }}{{ namespace }}{{ dict }}",
            "{{ config }}{{ settings }}{{ request }}{{ app }}",
            "{{ ticket.__class__ }}{{ ticket['__class__'] }}",
        ],
    )
    def test_the_sandbox_reaches_nothing(self, source: str) -> None:
        check_source("header", source)  # saved: it names nothing it could reach
        assert render(source, CONTEXT) == ""

    def test_only_plain_values_reach_a_template(self) -> None:
        class Secret:
            password = "hunter2"

            def __str__(self) -> str:
                return "hunter2"

        out = render(
            "[{{ thing }}|{{ thing.password }}|{{ nested.thing }}]",
            {"thing": Secret(), "nested": {"thing": Secret()}},
        )
        assert out == "[||]"

    def test_a_template_that_cannot_render_renders_empty_and_is_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Stored before a rule, or written around the API: the send goes on without it.
        with caplog.at_level(logging.WARNING, logger="deskpal.email"):
            assert render("{{ range(10**9)|list }}", CONTEXT, part="old.header") == ""
            assert render("{{ 1 < 'a' }}", CONTEXT) == ""
        assert "old.header" in caplog.text

    def test_output_is_capped(self, caplog: pytest.LogCaptureFixture) -> None:
        source = "{{ message.subject }}" * 3000
        check_source("footer", source)
        assert len(render(source, context(message_subject="s"))) == 3000
        with caplog.at_level(logging.WARNING, logger="deskpal.email"):
            assert render(source, context(message_subject="x" * 100)) == ""  # 300 000 characters
        assert str(MAX_OUTPUT_CHARS // 1024) in caplog.text


class TestCheckSource:
    def test_a_syntax_error_names_the_field_with_jinjas_message_and_line(self) -> None:
        message = _refused("signature", "Best,\n{{ rep.name }\n")
        assert "line 2" in message and "unexpected '}'" in message
        assert "line 1" in _refused("footer", "{% if x %}")
        check_source("header", None)
        check_source("header", "")

    @pytest.mark.parametrize(
        ("source", "said"),
        [
            ("{% for i in ticket %}x{% endfor %}", "{% for %}"),
            ("{% set x = 1 %}", "{% set %}"),
            ("{% macro m() %}{% endmacro %}", "{% macro %}"),
            ("{% include 'x' %}", "{% include %}"),
            ("{{ rep.name.upper() }}", "a call"),
            ("{{ 'x' * 10 }}", "*"),
            ("{{ 2 ** 10 }}", "**"),
            ("{{ '%s' % 1 }}", "%"),
            ("{{ rep.name|center(1000000000) }}", "No filter named 'center'"),
            ("{{ rep.name|safe }}", "No filter named 'safe'"),
            ("{{ self }}", "self"),
        ],
    )
    def test_what_could_run_away_is_refused(self, source: str, said: str) -> None:
        assert said in _refused("header", source)

    def test_deep_nesting_is_refused_not_a_crash(self) -> None:
        assert "nested too deeply" in _refused("header", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
        assert "nested too deeply" in _refused("header", "{{ " + "not " * 5000 + "x }}")
        check_source("header", "{% if a %}" * 10 + "x" + "{% endif %}" * 10)

    def test_a_source_over_64_kb_is_refused(self) -> None:
        check_source("footer", "x" * 64 * 1024)
        assert "64 KB" in _refused("footer", "x" * (64 * 1024 + 1))
        assert "64 KB" in _refused("footer", "é" * (32 * 1024 + 1))  # counted in UTF-8 bytes


class TestWrap:
    TEMPLATE = EmailTemplate(
        name="Friendly",
        header="<p>Hello {{ end_user.name }}</p>",
        signature="<p>Best, {{ rep.name }}</p>",
        footer="<small>{{ customer.name }}</small>",
    )

    def test_header_body_signature_footer_in_html_and_text(self) -> None:
        got = wrap(self.TEMPLATE, CONTEXT, text="It works again.", html="<p>It <b>works</b> again.</p>")
        assert got.html == (
            "<div><p>Hello &lt;script&gt;alert(1)&lt;/script&gt; Jane</p></div>\n"
            "<p>It <b>works</b> again.</p>\n"
            "<div><p>Best, Rita</p></div>\n"
            "<div><small>Acme &amp; Co</small></div>"
        )
        assert (
            got.text == "Hello <script>alert(1)</script> Jane\n\nIt works again.\n\nBest, Rita\n\nAcme & Co"
        )

    def test_a_text_body_gets_html_and_an_html_body_gets_text(self) -> None:
        from_text = wrap(self.TEMPLATE, CONTEXT, text="Line one\nline two", html=None)
        assert from_text.html is not None and "<p>Line one<br>\nline two</p>" in from_text.html
        assert from_text.text is not None and "Line one\nline two" in from_text.text
        from_html = wrap(self.TEMPLATE, CONTEXT, text=None, html="<p>Only HTML</p>")
        assert from_html.text is not None and "\n\nOnly HTML\n\n" in from_html.text

    def test_no_template_or_an_empty_one_leaves_the_body(self) -> None:
        assert wrap(None, CONTEXT, text="t", html=None).text == "t"
        assert wrap(None, CONTEXT, text="t", html="<p>h</p>").html == "<p>h</p>"
        empty = EmailTemplate(name="empty", header="{{ nope }}")
        got = wrap(empty, CONTEXT, text="t", html=None)
        assert (got.text, got.html) == ("t", None)

    def test_a_broken_part_is_left_out_and_the_others_render(self) -> None:
        broken = EmailTemplate(name="b", header="{{ range(3) }}", signature="Best, {{ rep.name }}")
        got = wrap(broken, CONTEXT, text="Body", html=None)
        assert got.text == "Body\n\nBest, Rita"


# --- /api/EmailTemplates ---------------------------------------------------------------------------

URL = "/api/EmailTemplates"


async def _create(client: httpx.AsyncClient, tenant: Tenant, name: str, **extra: Any) -> dict[str, Any]:
    r = await client.post(URL, json={"name": name, **extra}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _get(client: httpx.AsyncClient, tenant: Tenant, ident: int) -> dict[str, Any]:
    r = await client.get(f"{URL}/{ident}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


class TestEmailTemplatesApi:
    async def test_create_get_list_update_delete(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        made = await _create(
            client, tenant, "Friendly", header="<p>Hi {{ end_user.name }}</p>", signature="{{ rep.name }}"
        )
        assert set(made) == {
            "emailTemplateID", "name", "header", "footer", "signature", "isDefault", "dateCreated",
            "dateUpdated",
        }  # fmt: skip
        assert (made["name"], made["header"], made["footer"], made["isDefault"]) == (
            "Friendly", "<p>Hi {{ end_user.name }}</p>", None, False,
        )  # fmt: skip
        assert_utc(made["dateCreated"]) and made["dateUpdated"] is None
        ident = made["emailTemplateID"]
        assert await _get(client, tenant, ident) == made

        await _create(client, tenant, "Another")
        listed = (await client.get(f"{URL}?pageSize=1", headers=tenant.headers)).json()
        assert [t["name"] for t in listed["items"]] == ["Another"]
        assert (listed["totalCount"], listed["totalPages"]) == (2, 2)

        put = await client.put(
            f"{URL}/{ident}", json={"name": "Formal", "footer": "x"}, headers=tenant.headers
        )
        assert put.status_code == 204 and put.content == b""
        after = await _get(client, tenant, ident)
        assert (after["name"], after["header"], after["footer"]) == ("Formal", None, "x")
        assert after["dateCreated"] == made["dateCreated"]
        assert_utc(after["dateUpdated"])

        assert (await client.delete(f"{URL}/{ident}", headers=tenant.headers)).status_code == 204
        problem(await client.get(f"{URL}/{ident}", headers=tenant.headers), 404, "NOT_FOUND")
        problem(await client.delete(f"{URL}/{ident}", headers=tenant.headers), 404, "NOT_FOUND")

    async def test_a_duplicate_name_is_409_naming_name(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        first = await _create(client, tenant, "Friendly")
        other = await _create(client, tenant, "Other")
        body = problem(await client.post(URL, json={"name": "Friendly"}, headers=tenant.headers), 409)
        assert body["code"] == "EMAIL_TEMPLATE_NAME_TAKEN" and body["errors"][0]["field"] == "name"
        taken = await client.put(
            f"{URL}/{other['emailTemplateID']}", json={"name": "Friendly"}, headers=tenant.headers
        )
        assert problem(taken, 409, "EMAIL_TEMPLATE_NAME_TAKEN")["errors"][0]["field"] == "name"
        same = await client.put(
            f"{URL}/{first['emailTemplateID']}", json={"name": "Friendly"}, headers=tenant.headers
        )
        assert same.status_code == 204

    async def test_the_same_name_in_another_customer_is_fine(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await _create(client, tenant, "Friendly")
        await _create(client, other_tenant, "Friendly")

    async def test_a_syntax_error_is_refused_on_save_naming_the_field(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for name in ("header", "footer", "signature"):
            r = await client.post(
                URL, json={"name": "Broken", name: "ok\n{{ rep.name }"}, headers=tenant.headers
            )
            body = invalid(r, name)
            assert "line 2" in body["errors"][0]["message"]
        made = await _create(client, tenant, "Fine")
        r = await client.put(
            f"{URL}/{made['emailTemplateID']}",
            json={"name": "Fine", "footer": "{% for x in y %}"},
            headers=tenant.headers,
        )
        invalid(r, "footer")
        assert (await client.get(URL, headers=tenant.headers)).json()["totalCount"] == 1

    async def test_invalid_bodies_are_400(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        for body, field in (
            ({}, "name"),
            ({"name": " "}, "name"),
            ({"name": "x" * 201}, "name"),
            ({"name": "x", "header": "x" * (64 * 1024 + 1)}, "header"),
            ({"name": "x", "signature": "é" * (32 * 1024 + 1)}, "signature"),
            ({"name": "x", "isDefault": "maybe"}, "isDefault"),
            ({"name": "x", "footer": ["x"]}, "footer"),
        ):
            invalid(await client.post(URL, json=body, headers=tenant.headers), field)

    async def test_one_default_at_a_time(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        a = (await _create(client, tenant, "A", isDefault=True))["emailTemplateID"]
        b = (await _create(client, tenant, "B", isDefault=True))["emailTemplateID"]
        c = (await _create(client, tenant, "C"))["emailTemplateID"]

        async def defaults() -> list[int]:
            items = (await client.get(URL, headers=tenant.headers)).json()["items"]
            return [t["emailTemplateID"] for t in items if t["isDefault"]]

        assert await defaults() == [b]
        r = await client.put(f"{URL}/{a}", json={"name": "A", "isDefault": True}, headers=tenant.headers)
        assert r.status_code == 204
        assert await defaults() == [a]
        await client.put(f"{URL}/{c}", json={"name": "C"}, headers=tenant.headers)
        assert await defaults() == [a]
        await client.put(f"{URL}/{a}", json={"name": "A"}, headers=tenant.headers)
        assert await defaults() == []

    async def test_another_customers_default_is_untouched(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = await _create(client, other_tenant, "Theirs", isDefault=True)
        await _create(client, tenant, "Ours", isDefault=True)
        assert (await _get(client, other_tenant, theirs["emailTemplateID"]))["isDefault"] is True

    async def test_every_role_reads_only_admins_write(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        ident = (await _create(client, tenant, "Friendly"))["emailTemplateID"]
        for role in NON_ADMIN_ROLES:
            headers = await tenant.headers_for(role)
            assert (await client.get(f"{URL}/{ident}", headers=headers)).status_code == 200
            problem(await client.post(URL, json={"name": f"by {role}"}, headers=headers), 403, "FORBIDDEN")
            put = await client.put(f"{URL}/{ident}", json={"name": "x"}, headers=headers)
            problem(put, 403, "FORBIDDEN")
            problem(await client.delete(f"{URL}/{ident}", headers=headers), 403, "FORBIDDEN")
        problem(await client.get(URL), 401, "UNAUTHORIZED")

    async def test_another_customers_template_is_404(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        ident = (await _create(client, tenant, "Friendly"))["emailTemplateID"]
        theirs = other_tenant.headers
        problem(await client.get(f"{URL}/{ident}", headers=theirs), 404, "NOT_FOUND")
        problem(await client.put(f"{URL}/{ident}", json={"name": "x"}, headers=theirs), 404, "NOT_FOUND")
        problem(await client.delete(f"{URL}/{ident}", headers=theirs), 404, "NOT_FOUND")
        assert (await client.get(URL, headers=theirs)).json()["items"] == []
        assert (await _get(client, tenant, ident))["name"] == "Friendly"


class TestMessagesNameTemplates:
    async def test_create_new_and_raw_take_only_the_customers_templates(
        self, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        ours = (await _create(client, tenant, "Ours"))["emailTemplateID"]
        theirs = (await _create(client, other_tenant, "Theirs"))["emailTemplateID"]
        ticket = await create_ticket(client, tenant.headers)
        for url, extra in (
            ("/api/TicketMessages/create-new", {"channel": "Email"}),
            ("/api/TicketMessages", {"ticketID": ticket["ticketID"]}),
        ):
            body = {"message": "hello", "incoming": False, **extra}
            good = await client.post(url, json={**body, "emailTemplateID": ours}, headers=tenant.headers)
            assert good.status_code == 201, good.text
            assert good.json()["emailTemplateID"] == ours
            for wrong in (theirs, 2**40):
                r = await client.post(url, json={**body, "emailTemplateID": wrong}, headers=tenant.headers)
                invalid(r, "emailTemplateID")

    async def test_a_message_sends_with_its_template_else_the_default(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        named = (await _create(client, tenant, "Named"))["emailTemplateID"]
        default = (await _create(client, tenant, "Default", isDefault=True))["emailTemplateID"]

        async def chosen(template_id: int | None) -> int | None:
            async def pick(ctx: Ctx) -> int | None:
                found = await service.template_for(ctx, template_id)
                return found.email_template_id if found else None

            return await in_tenant(app, tenant, pick)  # type: ignore[no-any-return]

        assert await chosen(named) == named
        assert await chosen(None) == default
        assert (await client.delete(f"{URL}/{named}", headers=tenant.headers)).status_code == 204
        assert await chosen(named) == default  # deleted: the column has no foreign key
        await client.put(f"{URL}/{default}", json={"name": "Default"}, headers=tenant.headers)
        assert await chosen(None) is None
