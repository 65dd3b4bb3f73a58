"""Fixture mails of tests/mail_in/fixtures, written for these tests (not copied from any corpus)."""

from __future__ import annotations

from pathlib import Path

from deskpal.email.inbound.parse import parse
from deskpal.email.inbound.parsed import ParsedMail

FIXTURES = Path(__file__).parent / "fixtures"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parsed(name: str) -> ParsedMail:
    return parse(raw(name))


def wrap(body: str, *, html: bool = False, headers: str = "") -> bytes:
    """A body in a minimal message, as a mail client would send it."""
    ctype = "text/html" if html else "text/plain"
    head = (
        "From: Tom <tom@customer.example>\r\nTo: support@deskpal.example\r\nSubject: Re: test\r\n"
        f"{headers}MIME-Version: 1.0\r\nContent-Type: {ctype}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return (head + body).encode()
