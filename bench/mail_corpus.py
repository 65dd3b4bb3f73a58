"""Inbound mail against real-world mail: how many corpus mails meet what their source tests assert.

    PYTHONPATH=src .venv/bin/python bench/mail_corpus.py ../shared/mail-corpus [--verbose]
        [--parse-only | --endpoint]

The corpus (its README.md) maps each file to facts in `expectations.json`. Every file goes through
`ingest(raw) -> Observed`; each expectation key is checked against what was observed and counted in
its group (visible text, bounce detection and details, auto-reply, threading, attachments, headers,
bodies, robustness). A mail meets a group when every checked key of that group holds. Keys that are
facts about another tool's internals (email_reply_parser's fragment list, another parser's MIME tree,
byte-identical round trips) are listed as not checked. Threading needs the store/threading pipeline:
until it lands those keys are reported as "needs pipeline".

By default (--endpoint) `ingest` posts each mail to `POST /api/Channels/{id}/inbound` of an
in-process app and reads what it became back from the API (bench/corpus_endpoint.py); keys the API
does not show are reported as not observable. With --parse-only `ingest` is `parse()` alone.

Visible-text values are compared after the normalisation deskpal applies to every visible text
(trailing spaces dropped, runs of blank lines reduced to one, ends stripped): the expected value is
normalised the same way, so a difference in blank lines is not a miss.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email import errors as email_errors
from email import message_from_bytes
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from deskpal.core.addresses import Mailbox, parse_addresses  # noqa: E402
from deskpal.email.inbound.parse import parse  # noqa: E402
from deskpal.email.inbound.parsed import Bounce, MailKind, ParsedAttachment  # noqa: E402
from deskpal.email.inbound.quotes import normalise_whitespace  # noqa: E402
from deskpal.messages.html import html_to_text  # noqa: E402

SKIP_FILES = {"README.md", "MANIFEST.json", "expectations.json"}
GROUPS = (
    "visible text",
    "bounce detection",
    "bounce details",
    "auto-reply",
    "threading",
    "attachments",
    "headers",
    "bodies",
    "robustness",
)
NOT_CHECKED = {
    "fragments_hidden", "fragments_quoted", "fragments_signature", "fragment_count",
    "mime_part_count", "mime_top_level_content_type", "mime_top_level_parts", "body_content_type",
    "html_part_count", "roundtrip_as_string_equals_input_ascii_replace", "line_endings", "charset",
    "effective_content_type", "attachment_0", "remote_mta", "sisimai_results", "flufl_detector",
    "attachment_count_in_followup",
}  # fmt: skip
NEEDS_PIPELINE = {
    "threads_to_message_id", "thread_group", "thread_position", "creates_new_ticket",
    "must_not_reopen_ticket", "must_not_change_ticket_state",
}  # fmt: skip
INFORMATIVE = {"source_test", "note", "body_only"}
EMAIL_DEFECTS = {name for name in dir(email_errors) if name.endswith("Defect")}


@dataclass
class Observed:
    """What ingesting one mail produced, whichever way it was ingested."""

    visible_text: str = ""
    text_body: str | None = None
    html_body: str | None = None
    kind: MailKind = MailKind.MESSAGE
    bounce: Bounce | None = None
    report_type: str | None = None
    auto_reason: str | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    subject: str = ""
    sender: Mailbox | None = None
    to: list[Mailbox] = field(default_factory=list)
    cc: list[Mailbox] = field(default_factory=list)
    reply_to: list[Mailbox] = field(default_factory=list)
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    date: str | None = None
    headers: str = ""
    defects: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def ingest_parse_only(raw: bytes) -> Observed:
    started = time.perf_counter()
    try:
        mail = parse(raw)
    except Exception as exc:  # parse() must never raise: this is a finding, not a crash
        return Observed(error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    internal = [d for d in mail.defects if d.startswith("ParserFailureDefect:")]
    return Observed(
        error=f"parse() fell back after {internal[0].split(':', 1)[1]}" if internal else None,
        visible_text=mail.visible_text,
        text_body=mail.text_body,
        html_body=mail.html_body,
        kind=mail.kind,
        bounce=mail.bounce,
        report_type=mail.report_type,
        auto_reason=mail.auto_reason,
        attachments=mail.attachments,
        subject=mail.subject,
        sender=mail.sender,
        to=mail.to,
        cc=mail.cc,
        reply_to=mail.reply_to,
        message_id=mail.message_id,
        in_reply_to=mail.in_reply_to,
        references=mail.references,
        date=mail.date.isoformat() if mail.date else None,
        headers=mail.headers,
        defects=mail.defects,
        seconds=seconds,
    )


def wrap_body(path: Path, body: bytes) -> bytes:
    """A body-only fixture as the minimal message the corpus README asks for."""
    ctype = "text/html" if path.suffix == ".html" else "text/plain"
    head = (
        "From: Corpus Sender <sender@corpus.example>\r\nTo: support@deskpal.example\r\n"
        f"Subject: {path.stem}\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body


# --- the checks: each returns True (met), False (missed) --------------------------------------------


def _norm(text: str | None) -> str:
    return normalise_whitespace((text or "").replace("\r\n", "\n"))


def _nows(text: str | None) -> str:
    return "".join((text or "").split())


def _addresses(boxes: list[Mailbox]) -> list[str]:
    return [b.address for b in boxes]


def _pairs(boxes: list[Mailbox]) -> list[list[str]]:
    return [[b.name or "", b.address] for b in boxes]


def _expected_pairs(value: list[list[str]]) -> list[list[str]]:
    return [[name or "", address.lower()] for name, address in value]


def _ids(values: list[str]) -> list[str]:
    return [v.strip("<>") for v in values]


def _top_level(o: Observed) -> list[ParsedAttachment]:
    # The source projects (the mail gem, mail-parser) list attachments depth first, those of an
    # attached message included: so does deskpal (converted_from says where each came from).
    return o.attachments


def _mailbox_of(header: str) -> list[tuple[str | None, str]]:
    return [(b.name, b.address) for b in parse_addresses(header)]


_RETURNED = {"message/rfc822", "message/global", "text/rfc822-headers"}


def _enclosed(o: Observed) -> list[Observed]:
    """The attached (or returned) messages, parsed in turn."""
    return [ingest_parse_only(a.data) for a in o.attachments if a.content_type in _RETURNED]


def _enclosed_type(o: Observed) -> list[str]:
    return [
        message_from_bytes(a.data).get_content_type() for a in o.attachments if a.content_type in _RETURNED
    ]


def _failed(o: Observed) -> set[str]:
    return set(o.bounce.recipients) if o.bounce else set()


def _is_bounce(o: Observed) -> bool:
    return o.kind is MailKind.BOUNCE and o.bounce is not None and o.bounce.permanent and not o.bounce.delay


def _is_report(o: Observed) -> bool:
    return o.kind is MailKind.BOUNCE or o.report_type == "delivery-status"


def _not_in(needle: str, o: Observed) -> bool:
    return needle not in o.visible_text


Check = Callable[[Observed, Any], bool]
CHECKS: dict[str, tuple[str, Check]] = {
    # visible text
    "visible_text_equals": ("visible text", lambda o, v: _norm(o.visible_text) == _norm(v)),
    "visible_text_startswith": ("visible text", lambda o, v: _norm(o.visible_text).startswith(_norm(v))),
    "visible_text_contains": ("visible text", lambda o, v: all(s in o.visible_text for s in v)),
    "visible_text_not_contains": ("visible text", lambda o, v: not any(s in o.visible_text for s in v)),
    "visible_text_equals_ignoring_whitespace": (
        "visible text",
        lambda o, v: _nows(o.visible_text) == _nows(v),
    ),
    "visible_text_nonempty": ("visible text", lambda o, v: bool(o.visible_text.strip()) == v),
    "nothing_stripped": ("visible text", lambda o, v: (_norm(o.visible_text) == _norm(o.text_body)) == v),
    "signature_hidden_equals": ("visible text", lambda o, v: _norm(v) not in _norm(o.visible_text)),
    "signature_hidden_startswith": ("visible text", lambda o, v: _not_in(v, o)),
    "signature_hidden_regex": ("visible text", lambda o, v: re.search(v, o.visible_text, re.M) is None),
    "quote_header_startswith": ("visible text", lambda o, v: _not_in(v, o)),
    "quote_header_regex": ("visible text", lambda o, v: re.search(v, o.visible_text, re.M) is None),
    "quote_contains": ("visible text", lambda o, v: not any(s in o.visible_text for s in v)),
    # talon strips quotations but keeps signatures: what we show must be that text or its start
    "quote_stripped_text_equals": (
        "visible text",
        lambda o, v: bool(o.visible_text.strip()) and _norm(v).startswith(_norm(o.visible_text)),
    ),
    "quote_stripped_html_equals_ignoring_whitespace": (
        "visible text",
        lambda o, v: _nows(o.visible_text) == _nows(html_to_text(v)),
    ),
    # bounce detection
    "is_bounce": ("bounce detection", lambda o, v: _is_bounce(o) == v),
    "is_delivery_report": ("bounce detection", lambda o, v: _is_report(o) == v),
    "is_delay_warning": ("bounce detection", lambda o, v: (o.bounce is not None and o.bounce.delay) == v),
    "is_feedback_report": ("bounce detection", lambda o, v: (o.report_type == "feedback-report") == v),
    "delivery_failure": (
        "bounce detection",
        lambda o, v: o.bounce is not None and o.bounce.permanent == (v == "permanent"),
    ),
    # bounce details
    "failed_recipients": ("bounce details", lambda o, v: _failed(o) == {a.lower() for a in v}),
    "final_recipient": ("bounce details", lambda o, v: v.split(";")[-1].strip().lower() in _failed(o)),
    "recipient_count": (
        "bounce details",
        lambda o, v: (
            o.kind is not MailKind.BOUNCE or (o.bounce is not None and len(o.bounce.recipients) == v)
        ),
    ),
    "dsn_status": ("bounce details", lambda o, v: o.bounce is not None and o.bounce.status == v),
    "dsn_action": ("bounce details", lambda o, v: o.bounce is not None and o.bounce.action == v),
    "diagnostic_code": ("bounce details", lambda o, v: o.bounce is not None and o.bounce.diagnostic == v),
    "diagnostic_code_startswith": (
        "bounce details",
        lambda o, v: o.bounce is not None and (o.bounce.diagnostic or "").startswith(v),
    ),
    "retryable": ("bounce details", lambda o, v: o.bounce is not None and (not o.bounce.permanent) == v),
    # auto-reply: automatic mail never answered automatically
    "is_autoreply": ("auto-reply", lambda o, v: (o.kind is MailKind.AUTOREPLY) == v),
    "is_auto_generated": ("auto-reply", lambda o, v: (o.kind is not MailKind.MESSAGE) == v),
    "rejected_as_auto_generated": ("auto-reply", lambda o, v: (o.kind is not MailKind.MESSAGE) == v),
    "zammad_out_of_office": ("auto-reply", lambda o, v: (o.kind is MailKind.AUTOREPLY) == v),
    # attachments
    "attachment_count": ("attachments", lambda o, v: len(_top_level(o)) == v),
    "attachment_filenames": ("attachments", lambda o, v: [a.filename for a in _top_level(o)] == v),
    "attachment_filenames_include": (
        "attachments",
        lambda o, v: set(v) <= {a.filename for a in o.attachments},
    ),
    "attachment_sizes": ("attachments", lambda o, v: [len(a.data) for a in _top_level(o)] == v),
    "attachment_sizes_index1": (
        "attachments",
        lambda o, v: len(_top_level(o)) > 1 and len(_top_level(o)[1].data) == v,
    ),
    "attachment_md5": (
        "attachments",
        lambda o, v: all(
            any(a.filename == name and hashlib.md5(a.data).hexdigest() == md5 for a in o.attachments)
            for name, md5 in v.items()
        ),
    ),
    "first_attachment_inline": (
        "attachments",
        lambda o, v: bool(o.attachments) and o.attachments[0].inline == v,
    ),
    "enclosed_part": (
        "attachments",
        lambda o, v: any(
            a.content_type == v["content_type"] and a.filename == v["name"] for a in o.attachments
        ),
    ),
    "attached_message_content_type": (
        "attachments",
        lambda o, v: v in _enclosed_type(o),
    ),
    "attached_message_subject": ("attachments", lambda o, v: any(e.subject == v for e in _enclosed(o))),
    "attached_message_from": (
        "attachments",
        lambda o, v: any(
            e.sender is not None and [(e.sender.name, e.sender.address)] == _mailbox_of(v)
            for e in _enclosed(o)
        ),
    ),
    "forwarded_part_contains": (
        "attachments",
        lambda o, v: all(
            s in (o.text_body or "") or any(s in (e.text_body or "") for e in _enclosed(o)) for s in v
        ),
    ),
    # headers
    "subject_equals": ("headers", lambda o, v: o.subject == v),
    "subject_startswith": ("headers", lambda o, v: o.subject.startswith(v)),
    "from_address": ("headers", lambda o, v: o.sender is not None and o.sender.address == v.lower()),
    "from_display_name": ("headers", lambda o, v: o.sender is not None and (o.sender.name or "") == v),
    "from_header": (
        "headers",
        lambda o, v: o.sender is not None and [(o.sender.name, o.sender.address)] == _mailbox_of(v),
    ),
    "to_header": ("headers", lambda o, v: [(b.name, b.address) for b in o.to] == _mailbox_of(v)),
    "to_addresses": ("headers", lambda o, v: _addresses(o.to) == [a.lower() for a in v]),
    "to": ("headers", lambda o, v: _pairs(o.to) == _expected_pairs(v)),
    "to_count": ("headers", lambda o, v: len(o.to) == v),
    "to_first_address": ("headers", lambda o, v: bool(o.to) and o.to[0].address == v.lower()),
    "to_domains_include": ("headers", lambda o, v: set(v) <= {a.split("@")[1] for a in _addresses(o.to)}),
    "cc": ("headers", lambda o, v: _pairs(o.cc) == _expected_pairs(v)),
    "reply_to": ("headers", lambda o, v: _pairs(o.reply_to) == _expected_pairs(v)),
    "reply_to_addresses": ("headers", lambda o, v: _addresses(o.reply_to) == [a.lower() for a in v]),
    "message_id": ("headers", lambda o, v: (o.message_id or "").strip("<>") == v.strip("<>")),
    "in_reply_to": ("headers", lambda o, v: _ids(o.in_reply_to) == [i.strip("<>") for i in v]),
    "in_reply_to_blank": ("headers", lambda o, v: (not o.in_reply_to) == v),
    "references": ("headers", lambda o, v: _ids(o.references) == [i.strip("<>") for i in v]),
    "references_equals": ("headers", lambda o, v: _ids(o.references) == [v.strip("<>")]),
    "date_utc": ("headers", lambda o, v: o.date == v),
    "received_header_count": (
        "headers",
        lambda o, v: sum(1 for line in o.headers.split("\n") if line.lower().startswith("received:")) == v,
    ),
    "precedence": ("headers", lambda o, v: f"precedence: {v}".lower() in o.headers.lower()),
    "resent_from": ("headers", lambda o, v: all(a.lower() in o.headers.lower() for a in v)),
    "resent_to": ("headers", lambda o, v: all(a.lower() in o.headers.lower() for a in v)),
    "resent_message_id": ("headers", lambda o, v: v in o.headers),
    # bodies
    "body_equals": (
        "bodies",
        lambda o, v: (o.text_body or "").replace("\r\n", "\n") == v.replace("\r\n", "\n"),
    ),
    "body_equals_stripped": ("bodies", lambda o, v: (o.text_body or "").strip() == v.strip()),
    "body_contains": (
        "bodies",
        lambda o, v: all(s in (o.text_body or "") or s in html_to_text(o.html_body or "") for s in v),
    ),
    "first_part_nonempty": ("bodies", lambda o, v: bool((o.text_body or o.html_body or "").strip()) == v),
    # robustness (every file is also checked for an error and its time)
    "must_parse_without_error": ("robustness", lambda o, v: (o.error is None) == v),
    "max_parse_seconds": ("robustness", lambda o, v: o.seconds <= v),
    "mime_defects": (
        "robustness",
        lambda o, v: {d for d in o.defects if d in EMAIL_DEFECTS} == set(v),
    ),
    "mime_defects_include": ("robustness", lambda o, v: set(v) <= set(o.defects)),
}


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in SKIP_FILES)


def run(
    root: Path, ingest: Callable[[bytes], Observed], verbose: bool, unobservable: frozenset[str] = frozenset()
) -> int:
    expectations: dict[str, dict[str, Any]] = json.loads((root / "expectations.json").read_text())
    stated: Counter[str] = Counter()
    met: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    unchecked: Counter[str] = Counter()
    pipeline: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    errors: list[str] = []
    checked_mails = 0
    clean_mails = 0
    timings: list[tuple[float, str]] = []
    files = corpus_files(root)
    for path in files:
        rel = path.relative_to(root).as_posix()
        facts = expectations.get(rel, {})
        raw = path.read_bytes()
        if facts.get("body_only"):
            raw = wrap_body(path, raw)
        observed = ingest(raw)
        timings.append((observed.seconds, rel))
        if observed.error:
            errors.append(f"{rel}: {observed.error}")
        per_group: dict[str, list[str]] = defaultdict(list)
        for key, value in facts.items():
            if key in INFORMATIVE:
                continue
            if key in NEEDS_PIPELINE:
                pipeline[key] += 1
                continue
            if key in unobservable:
                hidden[key] += 1
                continue
            if key not in CHECKS:
                unchecked[key] += 1
                continue
            group, check = CHECKS[key]
            try:
                ok = check(observed, value)
            except Exception as exc:  # a check that cannot be applied is a miss, with the reason
                ok = False
                key = f"{key} ({type(exc).__name__}: {exc})"
            per_group.setdefault(group, [])
            if not ok:
                per_group[group].append(key)
        if per_group:
            checked_mails += 1
            clean_mails += all(not failed for failed in per_group.values())
        for group, failed in per_group.items():
            stated[group] += 1
            if failed:
                misses[group].append(f"{rel}: {', '.join(failed)}" + (_explain(observed) if verbose else ""))
            else:
                met[group] += 1

    print(f"corpus: {root} ({len(files)} files, {len(expectations)} with expectations)\n")
    print(f"{'group':<18} {'met':>5} / {'stated':<6}  share")
    for group in GROUPS:
        if group == "threading" and not stated[group]:
            print(f"{group:<18} {sum(pipeline.values())} facts stated by the corpus")
            continue
        total = stated[group]
        share = f"{100 * met[group] / total:5.1f}%" if total else "    -"
        print(f"{group:<18} {met[group]:>5} / {total:<6}  {share}")
    print(f"{'all checked':<18} {clean_mails:>5} / {checked_mails:<6}  mails meeting every checked fact")
    parsed_ok = len(files) - len(errors)
    print(f"\n{'stored' if unobservable else 'parsed'} without error: {parsed_ok} / {len(files)}")
    timings.sort(reverse=True)
    total_seconds = sum(t for t, _ in timings)
    if not unobservable:  # through the endpoint the run's own summary gives the times
        slowest = f"slowest {timings[0][0] * 1000:.0f} ms ({timings[0][1]})"
        print(f"parse time: total {total_seconds:.2f} s, {slowest}")
    if unchecked:
        print(
            "not checked (another tool's internals): "
            + ", ".join(f"{k} x{n}" for k, n in sorted(unchecked.items()))
        )
    if hidden:
        print("not observable through the API: " + ", ".join(f"{k} x{n}" for k, n in sorted(hidden.items())))
    for line in errors:
        print(f"ERROR {line}")
    print()
    for group in GROUPS:
        for line in misses.get(group, []) if verbose else misses.get(group, [])[:0]:
            print(f"MISS [{group}] {line}")
    if not verbose and any(misses.values()):
        print(
            "misses: "
            + ", ".join(f"{g} {len(m)}" for g, m in misses.items() if m)
            + " (--verbose lists them)"
        )
    return 1 if errors else 0


def _explain(o: Observed) -> str:
    bounce = (
        f" bounce={o.bounce.recipients} {o.bounce.status} {o.bounce.action} perm={o.bounce.permanent}"
        if o.bounce
        else ""
    )
    visible = o.visible_text[:300].replace("\n", "⏎")
    files = [(a.filename, a.content_type, len(a.data), a.converted_from) for a in o.attachments][:6]
    return (
        f"\n    kind={o.kind.value} report={o.report_type} auto={o.auto_reason}{bounce}"
        f"\n    subject={o.subject!r} from={o.sender} to={o.to[:3]}"
        f"\n    attachments={files}\n    visible={visible!r}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path, help="the corpus folder (../shared/mail-corpus)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--parse-only", action="store_true", help="ingest = parse() alone")
    mode.add_argument(
        "--endpoint",
        action="store_true",
        help="ingest = POST /api/Channels/{id}/inbound of an in-process app, read back from the API "
        "(the default)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="print every miss with what was observed"
    )
    args = parser.parse_args()
    if args.parse_only:
        return run(args.path, ingest_parse_only, args.verbose)
    return run_through_endpoint(args.path, args.verbose)


def run_through_endpoint(root: Path, verbose: bool) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus_endpoint import UNOBSERVABLE, run_endpoint

    expectations: dict[str, dict[str, Any]] = json.loads((root / "expectations.json").read_text())
    mails = []
    for path in corpus_files(root):
        rel = path.relative_to(root).as_posix()
        raw = path.read_bytes()
        mails.append((rel, wrap_body(path, raw) if expectations.get(rel, {}).get("body_only") else raw))
    observed, summary = run_endpoint(mails)
    print(
        f"endpoint: {len(mails)} mails posted in {summary['post_seconds']:.1f} s, filed by "
        f"{summary['filed_seconds']:.1f} s; statuses {summary['statuses']}"
    )
    ordered = iter(observed[rel] for rel, _ in mails)
    return run(root, lambda _raw: next(ordered), verbose, frozenset(UNOBSERVABLE))


if __name__ == "__main__":
    raise SystemExit(main())
