"""Header values of a received mail, decoded without trusting them.

The email package's modern policy decodes RFC 2047 words but replaces what a mislabelled charset
cannot decode, and its structured parsers lose parts of broken values (`<a b@c>` becomes `<a`). So
unstructured values (Subject, the stored header block) are decoded here: raw 8-bit bytes and every
encoded word go through charsets.decode_bytes, which never fails. Addresses go through
core.addresses (the standard library's RFC 5322 parser), one mailbox at a time, so that one invalid
address drops only itself. Message-IDs are read with a bounded pattern, not a grammar.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from deskpal.core.addresses import Mailbox, parse_addresses, parse_mailbox
from deskpal.email.inbound.charsets import decode_bytes, repair_surrogates

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]{0,2000})\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")
_FOLD = re.compile(r"\r?\n[ \t]*")
_MSG_ID = re.compile(r"<([^<>\s]{1,900})>")
_BARE_ID = re.compile(r"[^<>\s,;\"()]{1,900}@[^<>\s,;\"()]{1,900}")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def unfold(value: str) -> str:
    return _FOLD.sub(" ", value).strip()


def _decode_word(charset: str, encoding: str, payload: str) -> str:
    label = charset.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    raw = payload.encode("ascii", "surrogateescape")
    try:
        if encoding in "bB":
            data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=False)
        else:
            data = _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"_", b" "))
    except (binascii.Error, ValueError):
        return payload
    return decode_bytes(data, label)[0]


def decode_text(value: str, label: str | None = None) -> str:
    """An unstructured header value as text: unfolded, raw 8-bit bytes and RFC 2047 words decoded.
    `label` is the charset to try first for raw 8-bit bytes (the body's, when it has one)."""
    text = repair_surrogates(unfold(value), label)
    if "=?" not in text:
        return text
    text = _BETWEEN_WORDS.sub(r"\1\2", text)  # whitespace between two encoded words is not text
    return _ENCODED_WORD.sub(lambda m: _decode_word(m.group(1), m.group(2), m.group(3)), text)


def raw_values(msg: Message, name: str) -> list[str]:
    """Every value of header `name` as received (8-bit bytes as surrogates), never raising."""
    wanted = name.lower()
    try:
        return [str(v) for k, v in msg.raw_items() if k.lower() == wanted]  # type: ignore[attr-defined]
    except Exception:
        return []


def first_text(msg: Message, name: str, label: str | None = None) -> str | None:
    values = raw_values(msg, name)
    return decode_text(values[0], label) if values else None


def header_block(msg: Message, label: str | None = None) -> str:
    """`Name: value` per header, decoded and unfolded, in the order received."""
    try:
        items: list[tuple[str, Any]] = list(msg.raw_items())  # type: ignore[attr-defined]
    except Exception:
        return ""
    return "\n".join(f"{name}: {decode_text(str(value), label)}" for name, value in items)


def _repair_name(box: Mailbox) -> Mailbox:
    if box.name and any("\udc80" <= c <= "\udcff" for c in box.name):
        return Mailbox(box.address, repair_surrogates(box.name))
    return box


def mailboxes(values: list[str], defects: list[str], label: str | None = None) -> list[Mailbox]:
    """The valid mailboxes of address headers; each invalid one is skipped with a defect."""
    out: list[Mailbox] = []
    for raw in values:
        value = repair_surrogates(unfold(raw), label)
        if not value:
            continue
        try:
            out.extend(_repair_name(box) for box in parse_addresses(value))
            continue
        except ValueError:
            pass
        # One bad address spoils the whole list for the strict parser: retry mailbox by mailbox.
        defects.append("InvalidAddressDefect")
        for name, address in _split_addresses(value):
            candidate = f'"{_quote(name)}" <{address}>' if name else address
            try:
                out.append(_repair_name(parse_mailbox(candidate)))
            except ValueError:
                continue
    return out


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _split_addresses(value: str) -> list[tuple[str, str]]:
    try:
        pairs = getaddresses([value])
    except Exception:  # the legacy parser has raised on pathological input in some releases
        return []
    result = []
    for name, address in pairs:
        if "=?" in name:
            name = decode_text(name)
        result.append((name, address))
    return result


def message_ids(values: list[str]) -> list[str]:
    """Every `<id>` in In-Reply-To / References values; a bare `id@host` (no brackets) too."""
    ids: list[str] = []
    for value in values:
        found = _MSG_ID.findall(value)
        if not found:
            found = _BARE_ID.findall(value)
        for ident in found:
            token = f"<{ident}>"
            if token not in ids:
                ids.append(token)
    return ids


def message_id(values: list[str]) -> str | None:
    """The mail's own Message-ID as `<id>`, or None when there is no usable one."""
    for value in values:
        found = _MSG_ID.findall(value) or _BARE_ID.findall(value)
        if found:
            return f"<{found[0]}>"
    return None


def date_of(values: list[str]) -> datetime | None:
    for value in values:
        try:
            parsed = parsedate_to_datetime(unfold(value))
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        if parsed is None:
            continue
        if parsed.tzinfo is None:  # RFC 5322 -0000: the zone is unknown; UTC is the usual reading
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            continue
    return None


# The modern policy is what the rest of the package reads parts with; exported for parse.py.
MODERN = policy.default
