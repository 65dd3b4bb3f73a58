"""The MIME builder: what build() makes, read back as a mail client reads it."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from deskpal.email.compose import (
    Mail,
    Part,
    build,
    describe,
    forward_subject,
    message_ids,
    new_message_id,
    recipients,
    reply_subject,
    thread_references,
    ticket_id_in_subject,
)

WHEN = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
LONG_ID = "<1796303965.10673.53186618820563379105318661882056337910@mail.very-long-domain.example.com>"


def _mail(**fields: Any) -> Mail:
    values: dict[str, Any] = {
        "from_address": "support@acme.example",
        "from_name": "Acme Support",
        "to": ["Jane Doe <jane@customer.example>"],
        "subject": "Re: [#12] Login",
        "text": "Hello Jane,\n\nit works again.\nRegards",
        "message_id": "<reply-1@acme.example>",
        "date": WHEN,
    }
    values.update(fields)
    return Mail(**values)


def _wire(mail: Mail) -> bytes:
    return build(mail).as_bytes()


def _parse(mail: Mail) -> EmailMessage:
    parsed = email.message_from_bytes(_wire(mail), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _tree(msg: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in msg.walk()]


def _body(msg: EmailMessage, ctype: str) -> str:
    part = next(p for p in msg.walk() if p.get_content_type() == ctype and not p.get_content_disposition())
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")  # a 7bit part keeps the wire's line ends


class TestTree:
    def test_text_only_is_alternative_with_html_made_from_the_text(self) -> None:
        msg = _parse(_mail(text="Tom & <Jerry>\nsecond line\n\nnew paragraph"))
        assert _tree(msg) == ["multipart/alternative", "text/plain", "text/html"]
        html = _body(msg, "text/html")
        assert "<p>Tom &amp; &lt;Jerry&gt;<br>\nsecond line</p>" in html
        assert "<p>new paragraph</p>" in html
        assert _body(msg, "text/plain").strip() == "Tom & <Jerry>\nsecond line\n\nnew paragraph"

    def test_html_only_gets_its_text_and_is_sanitised_again(self) -> None:
        html = '<p>Hi <b>Jane</b></p><script>alert(1)</script><a href="javascript:x()">x</a>'
        msg = _parse(_mail(text=None, html=html))
        assert _tree(msg) == ["multipart/alternative", "text/plain", "text/html"]
        assert _body(msg, "text/plain").strip() == "Hi Jane\nx"
        out = _body(msg, "text/html")
        assert "<b>Jane</b>" in out and "script" not in out and "javascript" not in out

    def test_inline_image_rides_in_related_and_attachments_in_mixed(self) -> None:
        mail = _mail(
            html='<p>Our logo: <img src="cid:logo@acme"></p>',
            attachments=[
                Part("logo.png", "image/png", PNG, content_id="<logo@acme>"),
                Part("invoice.pdf", "application/pdf", b"%PDF-1.7 data"),
                Part("unused.png", "image/png", PNG, content_id="not-in-the-html"),
            ],
        )
        msg = _parse(mail)
        assert _tree(msg) == [
            "multipart/mixed",
            "multipart/related",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "image/png",
            "application/pdf",
            "image/png",
        ]
        related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
        alternative, logo = list(related.iter_parts())
        assert alternative.get_content_type() == "multipart/alternative"
        assert logo["Content-ID"] == "<logo@acme>"
        assert logo.get_content_disposition() == "inline" and logo.get_filename() == "logo.png"
        assert logo.get_content() == PNG
        # A cid the HTML never references is an ordinary attachment.
        attached = [p for p in msg.iter_attachments() if p.get_content_type() != "multipart/related"]
        assert [(p.get_filename(), p.get_content_disposition()) for p in attached] == [
            ("invoice.pdf", "attachment"),
            ("unused.png", "attachment"),
        ]
        assert attached[1]["Content-ID"] is None

    def test_related_without_attachments_has_no_mixed(self) -> None:
        mail = _mail(html='<img src="cid:a">', attachments=[Part("a.png", "image/png", PNG, content_id="a")])
        assert _tree(_parse(mail)) == [
            "multipart/related",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "image/png",
        ]

    def test_attachments_are_base64_with_their_names_unicode_too(self) -> None:
        data = bytes(range(256)) * 10
        mail = _mail(
            attachments=[Part("Rechnung Zoë Ürün.pdf", "application/pdf", data), Part("a", "bad", b"x")]
        )
        wire = _wire(mail)
        assert base64.encodebytes(data[:57]).strip() in wire
        msg = email.message_from_bytes(wire, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        first, second = msg.iter_attachments()
        assert first["Content-Transfer-Encoding"] == "base64"
        assert first.get_filename() == "Rechnung Zoë Ürün.pdf"
        assert first.get_content() == data
        assert second.get_content_type() == "application/octet-stream"  # a type that is not one


class TestHeaders:
    def test_the_headers_of_a_reply(self) -> None:
        mail = _mail(
            cc=["Bob <bob@customer.example>, carol@customer.example"],
            reply_to="replies@acme.example",
            in_reply_to="<cust-1@customer.example>",
            references=["<cust-1@customer.example>"],
            headers={"X-Deskpal-Ticket-ID": "12"},
        )
        msg = _parse(mail)
        assert msg["From"] == "Acme Support <support@acme.example>"
        assert msg["To"] == "Jane Doe <jane@customer.example>"
        assert [a.addr_spec for a in msg["Cc"].addresses] == [
            "bob@customer.example",
            "carol@customer.example",
        ]
        assert msg["Reply-To"] == "replies@acme.example"
        assert msg["Subject"] == "Re: [#12] Login"
        assert msg["Date"] == "Thu, 03 Dec 2026 09:30:00 +0000"
        assert msg["Message-ID"] == "<reply-1@acme.example>"
        assert msg["In-Reply-To"] == "<cust-1@customer.example>"
        assert msg["References"] == "<cust-1@customer.example>"
        assert msg["MIME-Version"] == "1.0"
        assert msg["X-Deskpal-Ticket-ID"] == "12"
        assert msg["Auto-Submitted"] is None and msg["List-Unsubscribe"] is None

    def test_unicode_names_and_a_japanese_subject_are_encoded_and_round_trip(self) -> None:
        subject = (
            "Re: [#7] ご注文の配送状況について、詳しいご案内をお送りいたします。よろしくお願いいたします。"
        )
        mail = _mail(
            from_name="Zoë Ürün", to=['"Müller, Jürgen" <jm@customer.example>'], subject=subject, text="Grüße"
        )
        wire = _wire(mail)
        assert wire.isascii(), "headers are RFC 2047-encoded and bodies 7-bit"
        assert all(len(line) <= 78 for line in wire.split(b"\r\n")), "folded"
        msg = email.message_from_bytes(wire, policy=email.policy.default)
        assert msg["Subject"] == subject
        assert msg["From"].addresses[0].display_name == "Zoë Ürün"
        assert msg["To"].addresses[0].display_name == "Müller, Jürgen"
        assert msg.get_body(("plain",)).get_content().strip() == "Grüße"  # type: ignore[union-attr]

    def test_lines_end_in_crlf(self) -> None:
        wire = _wire(_mail())
        assert b"\r\n" in wire and b"\n" not in wire.replace(b"\r\n", b"")

    def test_a_long_message_id_is_written_verbatim(self) -> None:
        wire = _wire(_mail(in_reply_to=LONG_ID, references=[LONG_ID]))
        assert f"In-Reply-To: {LONG_ID}\r\n".encode() in wire
        assert b"=?utf-8?" not in wire
        assert _parse(_mail(in_reply_to=LONG_ID))["In-Reply-To"] == LONG_ID

    def test_a_naive_date_is_utc(self) -> None:
        assert _parse(_mail(date=datetime(2026, 1, 2, 3, 4, 5)))["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"

    def test_bcc_is_never_a_header_but_is_in_the_envelope(self) -> None:
        mail = _mail(
            to=["Jane <jane@customer.example>"],
            cc=["JANE@customer.example, bob@customer.example"],
            bcc=["audit@acme.example", "Bob@Customer.example"],
        )
        wire = _wire(mail)
        assert b"bcc" not in wire.lower() and b"audit@acme.example" not in wire
        assert recipients(mail) == ["jane@customer.example", "bob@customer.example", "audit@acme.example"]

    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            ({"subject": "Hi\r\nBcc: victim@evil.example"}, "subject"),
            ({"subject": "Hi\nX-Evil: 1"}, "subject"),
            ({"from_name": "Acme\r\nBcc: x@evil.example"}, "from_name"),
            ({"to": ["jane@customer.example\r\nBcc: x@evil.example"]}, "to[0]"),
            ({"cc": ["ok@customer.example", "a@b.example\nX: y"]}, "cc[1]"),
            ({"reply_to": "r@acme.example\r\nX: y"}, "reply_to"),
            ({"message_id": "<a@b>\r\nX: y"}, "message_id"),
            ({"in_reply_to": "<a@b>\nX: y"}, "in_reply_to"),
            ({"references": ["<a@b>", "<c@d>\r\n"]}, "references[1]"),
            (
                {"headers": {"X-Deskpal-Ticket-ID": "1\r\nBcc: x@evil.example"}},
                "headers[X-Deskpal-Ticket-ID]",
            ),
            ({"headers": {"Bcc": "x@evil.example"}}, "headers"),
            ({"headers": {"X Bad": "1"}}, "headers"),
            ({"list_unsubscribe_url": "https://u.example/x\r\nX: y"}, "list_unsubscribe_url"),
            ({"attachments": [Part("a\r\nX: y.txt", "text/plain", b"x")]}, "attachments[0].filename"),
        ],
    )
    def test_header_injection_is_refused_naming_the_field(self, fields: dict[str, Any], named: str) -> None:
        with pytest.raises(ValueError, match=r"^" + named.replace("[", r"\[").replace("]", r"\]")):
            build(_mail(**fields))

    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            ({"to": ["not an address"]}, "to[0]"),
            ({"from_address": "nobody"}, "from_address"),
            ({"message_id": "no-brackets@acme.example"}, "message_id"),
            ({"pixel_url": "javascript:alert(1)"}, "pixel_url"),
            ({"list_unsubscribe_url": "mailto:x@y"}, "list_unsubscribe_url"),
        ],
    )
    def test_malformed_values_are_refused_naming_the_field(self, fields: dict[str, Any], named: str) -> None:
        with pytest.raises(ValueError, match=r"^" + named.replace("[", r"\[").replace("]", r"\]")):
            build(_mail(**fields))


class TestTrackingAndUnsubscribe:
    def test_the_pixel_is_appended_to_the_html(self) -> None:
        msg = _parse(_mail(pixel_url="https://desk.acme.example/api/TicketMessages/ot?token=abc&x=1"))
        html = _body(msg, "text/html")
        pixel = (
            '<img src="https://desk.acme.example/api/TicketMessages/ot?token=abc&amp;x=1" alt="" width="1"'
        )
        assert pixel in html and 'height="1" style="display:block"' in html
        assert html.index("it works again") < html.index(pixel)
        assert "ot?token" not in _body(msg, "text/plain")

    def test_automatic_mail_says_so_and_carries_no_pixel(self) -> None:
        msg = _parse(_mail(auto_submitted=True, pixel_url="https://desk.acme.example/ot?token=abc"))
        assert msg["Auto-Submitted"] == "auto-replied"
        assert "ot?token" not in _body(msg, "text/html")

    def test_list_unsubscribe_and_one_click_post(self) -> None:
        url = "https://desk.acme.example/api/TicketMessages/unsubscribejobad?token=" + "t" * 64
        wire = _wire(_mail(list_unsubscribe_url=url))
        assert f"List-Unsubscribe: <{url}>\r\n".encode() in wire
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in wire


class TestThreading:
    def test_a_three_mail_exchange_threads_in_the_customers_client(self) -> None:
        # 1. The customer writes, with their client's own Message-ID and no References.
        customer_1 = "<CAF=1xyz@mail.customer.example>"
        # 2. Our reply.
        refs_1 = thread_references([], customer_1)
        reply_1 = _parse(_mail(message_id="<r1@acme.example>", in_reply_to=customer_1, references=refs_1))
        assert reply_1["In-Reply-To"] == customer_1
        assert reply_1["References"] == customer_1
        # 3. The customer answers our reply; their client writes References as RFC 5322 says.
        customer_2 = "<CAF=2abc@mail.customer.example>"
        customer_2_refs = f"{customer_1} <r1@acme.example>"
        # 4. Our second reply.
        refs_2 = thread_references([customer_2_refs], customer_2)
        reply_2 = _parse(_mail(message_id="<r2@acme.example>", in_reply_to=customer_2, references=refs_2))
        assert reply_2["In-Reply-To"] == customer_2
        assert message_ids(reply_2["References"]) == [customer_1, "<r1@acme.example>", customer_2]

    def test_a_parent_with_only_in_reply_to(self) -> None:
        assert thread_references(["<a@x>"], "<b@x>") == ["<a@x>", "<b@x>"]

    def test_duplicates_go_and_the_parent_is_last(self) -> None:
        assert thread_references(["<a@x> <b@x>  <a@x>", "<b@x>"], "<a@x>") == ["<b@x>", "<a@x>"]
        assert thread_references(["garbage", ""], None) == []

    def test_a_long_chain_keeps_the_root_and_the_latest(self) -> None:
        chain = [f"<m{i}@x>" for i in range(30)]
        refs = thread_references([" ".join(chain)], "<parent@x>", limit=20)
        assert len(refs) == 20
        assert refs[0] == "<m0@x>" and refs[-1] == "<parent@x>"
        assert refs[1:-1] == chain[-18:]
        assert thread_references(chain, None, limit=1) == ["<m29@x>"]


class TestSubjects:
    @pytest.mark.parametrize(
        ("subject", "expected"),
        [
            ("Login", "Re: [#12] Login"),
            ("Re: Login", "Re: [#12] Login"),
            ("RE: Re: AW: Login", "Re: [#12] Login"),
            ("SV: Antw: re[2]: Login", "Re: [#12] Login"),
            ("Re: [#12] Login", "Re: [#12] Login"),
            ("[#12] Login", "Re: [#12] Login"),
            ("Re: Login [#12]", "Re: Login [#12]"),
            ("Re: [#99] Login", "Re: [#12] [#99] Login"),
            ("Fwd: Login", "Re: [#12] Fwd: Login"),
            ("Re:\r\n Login", "Re: [#12] Login"),
            (None, "Re: [#12]"),
            ("", "Re: [#12]"),
        ],
    )
    def test_reply_subject(self, subject: str | None, expected: str) -> None:
        assert reply_subject(subject, 12) == expected

    def test_forward_subject(self) -> None:
        assert forward_subject("Fwd: FW: WG: Login", 12) == "Fwd: [#12] Login"
        assert forward_subject("Re: Login", 12) == "Fwd: [#12] Re: Login"
        assert forward_subject("Fwd: [#12] Login", 12) == "Fwd: [#12] Login"

    def test_a_configured_tag(self) -> None:
        tag = "(Ticket {ticketID})"
        assert reply_subject("Re: Login (Ticket 5)", 5, tag) == "Re: Login (Ticket 5)"
        assert reply_subject("Login", 5, tag) == "Re: (Ticket 5) Login"
        assert ticket_id_in_subject("AW: Login (ticket 5)", tag) == 5
        with pytest.raises(ValueError, match="ticketID"):
            reply_subject("x", 5, "[no placeholder]")

    def test_ticket_id_in_subject(self) -> None:
        assert ticket_id_in_subject("Re: [#123] Login") == 123
        assert ticket_id_in_subject("Re: [# 45 ] Login") == 45
        assert ticket_id_in_subject("Re: Login #123") is None
        assert ticket_id_in_subject("[#0] zero") is None
        assert ticket_id_in_subject(None) is None


class TestIdsAndPreview:
    def test_new_message_id_uses_the_senders_domain(self) -> None:
        mid = new_message_id("Acme <support@Acme.Example>")
        assert mid.startswith("<") and mid.endswith("@acme.example>")
        assert new_message_id("support@acme.example") != new_message_id("support@acme.example")
        assert new_message_id("not an address").endswith("@deskpal.invalid>")
        assert new_message_id("x@bücher.example").endswith("@xn--bcher-kva.example>")

    def test_describe_reads_back_what_build_makes(self) -> None:
        mail = _mail(
            cc=["bob@customer.example"],
            bcc=["Audit <audit@acme.example>"],
            html='<p>Logo <img src="cid:logo"></p>',
            in_reply_to="<cust-1@customer.example>",
            references=["<cust-1@customer.example>"],
            list_unsubscribe_url="https://desk.acme.example/u?token=1",
            pixel_url="https://desk.acme.example/ot?token=2",
            attachments=[
                Part("logo.png", "image/png", PNG, content_id="logo"),
                Part("a.pdf", "application/pdf", b"12345"),
            ],
            headers={"X-Deskpal-Ticket-ID": "12"},
        )
        got = describe(mail)
        assert got["subject"] == "Re: [#12] Login"
        assert got["from"] == "Acme Support <support@acme.example>"
        assert (got["to"], got["cc"]) == (["Jane Doe <jane@customer.example>"], ["bob@customer.example"])
        assert got["bcc"] == ["Audit <audit@acme.example>"]
        assert got["headers"] == {
            "Date": "Thu, 03 Dec 2026 09:30:00 +0000",
            "Message-ID": "<reply-1@acme.example>",
            "In-Reply-To": "<cust-1@customer.example>",
            "References": "<cust-1@customer.example>",
            "List-Unsubscribe": "<https://desk.acme.example/u?token=1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Deskpal-Ticket-ID": "12",
        }
        assert got["textBody"].strip() == "Hello Jane,\n\nit works again.\nRegards"
        assert "ot?token=2" in got["htmlBody"] and 'src="cid:logo"' in got["htmlBody"]
        assert got["attachments"] == [
            {"fileName": "logo.png", "contentType": "image/png", "fileSizeBytes": len(PNG),
             "contentId": "logo", "inline": True},
            {"fileName": "a.pdf", "contentType": "application/pdf", "fileSizeBytes": 5,
             "contentId": None, "inline": False},
        ]  # fmt: skip
        # The same message, given: the preview of exactly what is sent.
        assert describe(mail, build(mail))["attachments"] == got["attachments"]
