"""parse(): headers, charsets, MIME shapes, attachments, robustness."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from deskpal.core.addresses import Mailbox
from deskpal.email.inbound.parse import parse
from deskpal.email.inbound.parsed import MailKind

from .helpers import parsed, raw, wrap


class TestHeaders:
    def test_addresses_ids_and_date_are_decoded(self) -> None:
        mail = parsed("reply_gmail_en.eml")
        assert mail.sender == Mailbox("ana@customer.example", "Ana Cliente")
        assert mail.to == [Mailbox("support@deskpal.example", "Support")]
        assert mail.message_id == "<CAgmail-1@mail.gmail.example>"
        assert mail.in_reply_to == ["<reply-50.1@deskpal.example>"]
        assert mail.references == ["<first-50@customer.example>", "<reply-50.1@deskpal.example>"]
        assert mail.date == datetime(2026, 3, 6, 10, 0, tzinfo=UTC)
        assert mail.subject == "Re: [#50] Password reset"

    def test_header_block_is_decoded_one_line_per_header(self) -> None:
        mail = parsed("ooo_french.eml")
        assert "Subject: Réponse automatique : [#48] Votre demande" in mail.headers.split("\n")
        assert mail.headers.split("\n")[0] == "From: Claire Client <claire@client.example>"

    def test_reply_to_is_where_answers_go(self) -> None:
        mail = parse(wrap("hi", headers="Reply-To: Real Customer <real@customer.example>\r\n"))
        assert mail.answer_to == [Mailbox("real@customer.example", "Real Customer")]

    def test_an_invalid_address_is_skipped_with_a_defect(self) -> None:
        mail = parse(wrap("hi", headers="Cc: good@customer.example, @@broken, other@customer.example\r\n"))
        assert [box.address for box in mail.cc] == ["good@customer.example", "other@customer.example"]
        assert "InvalidAddressDefect" in mail.defects

    def test_a_display_name_that_is_an_address_is_kept_as_the_name(self) -> None:
        mail = parse(wrap("hi", headers="Reply-To: alice@customer.example <bob@customer.example>\r\n"))
        assert mail.reply_to == [Mailbox("bob@customer.example", "alice@customer.example")]

    def test_encoded_display_name_with_a_comma_stays_one_mailbox(self) -> None:
        mail = parse(wrap("hi", headers="Cc: =?utf-8?q?M=C3=BCller=2C_Jens?= <jens@kunde.example>\r\n"))
        assert mail.cc == [Mailbox("jens@kunde.example", "Müller, Jens")]

    def test_a_mail_without_message_id_has_none(self) -> None:
        assert parse(b"Subject: x\r\n\r\nhi").message_id is None


class TestCharsets:
    @pytest.mark.parametrize(
        ("name", "subject", "text"),
        [
            ("charset_ks_c_5601.eml", "문의", "안녕하세요, 주문 확인 부탁드립니다."),
            ("charset_iso2022jp.eml", "お問い合わせ", "こんにちは。注文について質問があります。"),
            ("charset_shift_jis.eml", "test", "配送はいつですか\uff1f"),
            ("charset_koi8r.eml", "Вопрос", "Здравствуйте, где мой заказ?"),
        ],
    )
    def test_labelled_charsets_are_read(self, name: str, subject: str, text: str) -> None:
        mail = parsed(name)
        assert mail.subject == subject
        assert (mail.text_body or "").strip() == text
        assert mail.visible_text == text

    def test_mislabelled_and_unknown_charsets_and_raw_8bit_headers(self) -> None:
        mail = parsed("charset_mislabelled.eml")
        assert mail.subject == "Grüße aus Köln"
        body = mail.text_body or ""
        assert "Schöne Grüße, die Lieferung fehlt." in body  # us-ascii label over UTF-8
        assert "Zweiter Teil: Übergröße" in body  # a charset name nobody knows
        assert "It\u2019s \u201cquoted\u201d \u2013 café" in body  # iso-8859-1 label over Windows-1252
        assert "CharsetMislabelDefect" in mail.defects


class TestAttachments:
    def test_encoded_filenames_and_made_up_names(self) -> None:
        mail = parsed("filenames.eml")
        assert [a.filename for a in mail.attachments] == [
            "Résumé №2.pdf",  # RFC 2231
            "Übersicht.txt",  # RFC 2047 inside quotes
            "monthly report.csv",  # unquoted, with a space
            "attachment-4.bin",  # no name at all
        ]
        assert mail.attachments[0].content_type == "application/pdf"
        assert mail.attachments[0].data.startswith(b"%PDF-1.4")
        assert mail.text_body is not None and mail.text_body.strip() == "Anbei die Dateien."

    def test_nested_messages_record_their_container(self) -> None:
        mail = parsed("nested_rfc822.eml")
        names = [(a.filename, a.content_type, a.converted_from) for a in mail.attachments]
        assert names == [
            ("weitergeleitet.eml", "message/rfc822", None),
            ("Lieferschein.eml", "message/rfc822", 0),
            ("lieferschein.pdf", "application/pdf", 1),
        ]
        assert mail.attachments[2].data.startswith(b"%PDF-1.7")
        assert parse(mail.attachments[1].data).subject == "Lieferschein"
        assert mail.visible_text == "Siehe unten."  # the attached mails' texts are not this mail's

    def test_a_base64_encoded_attached_message_is_decoded_first(self) -> None:
        mail = parsed("rfc822_base64.eml")
        assert [(a.filename, a.converted_from) for a in mail.attachments] == [
            ("Quote 7.eml", None),
            ("quote.pdf", 0),
        ]
        assert parse(mail.attachments[0].data).message_id == "<q7@vendor.example>"
        assert mail.attachments[1].data == b"%PDF-1.5"

    def test_uuencoded_file_becomes_an_attachment(self) -> None:
        mail = parsed("uuencode.eml")
        assert [(a.filename, a.data) for a in mail.attachments] == [("notes.txt", b"uuencoded hello\n" * 3)]
        assert mail.visible_text == "Here is the file:\n\nBye"

    def test_inline_image_keeps_its_content_id_and_the_text_comes_from_html(self) -> None:
        mail = parsed("inline_image.eml")
        (image,) = mail.attachments
        assert (image.content_id, image.inline, image.content_type) == (
            "shot1@customer.example",
            True,
            "image/png",
        )
        assert image.data.startswith(b"\x89PNG")
        assert mail.html_body is not None and 'src="cid:shot1@customer.example"' in mail.html_body
        assert mail.text_body == "The error looks like this:"

    def test_winmail_dat_is_unpacked(self) -> None:
        mail = parsed("tnef.eml")
        assert [(a.filename, a.converted_from) for a in mail.attachments] == [
            ("winmail.dat", None),
            ("angebot.txt", 0),
        ]
        assert mail.attachments[1].data == b"Angebot aus dem TNEF-Container"

    def test_a_broken_winmail_dat_is_kept_with_a_defect(self) -> None:
        body = raw("tnef.eml").replace(b"eJ8+Ig", b"AAAAAA")  # the TNEF signature, base64
        mail = parse(body)
        assert [a.filename for a in mail.attachments] == ["winmail.dat"]
        assert "TnefDefect" in mail.defects


class TestRobustness:
    @pytest.mark.parametrize("name", ["garbage.bin", "truncated_multipart.eml"])
    def test_broken_input_gives_what_could_be_read(self, name: str) -> None:
        mail = parsed(name)
        assert mail.kind is MailKind.MESSAGE
        assert mail.defects  # what was wrong is said

    def test_truncated_multipart_keeps_its_text(self) -> None:
        mail = parsed("truncated_multipart.eml")
        assert mail.visible_text == "truncated here"
        assert "CloseBoundaryNotFoundDefect" in mail.defects

    def test_empty_and_headerless_input(self) -> None:
        assert parse(b"").message_id is None
        assert parse(b"\r\n\r\njust a body").visible_text == "just a body"

    def test_random_bytes_never_raise(self) -> None:
        rng = random.Random(13)
        for _ in range(30):
            parse(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))

    @pytest.mark.parametrize(
        "body",
        [
            b"Content-Type: text/html\r\n\r\n" + b"<!--" * 200_000,
            b"Content-Type: text/html\r\n\r\n" + b"<div>" * 60_000,
            b"Content-Type: text/plain\r\n\r\n" + (b"1 2 3 " * 60 + b":\r\n") * 5_000,
            b"Content-Type: text/plain\r\n\r\n" + b"> quoted\r\n" * 100_000,
            b"To: " + b"a@b.example, @@, " * 20_000 + b"\r\n\r\nhi",
            b"".join(
                b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(2000)
            ),
        ],
        ids=["unclosed-comments", "deep-html", "colon-lines", "many-quotes", "address-flood", "deep-mime"],
    )
    def test_pathological_mail_is_parsed_in_about_a_second(self, body: bytes) -> None:
        started = time.perf_counter()
        parse(b"From: a@b.example\r\nSubject: x\r\n" + body)
        assert time.perf_counter() - started < 1.5
