"""What a raw RFC 5322 mail is once parsed: the contract between the parser (parse.py) and the
pipeline that stores, threads and files it (receive, threading).

Everything here is decoded and normalised: header values are Unicode, addresses lower-cased
(core.addresses.Mailbox), Message-IDs kept as `<id>` with the angle brackets, dates timezone-aware
UTC. Nothing here touches the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from deskpal.core.addresses import Mailbox


class MailKind(enum.StrEnum):
    MESSAGE = "message"  # a mail a person wrote
    BOUNCE = "bounce"  # a delivery-status report of a failure (or a delay warning: see Bounce.delay)
    AUTOREPLY = "autoreply"  # RFC 3834 automatic mail, out-of-office and vacation answers
    REPORT = "report"  # other machine reports: ARF feedback, read receipts (MDN), success DSNs


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    filename: str  # decoded (RFC 2047/2231); a made-up name ("attachment-1.bin") when it had none
    content_type: str  # lower-case type/subtype
    data: bytes
    content_id: str | None = None  # without angle brackets, for cid: references in the HTML
    inline: bool = False  # Content-Disposition inline (an embedded image)
    # Index into ParsedMail.attachments of the container it was unpacked from (a winmail.dat, an
    # attached message/rfc822); None for a part of the mail itself.
    converted_from: int | None = None


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery-status report: who it failed for and what the reporting server said."""

    recipients: tuple[str, ...]  # the failed (or delayed) final recipients, lower-cased
    status: str | None = None  # RFC 3463 status, e.g. "5.1.1"
    diagnostic: str | None = None  # Diagnostic-Code or the server's words
    action: str | None = None  # RFC 3464 Action: failed, delayed, delivered, relayed, expanded
    permanent: bool = True  # a hard bounce (5.x.x); False for a temporary failure
    delay: bool = False  # only a warning that delivery is delayed: marks nothing as bounced
    # Message-IDs of the original mail the report quotes (its message/rfc822 or text/rfc822-headers
    # part, or ids found in the report body): how it is matched to the outbound message deskpal sent.
    original_message_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SpamMarks:
    """What upstream filters said (X-Spam-Flag, X-Spam-Status, X-Spam-Score), kept for the AI."""

    flag: bool | None = None
    status: str | None = None
    score: float | None = None


@dataclass(slots=True, kw_only=True)
class ParsedMail:
    message_id: str | None  # `<id>`; None when the mail has none (or an unusable one)
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    subject: str = ""
    sender: Mailbox | None = None  # From (the first mailbox), display name decoded
    reply_to: list[Mailbox] = field(default_factory=list)
    to: list[Mailbox] = field(default_factory=list)
    cc: list[Mailbox] = field(default_factory=list)
    date: datetime | None = None
    text_body: str | None = None  # the full plain text (derived from the HTML when none was sent)
    html_body: str | None = None  # the full HTML as sent (the messages layer sanitises it)
    # What the sender wrote in this mail: the text with quoted history and signature removed.
    visible_text: str = ""
    headers: str = ""  # the header block, decoded, one `Name: value` per line, as stored
    attachments: list[ParsedAttachment] = field(default_factory=list)
    kind: MailKind = MailKind.MESSAGE
    auto_reason: str | None = None  # why it is automatic, e.g. "Auto-Submitted: auto-replied"
    bounce: Bounce | None = None
    # The report-type of a multipart/report ("delivery-status", "feedback-report",
    # "disposition-notification"), or "delivery-status" for a bounce read from a non-standard shape.
    report_type: str | None = None
    spam: SpamMarks = field(default_factory=SpamMarks)
    defects: list[str] = field(default_factory=list)  # Python email defect class names

    @property
    def is_automatic(self) -> bool:
        """Never answered automatically, never reopens a ticket (bounces and reports included)."""
        return self.kind is not MailKind.MESSAGE

    @property
    def answer_to(self) -> list[Mailbox]:
        """Where a reply goes: Reply-To when present, else From."""
        return self.reply_to or ([self.sender] if self.sender else [])
