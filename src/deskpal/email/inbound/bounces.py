"""Delivery-status reports: who a mail failed (or was delayed) for, and which mail it was.

RFC 3464 reports (a message/delivery-status part) are read here, per recipient: Final-Recipient
(Original-Recipient when given, as flufl.bounce prefers), Action, Status, Diagnostic-Code. The
non-standard shapes (Postfix, Exim, qmail, Sendmail, Exchange, GroupWise, Yahoo, AOL…) are
flufl.bounce's detectors, which GNU Mailman maintains against real bounces; they only run on a mail
that looks like a bounce (classify.looks_like_bounce), because their heuristics also match a person
who quotes a bounce.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import HeaderParser

from flufl.bounce import all_failures

from deskpal.email.inbound.headers import message_id, message_ids, raw_values, unfold
from deskpal.email.inbound.parsed import Bounce

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"^[^\n]{0,200}\b[45]\d\d[ -][^\n]{0,500}$", re.M)
_ID_LINE = re.compile(
    r"^[ \t>]{0,20}(?:message-id|in-reply-to|references)[ \t]*:[ \t]*([^\n]{1,2000})$", re.M | re.I
)
_DSN_TYPES = {"message/delivery-status", "message/global-delivery-status"}
_ORIGINAL_TYPES = {"message/rfc822", "message/global"}
_HEADERS_TYPES = {"text/rfc822-headers", "message/rfc822-headers", "text/global-headers"}
_MAX_TEXT = 256 * 1024  # what is searched for ids and codes: a report's first 256 KiB


@dataclass(frozen=True, slots=True)
class _Recipient:
    address: str
    action: str
    status: str | None
    diagnostic: str | None


def _text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n\n".join(p.as_string(policy=policy.compat32) for p in payload if isinstance(p, Message))
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data[:_MAX_TEXT].decode("utf-8", "replace")
    return str(payload)[:_MAX_TEXT]


def _address(value: str) -> str:
    # "rfc822; <a@b.example>" (the type is optional in broken reports)
    value = value.split(";", 1)[1] if ";" in value else value
    return value.strip().strip("<>").strip().lower()


def dsn_recipients(msg: Message) -> list[_Recipient] | None:
    """The per-recipient blocks of the mail's delivery-status parts; None when it has none."""
    found: list[_Recipient] | None = None
    for part in msg.walk():
        if part.get_content_type() not in _DSN_TYPES:
            continue
        found = (found or []) + _blocks(_text(part))
    return found


def from_dsn(msg: Message, recipients: list[_Recipient]) -> Bounce | None:
    """The failure (or delay) an RFC 3464 report states; None for a success report."""

    def failed(r: _Recipient) -> bool:
        return r.action.startswith(("fail", "error")) or (not r.action and (r.status or "").startswith("5"))

    def delayed(r: _Recipient) -> bool:
        return r.action.startswith("delay") or (not r.action and (r.status or "").startswith("4"))

    failures = [r for r in recipients if failed(r)]
    delays = [r for r in recipients if delayed(r)]
    chosen = failures or delays
    if not chosen:
        return None
    first = chosen[0]
    return Bounce(
        recipients=tuple(dict.fromkeys(r.address for r in chosen)),
        status=first.status,
        diagnostic=first.diagnostic,
        action="failed" if failures else "delayed",
        permanent=bool(failures),
        delay=not failures,
        original_message_ids=original_message_ids(msg),
    )


def from_heuristics(
    msg: Message, report_text: str, exclude: set[str], detect_in: Message | None = None
) -> Bounce | None:
    """A non-standard bounce, by flufl.bounce's detectors (run on `detect_in`, the mail's start when
    it is large); None when none of them recognises it."""
    try:
        temporary, permanent = all_failures(detect_in or msg)
    except Exception:  # a detector choking on a broken mail: it is then no bounce we can read
        logging.getLogger(__name__).debug("flufl.bounce failed", exc_info=True)
        return None
    # The detectors' heuristics also pick up the bounce's own addressee and Message-IDs.
    ids = {i.strip("<>").lower() for i in message_ids(_ID_LINE.findall(report_text))}
    chosen = permanent or temporary
    addresses = sorted(
        address
        for address in (a.decode("ascii", "replace").lower() for a in chosen)
        if address not in exclude and address not in ids
    )
    if not addresses:
        return None
    status = _STATUS.search(report_text)
    if status is not None and permanent and status.group(1) != "5":
        status = next((m for m in _STATUS.finditer(report_text) if m.group(1) == "5"), status)
    reply = _SMTP_REPLY.search(report_text)
    return Bounce(
        recipients=tuple(addresses),
        status=status.group(0) if status else None,
        diagnostic=reply.group(0).strip() if reply else None,
        action="failed" if permanent else "delayed",
        permanent=bool(permanent),
        delay=not permanent,
        original_message_ids=original_message_ids(msg),
    )


def original_message_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs of the mail a report is about: the returned message or headers part; else the
    `Message-ID:` lines quoted in the report's text, and the report's In-Reply-To / References."""
    own = message_id(raw_values(msg, "message-id"))
    ids: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in _ORIGINAL_TYPES:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                ids.extend(i for i in [message_id(raw_values(inner, "message-id"))] if i)
        elif ctype in _HEADERS_TYPES:
            block = HeaderParser(policy=policy.compat32).parsestr(_text(part).lstrip())
            ids.extend(i for i in [message_id(raw_values(block, "message-id"))] if i)
    if not ids:
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                ids.extend(message_ids(_ID_LINE.findall(_text(part))))
        ids.extend(message_ids(raw_values(msg, "in-reply-to") + raw_values(msg, "references")))
    return tuple(i for i in dict.fromkeys(ids) if i != own)


_FAILURE_WORDS = re.compile(
    r"could not be delivered|couldn't be delivered|could not deliver|unable to deliver|undeliverable"
    r"|delivery (?:has )?failed|delivery to the following recipients? failed|error (?:has occurred )?"
    r"(?:while attempting to deliver|delivering)|permanent (?:fatal )?error|failed permanently"
    r"|user unknown|unknown user|no such (?:user|mailbox|recipient)|does not exist|mailbox unavailable"
    r"|recipient address rejected|not delivered|failure reasons|returned to sender|delivery failure"
    r"|nicht zugestellt|unzustellbar|n'a pas pu être (?:remis|distribué)|no se pudo entregar"
    r"|non è stato possibile consegnare|kon niet worden bezorgd|não foi possível entregar",
    re.I,
)
_DELAY_WORDS = re.compile(
    r"delayed|postponed|will (?:continue to )?(?:try|retry)|will be retried|still being retried"
    r"|not yet been delivered|has not been delivered yet|warning only|advisory|verzögert|retardé",
    re.I,
)
# Where the quoted original starts in a bounce's text: addresses below it are the original's.
_ORIGINAL_START = re.compile(
    r"^(?:received:|[ \t]*-{3,}[^\n]{0,80}(?:original|returned|below|copy|message)|[^\n]{0,80}below this line"
    r"|[ \t]*the (?:first \d+ lines|original message|headers)[^\n]{0,80}(?:follow|below))",
    re.I | re.M,
)
_ADDRESS = re.compile(r"[\w.+'=-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,10}")


def from_text(msg: Message, text: str, exclude: set[str]) -> Bounce | None:
    """A bounce no detector read, from its words: an RFC 3464 block pasted as text (broken MIME),
    else failure or delay wording with the addresses it names above the returned message."""
    text = text[:_MAX_TEXT]
    if re.search(r"^final-recipient[ \t]*:", text, re.I | re.M):
        blocks = _blocks(text)
        if blocks:
            return from_dsn(msg, blocks)
    failure = _FAILURE_WORDS.search(text)
    delay = _DELAY_WORDS.search(text)
    if failure is None and delay is None:
        return None
    cut = _ORIGINAL_START.search(text)
    head = text[: cut.start()] if cut else text
    ids = {i.strip("<>").lower() for i in message_ids(_ID_LINE.findall(text))}
    recipients = []
    for address in _ADDRESS.findall(head):
        address = address.strip(".'=").lower()
        local = address.split("@", 1)[0]
        if address in exclude or address in ids or local in {"postmaster", "mailer-daemon", "mailer_daemon"}:
            continue
        if address not in recipients:
            recipients.append(address)
    permanent = failure is not None and not (delay is not None and delay.start() < failure.start())
    status = _STATUS.search(head)
    reply = _SMTP_REPLY.search(head)
    return Bounce(
        recipients=tuple(recipients[:50]),
        status=status.group(0) if status else None,
        diagnostic=reply.group(0).strip() if reply else None,
        action="failed" if permanent else "delayed",
        permanent=permanent,
        delay=not permanent,
        original_message_ids=original_message_ids(msg),
    )


def _blocks(text: str) -> list[_Recipient]:
    found = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        fields = HeaderParser(policy=policy.compat32).parsestr(block.strip() + "\n")
        recipient = fields.get("original-recipient") or fields.get("final-recipient")
        final = fields.get("final-recipient")
        if final and (not recipient or "@" not in _address(str(recipient))):
            recipient = final
        if not recipient:
            continue
        status = _STATUS.search(str(fields.get("status", "")))
        diagnostic = fields.get("diagnostic-code")
        found.append(
            _Recipient(
                address=_address(unfold(str(recipient))),
                action=str(fields.get("action", "")).strip().lower(),
                status=status.group(0) if status else None,
                diagnostic=unfold(str(diagnostic)) if diagnostic else None,
            )
        )
    return found
