"""bench/mail_corpus.py's endpoint mode: every corpus mail through POST /api/Channels/{id}/inbound.

An in-process app (httpx ASGITransport) on a temporary SQLite database. Each mail is posted to a
channel of a customer of its own: fixture files reuse Message-IDs for different mails, and within
one customer all but the first would be duplicates or filed as the first. The worker runs
in-process until idle, and what the mail became is read back from the API only:
/api/InboundMails/{id} (status, kind, outcome), the message it became (/api/TicketMessages/{id}:
message = visible text, bodies, addresses, headers, isAutoReply) and that message's attachments
(/api/TicketMessages/{id}/attachments, bytes from /api/File/{token}).

What the API does not show is not guessed: the keys in UNOBSERVABLE are reported as such.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from deskpal.core.addresses import Mailbox, parse_addresses
from deskpal.email.inbound.parsed import Bounce, MailKind, ParsedAttachment

# Facts the API does not expose for a mail: a bounce naming no mail deskpal sent is stored with its
# kind and outcome only (no recipients, status or diagnostic: nothing of ours to mark), defects and
# the parser's report type and inline flags are not part of any DTO.
UNOBSERVABLE = {
    "failed_recipients", "final_recipient", "recipient_count", "dsn_status", "dsn_action",
    "diagnostic_code", "diagnostic_code_startswith", "retryable", "delivery_failure",
    "is_feedback_report", "mime_defects", "mime_defects_include", "max_parse_seconds",
    "first_attachment_inline", "attached_message_content_type", "attached_message_subject",
    "attached_message_from", "forwarded_part_contains",
}  # fmt: skip
_ID = re.compile(r"<[^<>\s]+>")


def _boxes(value: str | None) -> list[Mailbox]:
    try:
        return parse_addresses(value or "")
    except ValueError:
        return []


def _header_ids(headers: str, name: str) -> list[str]:
    prefix = name.lower() + ":"
    for line in headers.split("\n"):
        if line.lower().startswith(prefix):
            return _ID.findall(line)
    return []


class Endpoint:
    """The app, one tenant, and the calls that post a mail and read back what it became."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="deskpal-corpus-")
        self.client: httpx.AsyncClient
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> Endpoint:
        from deskpal.app import create_app
        from deskpal.config import Settings
        from deskpal.migrate import upgrade_async

        data = Path(self.tmp.name)
        url = f"sqlite+aiosqlite:///{data / 'deskpal.db'}"
        await upgrade_async(url)
        settings = Settings(
            data_dir=data, database_url=url, run_worker=False, argon2_time_cost=1, argon2_memory_kib=1024
        )
        self.app = create_app(settings, run_worker=False)
        self.db = self.app.state.db
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://corpus.test", timeout=120)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.db.engine.dispose()
        self.tmp.cleanup()

    async def tenant(self, n: int) -> None:
        """A customer of its own for the next mail: filing finds a Message-ID the customer already
        has on any of its channels, and fixture files reuse Message-IDs for different mails."""
        from deskpal.core.db import transaction
        from deskpal.customers.service import create_customer

        async with transaction(self.db) as session:
            made = await create_customer(
                session,
                f"Corpus {n}",
                admin_email=f"admin{n}@corpus.test",
                admin_password="corpus pass phrase",
            )
        self.headers = {"Authorization": f"Bearer {made.api_key}"}

    async def _ok(self, method: str, url: str, **kw: Any) -> Any:
        r = await self.client.request(method, url, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:300]}")
        return r.json() if r.headers.get("content-type", "").endswith("json") else r.content

    async def channel(self, name: str) -> int:
        body = {"name": name[:200], "channelType": "Email", "settings": {}}
        return int((await self._ok("POST", "/api/Channels", json=body))["channelID"])

    async def post(self, channel_id: int, raw: bytes) -> int:
        answer = await self._ok(
            "POST", f"/api/Channels/{channel_id}/inbound", content=raw,
            headers={"Content-Type": "message/rfc822"},
        )  # fmt: skip
        return int(answer["inboundMailID"])

    async def run_jobs(self) -> None:
        from deskpal.core.worker import Worker

        await Worker(self.db, poll_seconds=0.01).run_pending()

    async def observe(self, inbound_id: int, posted_at: float) -> tuple[Any, dict[str, Any]]:
        """The Observed of one mail (mail_corpus.Observed), and its InboundMail row as shown."""
        from mail_corpus import Observed  # the caller's dataclass: one shape for both modes

        row = await self._ok("GET", f"/api/InboundMails/{inbound_id}")
        kind = MailKind(row["kind"]) if row["kind"] else MailKind.MESSAGE
        error = None if row["status"] == "stored" else f"{row['status']}: {row['error'] or row['outcome']}"
        o = Observed(kind=kind, error=error, seconds=time.perf_counter() - posted_at)
        if kind is MailKind.BOUNCE:
            delay = (row["outcome"] or "").startswith("a delay warning")
            o.bounce = Bounce(recipients=(), permanent=not delay, delay=delay)
        if kind is MailKind.REPORT:
            o.report_type = "report"
        if kind is MailKind.AUTOREPLY:
            o.auto_reason = row["outcome"]
        if row["messageID"] is None:  # a bounce, or automatic mail answering nothing: no message
            o.subject = row["subject"] or ""
            sender = _boxes(row["fromAddress"])
            o.sender = sender[0] if sender else None
            o.message_id = row["messageIdentifier"]
            return o, row
        msg = await self._ok("GET", f"/api/TicketMessages/{row['messageID']}")
        o.visible_text = msg.get("message") or ""
        o.text_body, o.html_body = msg.get("textBody"), msg.get("htmlBody")
        o.subject = msg.get("subject") or ""
        sender = _boxes(msg.get("fromAddress"))
        o.sender = Mailbox(sender[0].address, msg.get("fromName") or None) if sender else None
        o.to, o.cc = _boxes(msg.get("toAddress")), _boxes(msg.get("ccAddress"))
        o.reply_to = _boxes(msg.get("replyToAddress"))
        o.message_id = msg.get("messageIdentifier")
        o.headers = msg.get("headers") or ""
        o.in_reply_to = _header_ids(o.headers, "In-Reply-To")
        o.references = _header_ids(o.headers, "References")
        if msg.get("messageDate"):
            o.date = msg["messageDate"].replace("Z", "+00:00")
        if msg.get("isAutoReply") and kind is MailKind.MESSAGE:
            o.kind = MailKind.AUTOREPLY
        files = await self._ok("GET", f"/api/TicketMessages/{row['messageID']}/attachments")
        index = {f["ticketMessageAttachmentID"]: i for i, f in enumerate(files)}
        for f in files:
            data = await self._ok("GET", f"/api/File/{f['accessToken']}")
            o.attachments.append(
                ParsedAttachment(
                    filename=f["fileName"],
                    content_type=f["contentType"],
                    data=data if isinstance(data, bytes) else str(data).encode(),
                    content_id=f["contentId"],
                    converted_from=index.get(f["convertedFromAttachmentID"]),
                )
            )
        return o, row


async def ingest_all(mails: list[tuple[str, bytes]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post every mail (each to its own channel), run the jobs until idle, read each back.
    Returns the Observed per file and a summary (statuses, seconds)."""
    observed: dict[str, Any] = {}
    statuses: dict[str, int] = {}
    async with Endpoint() as ep:
        started = time.perf_counter()
        posted: list[tuple[str, int, float, dict[str, str]]] = []
        for n, (rel, raw) in enumerate(mails):
            await ep.tenant(n)
            channel_id = await ep.channel(rel)
            posted.append((rel, await ep.post(channel_id, raw), time.perf_counter(), ep.headers))
        post_seconds = time.perf_counter() - started
        await ep.run_jobs()
        filed_seconds = time.perf_counter() - started
        for rel, inbound_id, at, headers in posted:
            ep.headers = headers
            o, row = await ep.observe(inbound_id, at)
            observed[rel] = o
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    summary = {"statuses": statuses, "post_seconds": post_seconds, "filed_seconds": filed_seconds}
    return observed, summary


def run_endpoint(mails: list[tuple[str, bytes]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return asyncio.run(ingest_all(mails))
