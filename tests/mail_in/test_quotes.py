"""visible_text: quoted history and signatures stripped, in several languages and clients."""

from __future__ import annotations

import pytest

from deskpal.email.inbound.parse import parse
from deskpal.email.inbound.quotes import normalise_whitespace, visible_text

from .helpers import FIXTURES, parsed, wrap


class TestClients:
    def test_gmail_english_plain_and_html(self) -> None:
        mail = parsed("reply_gmail_en.eml")
        assert mail.visible_text == "Thanks, that worked!\n\nAna"
        assert visible_text(None, mail.html_body) == "Thanks, that worked!\n\nAna"
        assert "Please try the link below." in (mail.text_body or "")  # the full mail is kept

    def test_outlook_german_plain_and_html(self) -> None:
        mail = parsed("reply_outlook_de.eml")
        expected = (
            "Hallo,\n\ndie Rechnung ist angekommen, vielen Dank.\n\nMit freundlichen Grüßen\nJens Kunde"
        )
        assert mail.visible_text == expected
        html_only = visible_text(None, mail.html_body)
        assert html_only.startswith("Hallo,")
        assert "Anbei" not in html_only and "Gesendet" not in html_only

    def test_apple_mail_french_html_only(self) -> None:
        assert parsed("reply_apple_fr.eml").visible_text == "Merci, le colis est bien arrivé.\n\nClaire"

    def test_thunderbird_dutch_html_only(self) -> None:
        assert parsed("reply_thunderbird_nl.eml").visible_text == "Bedankt, het is opgelost."

    @pytest.mark.parametrize(
        "expected",
        [
            "Gracias, ya funciona.",
            "Grazie, ora funziona.",
            "Obrigado, já funciona.",
            "Merci beaucoup !",
            "Danke, es geht wieder.",
            "Dank je, het werkt.",
        ],
    )
    def test_quote_headers_in_seven_languages(self, expected: str) -> None:
        bodies = (FIXTURES / "reply_plain_es_it_pt.txt").read_text().split("=====\n")
        body = next(b for b in bodies if b.startswith(expected))
        assert parse(wrap(body)).visible_text == expected

    def test_outlook_original_message_block(self) -> None:
        body = (FIXTURES / "reply_outlook_en_original.txt").read_text()
        assert visible_text(body, None) == "The new invoice is fine.\n\nBest,\nTom"

    def test_interleaved_answers_stay_and_signature_goes(self) -> None:
        body = (FIXTURES / "reply_interleaved.txt").read_text()
        assert visible_text(body, None) == "Hi,\n\nFirefox 140.\n\nDebian 13."


class TestSignatures:
    @pytest.mark.parametrize(
        "line",
        [
            "Sent from my iPhone",
            "Von meinem iPhone gesendet",
            "Envoyé de mon iPhone",
            "Enviado desde mi Samsung Galaxy",
            "Inviato da iPhone",
            "Verzonden vanaf mijn iPad",
            "Enviado do meu iPhone",
            "Get Outlook for Android",
        ],
    )
    def test_sent_from_my_lines(self, line: str) -> None:
        assert visible_text(f"On my way.\n\n{line}\n", None) == "On my way."

    def test_a_sentence_starting_with_sent_from_my_stays(self) -> None:
        text = "Here it is.\n\nSent from my desk, which is much easier than my phone."
        assert visible_text(text, None) == text

    def test_dash_dash_space_signature(self) -> None:
        assert visible_text("See attached.\n\n-- \nTom\nExample Ltd.\n", None) == "See attached."

    def test_closings_and_bullets_stay(self) -> None:
        text = "Two things:\n\n  - first\n  - second\n\nThanks,\nTom"
        assert visible_text(text, None) == text


class TestShapes:
    def test_whitespace_is_normalised(self) -> None:
        assert normalise_whitespace("  \n a  \n\n\n\nb \r\n") == "a\n\nb"

    def test_a_bare_forward_keeps_its_text(self) -> None:
        text = "-----Original Message-----\nFrom: x@y.example\nSent: today\n\nthe forwarded text"
        assert "the forwarded text" in visible_text(text, None)

    def test_quoted_attribution_needs_a_date_or_lead_word(self) -> None:
        text = "Here is what I wrote:\n\nthe steps are simple"
        assert visible_text(text, None) == text

    def test_no_bodies(self) -> None:
        assert visible_text(None, None) == ""
        assert visible_text("   ", "<p> </p>") == ""
