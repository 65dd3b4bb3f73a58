"""INTERIM parser, written by the inbound-pipeline branch so that its pipeline runs end to end while
the real one (the inbound-parse branch: charsets, broken MIME, TNEF, flufl.bounce, quote stripping
measured on the corpus) is on its way. The lead replaces this file with that one; nothing else
here depends on how it works, only on the contract in parsed.py.

Built on the standard library's email package only: RFC 2047/2231 decoding, MIME walking, RFC 3464
delivery-status reports, RFC 3834 and the usual automatic-mail markers, a few quote headers.
"""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from deskpal.core.addresses import Mailbox
from deskpal.email.inbound.parsed import (
    Bounce,
    MailKind,
    ParsedAttachment,
    ParsedMail,
    SpamMarks,
)
from deskpal.messages.html import html_to_text

_MSG_ID = re.compile(r"<[^<>\s]+>")
_QUOTE_HEADERS = re.compile(
    r"^\s*(On .{1,200} wrote:|Am .{1,200} schrieb .{1,200}:|Op .{1,200} schreef .{1,200}:|"
    r"Le .{1,200} a écrit\s?:|El .{1,200} escribió:|"
    r"-{2,}\s*(Original Message|Ursprüngliche Nachricht|Oorspronkelijk bericht|Message d'origine|"
    r"Mensaje original)\s*-{2,}|>?\s*On .{1,200}, at .{1,100}wrote:)",
    re.IGNORECASE,
)
_SENT_FROM = re.compile(r"^\s*Sent from my .{1,60}$", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matische)?\s*(reply|antwort)|out of (the )?office|abwesenheit|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica)\b",
    re.IGNORECASE,
)
_POLICY = email.policy.default


def _ids(value: str | None) -> list[str]:
    return _MSG_ID.findall(value or "")


def _header(message: Message, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception:
        return None
    return None if value is None else str(value)


def _mailboxes(message: Message, name: str) -> list[Mailbox]:
    raw = message.get_all(name) or []
    boxes = []
    try:
        pairs = getaddresses([str(v) for v in raw])
    except Exception:
        return []
    for display, address in pairs:
        if "@" in address:
            boxes.append(Mailbox(address.strip().lower(), display.strip() or None))
    return boxes


def _date(message: Message) -> datetime | None:
    value = _header(message, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _text_of(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except Exception:
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    return str(content)


def _bodies(message: EmailMessage) -> tuple[str | None, str | None]:
    text = html = None
    try:
        plain = message.get_body(("plain",))
        rich = message.get_body(("html",))
    except Exception:
        plain = rich = None
    if plain is not None:
        text = _text_of(plain)
    if rich is not None:
        html = _text_of(rich)
    if text is None and html:
        text = html_to_text(html)
    return text, html


def visible(text: str | None) -> str:
    """The text above the first quote header, without quoted lines or a "Sent from my" line."""
    if not text:
        return ""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _QUOTE_HEADERS.match(line):
            break
        if line.lstrip().startswith(">") or _SENT_FROM.match(line):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def _attachments(message: EmailMessage) -> list[ParsedAttachment]:
    found: list[ParsedAttachment] = []
    body_parts = set()
    for preference in (("plain",), ("html",)):
        try:
            part = message.get_body(preference)
        except Exception:
            part = None
        if part is not None:
            body_parts.add(id(part))
    for part in message.walk():
        if part.is_multipart() or id(part) in body_parts or part is message:
            continue
        content_type = part.get_content_type()
        if content_type in ("message/delivery-status", "message/disposition-notification"):
            continue
        disposition = part.get_content_disposition()
        content_id = (_header(part, "Content-ID") or "").strip().strip("<>") or None
        if disposition is None and content_id is None and content_type.startswith("text/"):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else str(part.get_payload()).encode("utf-8", "replace")
        name = part.get_filename() or f"attachment-{len(found) + 1}.bin"
        found.append(
            ParsedAttachment(
                filename=name,
                content_type=content_type,
                data=data,
                content_id=content_id,
                inline=disposition == "inline",
            )
        )
    return found


def _bounce(message: EmailMessage) -> Bounce | None:
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type") or "").lower() != "delivery-status":
        return None
    recipients: list[str] = []
    status = diagnostic = action = None
    original: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in part.get_payload() or []:
                if not isinstance(block, Message):
                    continue
                if block.get("Final-Recipient"):
                    recipients.append(str(block["Final-Recipient"]).split(";")[-1].strip().lower())
                action = action or (str(block["Action"]).strip().lower() if block.get("Action") else None)
                status = status or (str(block["Status"]).strip() if block.get("Status") else None)
                if block.get("Diagnostic-Code"):
                    diagnostic = diagnostic or str(block["Diagnostic-Code"]).split(";", 1)[-1].strip()
        elif kind == "text/rfc822-headers":
            headers = HeaderParser().parsestr(_text_of(part))
            original += _ids(headers.get("Message-ID"))
        elif kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original += _ids(inner[0].get("Message-ID"))
    delay = action == "delayed"
    permanent = bool(status and status.startswith("5"))
    return Bounce(
        recipients=tuple(dict.fromkeys(recipients)),
        status=status,
        diagnostic=diagnostic,
        action=action,
        permanent=permanent,
        delay=delay,
        original_message_ids=tuple(dict.fromkeys(original)),
    )


def _automatic(message: EmailMessage, subject: str) -> str | None:
    auto = (_header(message, "Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if _header(message, name):
            return f"{name}: {_header(message, name)}"
    precedence = (_header(message, "Precedence") or "").strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    if _AUTO_SUBJECT.match(subject):
        return f"Subject: {subject[:80]}"
    return None


def _spam(message: EmailMessage) -> SpamMarks:
    flag = _header(message, "X-Spam-Flag")
    status = _header(message, "X-Spam-Status")
    score_text = _header(message, "X-Spam-Score")
    try:
        score = float(score_text) if score_text else None
    except ValueError:
        score = None
    return SpamMarks(flag=None if flag is None else flag.strip().upper() == "YES", status=status, score=score)


def _header_block(message: Message) -> str:
    lines = []
    for name, value in message.items():
        text = " ".join(str(value).split())
        lines.append(f"{name}: {text}")
    return "\n".join(lines)


def parse(raw: bytes) -> ParsedMail:
    """The mail as parsed.ParsedMail (interim: see the module's docstring)."""
    message = BytesParser(policy=_POLICY).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    subject = " ".join((_header(message, "Subject") or "").split())
    text, html = _bodies(message)
    senders = _mailboxes(message, "From")
    bounce = _bounce(message)
    auto = _automatic(message, subject)
    kind = MailKind.MESSAGE
    if bounce is not None:
        kind = MailKind.BOUNCE
    elif message.get_content_type() == "multipart/report":
        kind = MailKind.REPORT
    elif auto is not None:
        kind = MailKind.AUTOREPLY
    message_ids = _ids(_header(message, "Message-ID"))
    return ParsedMail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_ids(_header(message, "In-Reply-To")),
        references=_ids(_header(message, "References")),
        subject=subject,
        sender=senders[0] if senders else None,
        reply_to=_mailboxes(message, "Reply-To"),
        to=_mailboxes(message, "To"),
        cc=_mailboxes(message, "Cc"),
        date=_date(message),
        text_body=text,
        html_body=html,
        visible_text=visible(text),
        headers=_header_block(message),
        attachments=[] if bounce is not None else _attachments(message),
        kind=kind,
        auto_reason=auto if kind is not MailKind.MESSAGE else None,
        bounce=bounce,
        spam=_spam(message),
        defects=[type(d).__name__ for d in message.defects],
    )
