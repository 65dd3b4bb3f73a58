"""A raw RFC 5322 mail to a ParsedMail, whatever the bytes are.

`parse` never raises: a mail with no headers, binary garbage or a truncated multipart gives what
could be read, and the email package's defects (plus our own, below) say what was wrong. The
standard library's parser (modern policy, which reads RFC 2231 parameters and RFC 6532 headers) does
the MIME; charsets.py decides what the bytes say; headers.py reads header values without trusting
them; tnefparse unpacks winmail.dat; classify.py decides what kind of mail it is; quotes.py
separates what the sender wrote from the history.

Our own defect names (beside the email package's class names): InvalidAddressDefect (an address
skipped), CharsetMislabelDefect (a body whose label was wrong or missing), ParserFailureDefect (the
modern parser failed; the mail was read with compat32 or not at all), TnefDefect (a winmail.dat
tnefparse could not read), TooDeepDefect (MIME nested beyond MAX_DEPTH; the rest is skipped),
UudecodeDefect (a broken uuencoded block, kept as text).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import quopri
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from typing import Any

from tnefparse import TNEF

from deskpal.email.inbound.charsets import decode_bytes
from deskpal.email.inbound.classify import classify
from deskpal.email.inbound.headers import (
    date_of,
    decode_text,
    first_text,
    header_block,
    mailboxes,
    message_id,
    message_ids,
    raw_values,
    unfold,
)
from deskpal.email.inbound.parsed import ParsedAttachment, ParsedMail
from deskpal.email.inbound.quotes import defuse_html, visible_text
from deskpal.messages.html import html_to_text

MAX_DEPTH = 40  # deeper MIME nesting than this is an attack or a loop, not a mail
MAX_BOUNDARIES = 100
_BOUNDARY = re.compile(rb"boundary[ \t]*=", re.I)
_HEADER_CACHE_SIZE = 4096


class _CachedHeaders(HeaderRegistry):
    """The modern policy's header classes, each (name, value) parsed once.

    The email package parses a header again every time it is read (`get_content_type`,
    `get_param`, `get_filename`, `get_content_charset` each read Content-Type), some twenty times
    per mail: about half of what parsing a mail cost (docs/performance.md, "Mail in"). The parsed
    headers are immutable strings, so one parse can serve every read, and the same value in the
    next mail (`Content-Type: text/plain; charset="utf-8"`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            if len(self._parsed) >= _HEADER_CACHE_SIZE:
                self._parsed.clear()  # bounded; parser threads may race here, harmlessly
            header = self._parsed[key] = super().__call__(name, value)
        return header


_POLICY = policy.default.clone(header_factory=_CachedHeaders())
_ENCLOSED = {"message/rfc822", "message/global"}
_TNEF = {"application/ms-tnef", "application/vnd.ms-tnef"}
# uuencode inside a text body: `begin 644 name` … `end`.
_UU_BEGIN = re.compile(r"^begin [0-7]{3,4} ([^\r\n]{1,255})\r?\n?$")
_PATH = re.compile(r"^.*[/\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class _Walk:
    defects: list[str]
    linesep: str = "\n"  # the mail's own line ending: an attached message is re-written with it
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    tnef_bodies: list[str] = field(default_factory=list)

    def add(self, attachment: ParsedAttachment) -> int:
        self.attachments.append(attachment)
        return len(self.attachments) - 1


def parse(raw: bytes) -> ParsedMail:
    """The mail in `raw`, decoded; never raises."""
    defects: list[str] = []
    msg = _read(raw, defects)
    try:
        return _parse(msg, raw, defects)
    except Exception as exc:  # a parser bug must not lose the mail: keep what the headers say
        defects.append(f"ParserFailureDefect:{type(exc).__name__}")
        return ParsedMail(
            message_id=message_id(raw_values(msg, "message-id")),
            subject=first_text(msg, "subject") or "",
            headers=header_block(msg),
            text_body=raw.decode("utf-8", "replace"),
            visible_text="",
            defects=defects,
        )


def _read(raw: bytes, defects: list[str]) -> Message:
    # The standard library's parser slows down with every nested multipart (each line is checked
    # against every open boundary): a mail is read up to its MAX_BOUNDARIES-th boundary parameter.
    boundaries = _BOUNDARY.finditer(raw)
    for count, match in enumerate(boundaries, start=1):
        if count > MAX_BOUNDARIES:
            raw = raw[: match.start()]
            defects.append("TooDeepDefect")
            break
    try:
        return BytesParser(policy=_POLICY).parsebytes(raw)
    except Exception:
        defects.append("ParserFailureDefect")
    try:
        return BytesParser(policy=policy.compat32).parsebytes(raw)
    except Exception:
        return Message()


def _parse(msg: Message, raw: bytes, defects: list[str]) -> ParsedMail:
    label = _first_text_charset(msg)
    walk = _Walk(defects, linesep="\r\n" if b"\r\n" in raw[:4096] else "\n")
    _walk(msg, walk, container=None, depth=0)
    _collect_defects(msg, defects)

    plain = "\n\n".join(t for t in walk.texts if t.strip()) or None
    html = "\n".join(walk.htmls) or None
    if plain is None and html is None and walk.tnef_bodies:
        plain = "\n\n".join(walk.tnef_bodies)
    text_body = plain if plain is not None else (html_to_text(defuse_html(html)) if html else None)

    parsed = ParsedMail(
        message_id=message_id(raw_values(msg, "message-id")),
        in_reply_to=message_ids(raw_values(msg, "in-reply-to")[:1]),
        references=message_ids(raw_values(msg, "references")[:1]),
        subject=first_text(msg, "subject", label) or "",
        date=date_of(raw_values(msg, "date")),
        text_body=text_body,
        html_body=html,
        headers=header_block(msg, label),
        attachments=walk.attachments,
        defects=defects,
    )
    senders = mailboxes(raw_values(msg, "from"), defects, label)
    if not senders:  # a mail with no usable From: Sender names who sent it
        senders = mailboxes(raw_values(msg, "sender"), defects, label)
    parsed.sender = senders[0] if senders else None
    parsed.reply_to = mailboxes(raw_values(msg, "reply-to"), defects, label)
    parsed.to = mailboxes(raw_values(msg, "to"), defects, label)
    parsed.cc = mailboxes(raw_values(msg, "cc"), defects, label)
    verdict = classify(msg, parsed, raw)
    parsed.kind, parsed.auto_reason, parsed.bounce = verdict.kind, verdict.auto_reason, verdict.bounce
    parsed.report_type, parsed.spam = verdict.report_type, verdict.spam
    parsed.visible_text = visible_text(plain, html)
    return parsed


def _first_text_charset(msg: Message) -> str | None:
    """The charset of the first text part: the best guess for raw 8-bit bytes in the headers."""
    try:
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                return part.get_content_charset()
    except Exception:
        return None
    return None


def _collect_defects(msg: Message, defects: list[str]) -> None:
    try:
        for part in msg.walk():
            defects.extend(type(d).__name__ for d in getattr(part, "defects", ()))
    except Exception:
        defects.append("ParserFailureDefect")


def _walk(part: Message, walk: _Walk, *, container: int | None, depth: int) -> None:
    if depth > MAX_DEPTH:
        walk.defects.append("TooDeepDefect")
        return
    ctype = _content_type(part)
    payload = part.get_payload()
    if ctype in _ENCLOSED or (ctype.startswith("message/") and isinstance(payload, list)):
        _message_part(part, ctype, walk, container=container, depth=depth)
    elif part.is_multipart() and isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                _walk(sub, walk, container=container, depth=depth + 1)
    else:
        _leaf(part, ctype, walk, container=container)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _message_part(part: Message, ctype: str, walk: _Walk, *, container: int | None, depth: int) -> None:
    """An attached message (kept whole as an .eml, its attachments unpacked from it), or a report
    part of a multipart/report (delivery-status, disposition-notification…, kept as text)."""
    payload = part.get_payload()
    subs = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    data = (
        walk.linesep.encode().join(_as_bytes(p, walk.linesep) for p in subs) if subs else _payload_bytes(part)
    )
    if ctype in _ENCLOSED and subs:
        inner = subs[0]
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding in {"base64", "quoted-printable"}:
            # RFC 2046 forbids it, clients do it: the parser read the encoded text as a message.
            data = _decode_transfer(data, encoding)
            inner = _read(data, walk.defects)
        name = _filename(part) or _eml_name(inner, len(walk.attachments))
        index = walk.add(ParsedAttachment(name, ctype, data, _content_id(part), False, container))
        _walk(inner, walk, container=index, depth=depth + 1)
        return
    name = _filename(part) or f"{ctype.split('/', 1)[1]}.txt"
    walk.add(ParsedAttachment(name, ctype, data, _content_id(part), False, container))


def _decode_transfer(data: bytes, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode(b"".join(data.split()), validate=False)
        return quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return data


def _eml_name(inner: Message, index: int) -> str:
    subject = first_text(inner, "subject") or ""
    subject = _CONTROL.sub("", _PATH.sub("", subject.replace("/", "-"))).strip()[:120]
    return f"{subject or f'message-{index + 1}'}.eml"


def _as_bytes(msg: Message, linesep: str) -> bytes:
    """An attached message as bytes again (the parser keeps no raw copy): compat32 writes back what
    it read, headers unchanged, with the outer mail's line ending."""
    try:
        return msg.as_bytes(policy=policy.compat32.clone(linesep=linesep))
    except Exception:
        try:
            return msg.as_string(policy=policy.compat32).encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _leaf(part: Message, ctype: str, walk: _Walk, *, container: int | None) -> None:
    data = _payload_bytes(part)
    filename = _filename(part)
    disposition = _disposition(part)
    is_body = (
        container is None
        and ctype in {"text/plain", "text/html"}
        and filename is None
        and disposition != "attachment"
    )
    if is_body:
        text, mislabelled = decode_bytes(data, _charset(part))
        if mislabelled:
            walk.defects.append("CharsetMislabelDefect")
        if ctype == "text/html":
            walk.htmls.append(text)
        else:
            walk.texts.append(_uudecode(text, walk, container))
        return
    if (
        container is not None
        and filename is None
        and disposition != "attachment"
        and (ctype.startswith("multipart/") or ctype in {"text/plain", "text/html"})
    ):
        return  # the attached message's own body: it is in the .eml, not a file of its own
    content_id = _content_id(part)
    inline = disposition == "inline" or (disposition is None and content_id is not None)
    name = filename or _made_up_name(ctype, len(walk.attachments))
    index = walk.add(ParsedAttachment(name, ctype, data, content_id, inline, container))
    if ctype in _TNEF or name.lower() == "winmail.dat":
        _untnef(data, walk, index)


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value.lower() if isinstance(value, str) else None


_RAW_NAME = re.compile(r"(?:^|;)\s*(?:file)?name\s*=\s*(?:\"([^\"]{1,1000})\"|([^;\r\n]{1,1000}))", re.I)


def _filename(part: Message) -> str | None:
    try:
        name: Any = part.get_filename() or part.get_param("name")
    except Exception:
        name = None
    if isinstance(name, tuple):  # compat32 hands RFC 2231 values over as (charset, lang, value)
        name = decode_bytes(str(name[2]).encode("utf-8", "surrogateescape"), name[0])[0]
    parsed = decode_text(name) if isinstance(name, str) and name.strip() else None
    raw = _raw_filename(part)
    # The raw value wins where the parser stumbled: an unquoted name with spaces ("This is a
    # test.txt" read as "This"), or an unquoted encoded word (name==?utf-8?B?…?=).
    if raw and (parsed is None or (raw != parsed and raw.startswith(parsed)) or "=?" in parsed):
        parsed = raw
    if parsed is None:
        return None
    clean = _CONTROL.sub("", _PATH.sub("", parsed)).strip()
    return clean or None


def _raw_filename(part: Message) -> str | None:
    for header in ("content-disposition", "content-type"):
        for value in raw_values(part, header):
            match = _RAW_NAME.search(unfold(value))
            if match:
                found = (match.group(1) or match.group(2) or "").strip()
                return decode_text(found) if found else None
    return None


def _content_id(part: Message) -> str | None:
    values = raw_values(part, "content-id")
    if not values:
        return None
    value = values[0].strip().strip("<>").strip()
    return value or None


def _made_up_name(ctype: str, index: int) -> str:
    ext = mimetypes.guess_extension(ctype) or ".bin"
    return f"attachment-{index + 1}{ext}"


def _uudecode(text: str, walk: _Walk, container: int | None) -> str:
    """uuencoded files inside a text body become attachments; the body keeps the rest. One pass
    over the lines: a `begin` without its `end` stays text."""
    if "begin " not in text:
        return text
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    index = 0
    while index < len(lines):
        begin = _UU_BEGIN.match(lines[index])
        if begin is None:
            kept.append(lines[index])
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "end":
            end += 1
        if end == len(lines):
            kept.extend(lines[index:])
            break
        data = _uu_data(lines[index + 1 : end])
        if data is None:
            walk.defects.append("UudecodeDefect")
            kept.extend(lines[index : end + 1])
        else:
            name = _CONTROL.sub("", _PATH.sub("", begin.group(1))).strip() or "uuencoded.bin"
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            walk.add(ParsedAttachment(name, ctype, data, None, False, container))
        index = end + 1
    return "".join(kept)


def _uu_data(lines: list[str]) -> bytes | None:
    data = bytearray()
    try:
        for line in lines:
            line = line.rstrip("\r\n")
            if line.strip() and line != "`":
                data += _uu_line(line)
    except (binascii.Error, IndexError):
        return None
    return bytes(data)


def _uu_line(line: str) -> bytes:
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        # Encoders that add garbage after the data: the length character says how much is data.
        return binascii.a2b_uu(line[: (((ord(line[0]) - 32) & 63) * 4 + 5) // 3])


def _untnef(data: bytes, walk: _Walk, index: int) -> None:
    try:
        tnef = TNEF(data, do_checksum=False)
        unpacked = [(a.long_filename() or a.name, a.data) for a in tnef.attachments]
        body = tnef.htmlbody or tnef.body
    except Exception:  # tnefparse raises on truncated or foreign data: keep the .dat as it is
        walk.defects.append("TnefDefect")
        return
    for name, payload in unpacked:
        clean = _CONTROL.sub("", _PATH.sub("", str(name))).strip() or _made_up_name("", len(walk.attachments))
        ctype = mimetypes.guess_type(clean)[0] or "application/octet-stream"
        walk.add(ParsedAttachment(clean, ctype, bytes(payload), None, False, index))
    if isinstance(body, bytes):
        body = decode_bytes(body, None)[0]
    if isinstance(body, str) and body.strip():
        walk.tnef_bodies.append(html_to_text(defuse_html(body)) if "<" in body and ">" in body else body)
