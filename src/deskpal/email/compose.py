"""Outgoing mail as MIME: one pure builder, so that a preview shows exactly what a send sends.

`build(mail)` turns a `Mail` into an `EmailMessage` (RFC 5322 headers, RFC 2045 bodies) with no
database and no network; `recipients(mail)` is its SMTP envelope. The tree, omitting each wrapper
that would hold one part:

    multipart/mixed
      multipart/related                (only with inline images the HTML references as cid:)
        multipart/alternative          (always: text/plain, then text/html)
        image/... (Content-ID, inline)
      attachments... (base64, Content-Disposition: attachment with the file name)

The HTML is sanitised again on the way out (an edited answer, a template), then the open-tracking
pixel is appended. Threading headers (Message-ID, In-Reply-To, References) and List-Unsubscribe
are written verbatim: the standard library folds a long unstructured value as RFC 2047 encoded
words, which mail clients do not read as message ids or URLs (threading would break).
"""

from __future__ import annotations

import email.policy
import html as html_lib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address, UnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

from deskpal.core.addresses import Mailbox, parse_addresses, parse_mailbox
from deskpal.core.header_registry import CachedHeaderRegistry, with_cached_headers
from deskpal.messages.html import html_to_text, sanitize_html

FALLBACK_DOMAIN = "deskpal.invalid"
DEFAULT_TAG = "[#{ticketID}]"
_PLACEHOLDER = "{ticketID}"
# Bodies are encoded 7-bit clean (quoted-printable or base64) when built, so that no relay needs
# 8BITMIME; headers are RFC 2047-encoded by the SMTP policy (no SMTPUTF8 needed either).
POLICY = with_cached_headers(email.policy.SMTP)
_PART_POLICY = POLICY.clone(cte_type="7bit")
_MSG_ID = re.compile(r"<[^<>\s]+>")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but the colon
# The headers build() writes itself: an extra header cannot replace or double them.
_OWN_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "in-reply-to",
        "references", "mime-version", "auto-submitted", "list-unsubscribe", "list-unsubscribe-post",
        "content-type", "content-transfer-encoding", "content-disposition", "content-id", "sender",
        "return-path", "resent-from", "resent-to", "resent-cc", "resent-bcc",
    }
)  # fmt: skip
# The headers describe() shows besides From/To/Cc/Subject.
_SHOWN_HEADERS = (
    "Date", "Message-ID", "In-Reply-To", "References", "Reply-To", "Auto-Submitted",
    "List-Unsubscribe", "List-Unsubscribe-Post",
)  # fmt: skip


class _Verbatim(UnstructuredHeader):
    """An ASCII header folded only at its spaces, never turned into encoded words."""

    name: str  # BaseHeader's property: the registry mixes BaseHeader in

    def fold(self, *, policy: Any) -> str:
        width = policy.max_line_length or 998
        name = self.name
        lines = [f"{name}:"]
        for word in str(self).split():
            if len(lines[-1]) + 1 + len(word) > width and lines[-1] != f"{name}:":
                lines.append("")
            lines[-1] += " " + word
        return str(policy.linesep).join(lines) + str(policy.linesep)


_VERBATIM = CachedHeaderRegistry(default_class=_Verbatim, use_default_map=False)


@dataclass(frozen=True, slots=True)
class Part:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None  # referenced as cid:<id> from the HTML: an inline image


@dataclass(slots=True, kw_only=True)
class Mail:
    from_address: str
    from_name: str | None = None
    to: list[str]  # each as stored: "Name <a@b>", bare, or a list "a@b, Name <c@d>"
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)  # envelope only: never written as a header
    reply_to: str | None = None
    subject: str
    text: str | None = None
    html: str | None = None  # sanitised again by build()
    message_id: str  # "<...@domain>", fixed before the first attempt
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    date: datetime
    # RFC 3834 "Auto-Submitted: auto-replied". Automatic mail carries no tracking pixel: an open
    # of a notification says nothing about the conversation, and automatic mail should not track.
    auto_submitted: bool = False
    list_unsubscribe_url: str | None = None  # RFC 2369 List-Unsubscribe + RFC 8058 one-click
    pixel_url: str | None = None  # a 1x1 <img> appended to the HTML (not on auto_submitted mail)
    attachments: list[Part] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # extra ones: X-Deskpal-Ticket-ID ...


# --- headers -----------------------------------------------------------------------------------------


def _no_newline(name: str, value: str | None) -> None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError(f"{name}: a header value must not contain CR or LF")


def _ascii_verbatim(name: str, value: str) -> str:
    _no_newline(name, value)
    value = value.strip()
    if not value.isascii():
        raise ValueError(f"{name}: must be ASCII")
    return value


def _message_id(name: str, value: str) -> str:
    value = _ascii_verbatim(name, value)
    if not _MSG_ID.fullmatch(value):
        raise ValueError(f"{name}: {value!r} is not a message id (<...@...>)")
    return value


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError as exc:
        raise ValueError(f"{domain!r} is not a domain") from exc


def _address(name: str, box: Mailbox) -> Address:
    local, _, domain = box.address.rpartition("@")
    if not local.isascii():
        raise ValueError(f"{name}: {box.address!r} needs SMTPUTF8 (a non-ASCII local part)")
    return Address(display_name=box.name or "", username=local, domain=_ascii_domain(domain))


def _mailboxes(name: str, values: Sequence[str]) -> list[Mailbox]:
    boxes: list[Mailbox] = []
    for i, value in enumerate(values):
        _no_newline(f"{name}[{i}]", value)
        try:
            boxes.extend(parse_addresses(value))
        except ValueError as exc:
            raise ValueError(f"{name}[{i}]: {exc}") from None
    return boxes


def _from(mail: Mail) -> Address:
    _no_newline("from_address", mail.from_address)
    _no_newline("from_name", mail.from_name)
    try:
        box = parse_mailbox(mail.from_address)
    except ValueError as exc:
        raise ValueError(f"from_address: {exc}") from None
    return _address("from_address", Mailbox(box.address, mail.from_name or box.name))


def _https_url(name: str, value: str) -> str:
    value = _ascii_verbatim(name, value)
    if urlsplit(value).scheme not in {"http", "https"} or any(c in value for c in ' <>"'):
        raise ValueError(f"{name}: must be an http(s) URL")
    return value


def _extra_headers(headers: dict[str, str]) -> Iterator[tuple[str, str]]:
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _OWN_HEADERS:
            raise ValueError(f"headers: {name!r} is not a header an extra may set")
        _no_newline(f"headers[{name}]", value)
        yield name, value


# --- bodies ------------------------------------------------------------------------------------------


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, a paragraph per blank-line block, line breaks kept."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n").strip())
    return "\n".join(
        "<p>" + "<br>\n".join(html_lib.escape(line) for line in block.split("\n")) + "</p>"
        for block in blocks
        if block.strip()
    )


def _pixel(url: str) -> str:
    src = html_lib.escape(url, quote=True)
    return f'<img src="{src}" alt="" width="1" height="1" style="display:block" border="0">'


def _document(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n<body>\n' + body + "\n</body></html>\n"
    )


def bodies(mail: Mail) -> tuple[str, str]:
    """The text and HTML bodies build() writes: the HTML sanitised, with the pixel, as a document."""
    clean = sanitize_html(mail.html) if mail.html is not None else None
    text = mail.text if mail.text is not None else html_to_text(clean or "")
    body = clean if clean is not None else text_to_html(text)
    if mail.pixel_url and not mail.auto_submitted:
        body += "\n" + _pixel(_https_url("pixel_url", mail.pixel_url))
    return text, _document(body)


def _cid(value: str) -> str:
    cid = _ascii_verbatim("content_id", value).strip("<>")
    if not cid or any(c in cid for c in " <>\"'()"):
        raise ValueError(f"content_id: {value!r} is not a content id")
    return cid


def _part(att: Part, index: int, *, inline_cid: str | None) -> MIMEPart:
    where = f"attachments[{index}]"
    _no_newline(f"{where}.filename", att.filename)
    _no_newline(f"{where}.content_type", att.content_type)
    maintype, _, subtype = att.content_type.strip().lower().partition("/")
    if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+", maintype) or not re.fullmatch(r"[a-z0-9!#$&^_.+-]+", subtype):
        maintype, subtype = "application", "octet-stream"
    if maintype == "multipart":
        maintype, subtype = "application", "octet-stream"  # data, not a tree of ours
    name = att.filename or "attachment"
    part = MIMEPart(policy=_PART_POLICY)
    part.set_content(
        att.data,
        maintype=maintype,
        subtype=subtype,
        cte="base64",
        disposition="inline" if inline_cid else "attachment",
        filename=name,
        params={"name": name},
    )
    if inline_cid:
        part["Content-ID"] = _VERBATIM("Content-ID", f"<{inline_cid}>")
    return part


def _referenced_cids(html: str) -> set[str]:
    return {m.lower() for m in re.findall(r"""cid:([^"'\s>)]+)""", html, flags=re.IGNORECASE)}


def _tree(mail: Mail) -> MIMEPart:
    text, html = bodies(mail)
    alternative = MIMEPart(policy=_PART_POLICY)
    alternative.set_content(text, subtype="plain")
    alternative.add_alternative(html, subtype="html")
    used = _referenced_cids(html)
    inline: list[MIMEPart] = []
    attached: list[MIMEPart] = []
    for i, att in enumerate(mail.attachments):
        cid = _cid(att.content_id) if att.content_id else None
        if cid is not None and cid.lower() in used:
            inline.append(_part(att, i, inline_cid=cid))
        else:
            attached.append(_part(att, i, inline_cid=None))
    root: MIMEPart = alternative
    if inline:
        related = MIMEPart(policy=_PART_POLICY)
        related.make_related()
        for child in (alternative, *inline):
            related.attach(child)
        root = related
    if attached:
        mixed = MIMEPart(policy=_PART_POLICY)
        mixed.make_mixed()
        for child in (root, *attached):
            mixed.attach(child)
        root = mixed
    return root


# --- the message ------------------------------------------------------------------------------------


def build(mail: Mail) -> EmailMessage:
    """The message as it goes on the wire (serialise with `as_bytes()`); never a Bcc header.

    ValueError naming the field for a header value with CR or LF, an address that is not one, a
    malformed message id or URL, or an extra header that would replace one of ours.
    """
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _from(mail)
    to = [_address("to", b) for b in _mailboxes("to", mail.to)]
    cc = [_address("cc", b) for b in _mailboxes("cc", mail.cc)]
    for box in _mailboxes("bcc", mail.bcc):
        _address("bcc", box)  # checked like the others, never written
    if to:
        msg["To"] = to
    if cc:
        msg["Cc"] = cc
    if mail.reply_to:
        _no_newline("reply_to", mail.reply_to)
        try:
            msg["Reply-To"] = _address("reply_to", parse_mailbox(mail.reply_to))
        except ValueError as exc:
            raise ValueError(f"reply_to: {exc}") from None
    _no_newline("subject", mail.subject)
    msg["Subject"] = mail.subject
    date = mail.date if mail.date.tzinfo is not None else mail.date.replace(tzinfo=UTC)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _VERBATIM("Message-ID", _message_id("message_id", mail.message_id))
    if mail.in_reply_to:
        msg["In-Reply-To"] = _VERBATIM("In-Reply-To", _message_id("in_reply_to", mail.in_reply_to))
    refs = [_message_id(f"references[{i}]", r) for i, r in enumerate(mail.references)]
    if refs:
        msg["References"] = _VERBATIM("References", " ".join(refs))
    if mail.auto_submitted:
        msg["Auto-Submitted"] = _VERBATIM("Auto-Submitted", "auto-replied")
    if mail.list_unsubscribe_url:
        url = _https_url("list_unsubscribe_url", mail.list_unsubscribe_url)
        msg["List-Unsubscribe"] = _VERBATIM("List-Unsubscribe", f"<{url}>")
        msg["List-Unsubscribe-Post"] = _VERBATIM("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    for name, value in _extra_headers(mail.headers):
        msg[name] = _VERBATIM(name, value) if value.isascii() else value
    msg["MIME-Version"] = "1.0"
    tree = _tree(mail)
    for name, value in tree.items():
        msg[name] = value
    msg.set_payload(tree.get_payload())
    return msg


def recipients(mail: Mail) -> list[str]:
    """The SMTP envelope: bare addresses of to, cc and bcc, each once (without regard to case)."""
    seen: dict[str, None] = {}
    for name, values in (("to", mail.to), ("cc", mail.cc), ("bcc", mail.bcc)):
        for box in _mailboxes(name, values):
            seen.setdefault(box.address.lower(), None)
    return list(seen)


def new_message_id(from_address: str) -> str:
    """A fresh `<...@domain>` on the sender's domain (or deskpal.invalid when it has none)."""
    try:
        domain = _ascii_domain(parse_mailbox(from_address).address.rpartition("@")[2])
    except ValueError:
        domain = FALLBACK_DOMAIN
    return make_msgid(domain=domain)


# --- subjects ----------------------------------------------------------------------------------------

_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|wg)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.IGNORECASE)


def _tag(tag: str, ticket_id: int) -> str:
    if _PLACEHOLDER not in tag:
        raise ValueError(f"the subject tag {tag!r} must contain {_PLACEHOLDER}")
    return tag.replace(_PLACEHOLDER, str(ticket_id))


def _prefixed(prefix: str, pattern: re.Pattern[str], subject: str | None, ticket_id: int, tag: str) -> str:
    rest = " ".join((subject or "").split())  # a folded subject's line breaks are spaces
    while match := pattern.match(rest):
        rest = rest[match.end() :]
    if ticket_id_in_subject(rest, tag) != ticket_id:
        rest = f"{_tag(tag, ticket_id)} {rest}".strip()
    return f"{prefix} {rest}"


def tagged_subject(subject: str | None, ticket_id: int, tag: str = DEFAULT_TAG) -> str:
    """`[#123] subject`: a new mail's subject with the ticket tag once (inbound threading reads it)."""
    rest = " ".join((subject or "").split())
    if ticket_id_in_subject(rest, tag) == ticket_id:
        return rest
    return f"{_tag(tag, ticket_id)} {rest}".strip()


def reply_subject(subject: str | None, ticket_id: int, tag: str = DEFAULT_TAG) -> str:
    """`Re: [#123] subject`: one Re (Re/RE/AW/SV/Antw are read as one), the ticket tag once."""
    return _prefixed("Re:", _REPLY_PREFIX, subject, ticket_id, tag)


def forward_subject(subject: str | None, ticket_id: int, tag: str = DEFAULT_TAG) -> str:
    """`Fwd: [#123] subject`: one Fwd (Fwd/Fw/WG read as one), the ticket tag once."""
    return _prefixed("Fwd:", _FORWARD_PREFIX, subject, ticket_id, tag)


def _tag_pattern(tag: str) -> re.Pattern[str]:
    before, sep, after = tag.partition(_PLACEHOLDER)
    if not sep:
        raise ValueError(f"the subject tag {tag!r} must contain {_PLACEHOLDER}")
    return re.compile(re.escape(before) + r"\s*(\d{1,15})\s*" + re.escape(after), re.IGNORECASE)


def ticket_id_in_subject(subject: str | None, tag: str = DEFAULT_TAG) -> int | None:
    """The ticket id the subject's tag carries (the first tag), or None."""
    match = _tag_pattern(tag).search(subject or "")
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


# --- threading ---------------------------------------------------------------------------------------


def message_ids(value: str | None) -> list[str]:
    """The `<...>` message ids in a stored header value (References holds several)."""
    return _MSG_ID.findall(value or "")


def thread_references(
    parent_references: Sequence[str], parent_message_id: str | None, *, limit: int = 20
) -> list[str]:
    """The References of a reply (RFC 5322 3.6.4): the parent's References (pass its In-Reply-To
    when it has none), then the parent's Message-ID; each id once, kept verbatim. Over `limit`,
    the first id (the thread's root) and the latest ones are kept, as mail clients trim."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    ids: dict[str, None] = {}
    for value in parent_references:
        for mid in message_ids(value):
            ids.setdefault(mid, None)
    for mid in message_ids(parent_message_id):
        ids.pop(mid, None)
        ids[mid] = None  # the parent is always the last
    chain = list(ids)
    if len(chain) <= limit:
        return chain
    return [chain[0], *chain[len(chain) - limit + 1 :]] if limit > 1 else chain[-1:]


# --- preview -----------------------------------------------------------------------------------------


def _decoded(part: EmailMessage | MIMEPart) -> str:
    content = part.get_content()
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def _walk(part: MIMEPart, inline: bool, out: dict[str, Any]) -> None:
    ctype = part.get_content_type()
    if part.is_multipart():
        for child in part.iter_parts():
            _walk(child, inline or ctype == "multipart/related", out)
        return
    disposition = part.get_content_disposition()
    if disposition is None and ctype == "text/plain" and out["textBody"] is None:
        out["textBody"] = _decoded(part)
    elif disposition is None and ctype == "text/html" and out["htmlBody"] is None:
        out["htmlBody"] = _decoded(part)
    else:
        data = part.get_payload(decode=True)
        cid = part.get("Content-ID")
        out["attachments"].append(
            {
                "fileName": part.get_filename(),
                "contentType": ctype,
                "fileSizeBytes": len(data) if isinstance(data, bytes) else 0,
                "contentId": str(cid).strip("<>") if cid and inline else None,
                "inline": inline and disposition == "inline",
            }
        )


def describe(mail: Mail, message: EmailMessage | None = None) -> dict[str, Any]:
    """What the mail is, read back from the built message (`build(mail)` unless it is given), for
    the preview: subject, from, to, cc, bcc (from the Mail: the message never holds them), the
    threading/unsubscribe/auto-submitted headers, the bodies and the attachment list."""
    msg = message if message is not None else build(mail)
    out: dict[str, Any] = {
        "subject": str(msg["Subject"]),
        "from": str(msg["From"]),
        "to": [str(a) for a in msg["To"].addresses] if msg["To"] else [],
        "cc": [str(a) for a in msg["Cc"].addresses] if msg["Cc"] else [],
        "bcc": [b.formatted() for b in _mailboxes("bcc", mail.bcc)],
        "headers": {name: str(msg[name]) for name in _SHOWN_HEADERS if msg[name] is not None},
        "textBody": None,
        "htmlBody": None,
        "attachments": [],
    }
    out["headers"].update({name: str(msg[name]) for name in mail.headers})
    _walk(msg, False, out)
    return out
