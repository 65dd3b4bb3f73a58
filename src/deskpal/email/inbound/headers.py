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
from email.utils import parsedate_to_datetime
from typing import Any

from deskpal.core.addresses import Mailbox, parse_addresses, parse_mailbox
from deskpal.email.inbound.charsets import decode_bytes, repair_surrogates

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]{0,2000})\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")
_FOLD = re.compile(r"\r?\n[ \t]*")
_MSG_ID = re.compile(r"<([^<>\s]{1,900})>")
_BARE_ID = re.compile(r"[^<>\s,;\"()]{1,900}@[^<>\s,;\"()]{1,900}")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


MAX_VALUE = 64 * 1024  # a header value is decoded up to this length; no real one is longer


def unfold(value: str) -> str:
    return _FOLD.sub(" ", value[:MAX_VALUE]).strip()


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
        return [str(v) for k, v in msg.raw_items() if k.lower() == wanted]
    except Exception:
        return []


def first_text(msg: Message, name: str, label: str | None = None) -> str | None:
    values = raw_values(msg, name)
    return decode_text(values[0], label) if values else None


def header_block(msg: Message, label: str | None = None) -> str:
    """`Name: value` per header, decoded and unfolded, in the order received."""
    try:
        items: list[tuple[str, Any]] = list(msg.raw_items())
    except Exception:
        return ""
    return "\n".join(f"{name}: {decode_text(str(value), label)}" for name, value in items)


def _clean(box: Mailbox) -> Mailbox:
    name = box.name
    if name and any("\udc80" <= c <= "\udcff" for c in name):
        name = repair_surrogates(name)
    if name and name.strip().strip("'\"<>").lower() == box.address:
        name = None  # "a@b.example <a@b.example>" or an encoded word of the address alone
    return box if name == box.name else Mailbox(box.address, name)


MAX_ADDRESSES = 500  # per header: the standard library's address parser is slow on huge lists
_STRICT_LIMIT = 16 * 1024


def mailboxes(values: list[str], defects: list[str], label: str | None = None) -> list[Mailbox]:
    """The valid mailboxes of address headers; each invalid one is skipped with a defect."""
    out: list[Mailbox] = []
    for raw in values:
        value = repair_surrogates(unfold(raw), label)
        if not value:
            continue
        if len(value) <= _STRICT_LIMIT:
            try:
                out.extend(_clean(box) for box in parse_addresses(value))
                continue
            except ValueError:
                pass
        # One bad address spoils the whole list for the strict parser: read it mailbox by mailbox,
        # with the display name taken as written ("a@b.example <c@d.example>", "Doe@Home <j@x>").
        defects.append("InvalidAddressDefect")
        chunks = _split_list(value)
        if len(chunks) > MAX_ADDRESSES:
            defects.append("TooManyAddressesDefect")
        for chunk in chunks[:MAX_ADDRESSES]:
            box = _loose_mailbox(chunk)
            if box is not None:
                out.append(_clean(box))
    return out


_NAME_ADDR = re.compile(r"^(?P<name>[^<>]{0,500}?)\s*<(?P<addr>[^<>\s]{1,320})>\s*$")


def _loose_mailbox(chunk: str) -> Mailbox | None:
    match = _NAME_ADDR.match(chunk.strip())
    address = match.group("addr") if match else chunk.strip()
    try:
        box = parse_mailbox(address)
    except ValueError:
        return None
    name = match.group("name").strip().strip('"').strip() if match else ""
    return Mailbox(box.address, decode_text(name) if name else None)


def _split_list(value: str) -> list[str]:
    """An address list cut at the commas that are outside quotes, angle brackets and comments."""
    chunks: list[str] = []
    current: list[str] = []
    quoted = False
    depth = 0
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<(":
            depth += 1
        elif not quoted and char in ">)":
            depth = max(0, depth - 1)
        elif char in ",;" and not quoted and depth == 0:
            chunks.append("".join(current))
            current = []
            continue
        current.append(char)
    chunks.append("".join(current))
    return [c for c in chunks if c.strip()]


def message_ids(values: list[str]) -> list[str]:
    """Every `<id>` in In-Reply-To / References values (pass the first header only: a second one
    is a defect, and mail programs read the first); a bare `id@host` (no brackets) too."""
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
