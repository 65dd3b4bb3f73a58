"""A parsed mail filed: a bounce marks what it reports on; any other mail goes through
conversations.intake (the one path in) into the ticket threading chose, with its attachments, and
its inline images served through the File endpoint. The InboundMail row says what it became.

Runs inside the email.receive job's one write transaction (email/inbound/jobs.py); the attachments'
bytes were stored before it (no storage call happens here).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.attachments.service import record_attachment
from deskpal.channels.models import Channel
from deskpal.conversations.schemas import InboundMessage, TicketOpening
from deskpal.conversations.service import intake
from deskpal.core.addresses import Mailbox
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.email.inbound import bounce_marks, threading
from deskpal.email.inbound.lookups import Known, Lookups
from deskpal.email.inbound.models import InboundMail, InboundStatus
from deskpal.email.inbound.parsed import MailKind, ParsedMail
from deskpal.email.runtime import runtime
from deskpal.messages.insert import NewMessage
from deskpal.messages.models import SenderType, TicketMessage
from deskpal.storage import Storage
from deskpal.storage import jobs as blob_jobs
from deskpal.storage.base import StoredBlob

_CID_REF = re.compile(r"""(["'])cid:([^"']+)\1""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Filed:
    outcome: str
    message_id: int | None = None
    ticket_id: int | None = None


def clean(value: str | None, limit: int | None = None) -> str | None:
    """Text the databases take: no NUL (PostgreSQL refuses it), no lone surrogates (from bytes
    that were no charset at all)."""
    if value is None:
        return None
    value = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return value[:limit] if limit else value


def _addresses(boxes: list[Mailbox]) -> str | None:
    return clean(", ".join(box.formatted() for box in boxes)) or None


def new_message(mail: ParsedMail, reason: str) -> NewMessage:
    """The mail as a message from its end user: the new text as `message`, the full bodies kept."""
    sender = mail.sender
    # Reply-To naming only the sender again says nothing: replies go to fromAddress anyway.
    own = {sender.address} if sender else set()
    answer_to = mail.reply_to if {box.address for box in mail.reply_to} - own else []
    message_id = mail.message_id if mail.message_id and len(mail.message_id) <= 998 else None
    return NewMessage(
        message=clean(mail.visible_text) or None,
        subject=clean(mail.subject, 998) or None,
        html_body=clean(mail.html_body),
        text_body=clean(mail.text_body),
        incoming=True,
        sender_type=SenderType.END_USER,
        from_address=clean(sender.address, 320) if sender else None,
        from_name=clean(sender.name, 200) if sender and sender.name else None,
        to_address=_addresses(mail.to),
        cc_address=_addresses(mail.cc),
        message_date=mail.date,
        headers=clean(mail.headers),
        message_identifier=message_id,
        # The Message-ID is the mail's own id on its network: a mail filed twice (a retried job
        # after a crash) is stored once per channel.
        external_id=message_id,
        threading_reason=reason,
        is_auto_reply=mail.is_automatic,
        reply_to_address=_addresses(answer_to),
    )


async def _known(ctx: Ctx, mail: ParsedMail, lookups: Lookups) -> Known | None:
    """A message already carrying this Message-ID: deskpal's own mail come back (a copy in the
    mailbox), or the same mail through another channel."""
    if not mail.message_id:
        return None
    found = await lookups.messages(ctx, [mail.message_id])
    return found[mail.message_id][0] if mail.message_id in found else None


async def _attach(
    ctx: Ctx, storage: Storage, msg: TicketMessage, mail: ParsedMail, blobs: list[StoredBlob]
) -> list[TicketMessageAttachment]:
    rows: list[TicketMessageAttachment] = []
    for part, blob in zip(mail.attachments, blobs, strict=True):
        container = part.converted_from
        # The container comes before what was unpacked from it; an index pointing elsewhere is
        # the parser's slip, not a reason to lose the mail.
        known = container is not None and 0 <= container < len(rows)
        converted = rows[container].ticket_message_attachment_id if known and container is not None else None
        rows.append(
            await record_attachment(
                ctx,
                storage,
                msg.message_id,
                blob,
                file_name=clean(part.filename),
                content_type=part.content_type,
                is_end_user_provided=True,
                content_id=clean(part.content_id, 255),
                converted_from_attachment_id=converted,
            )
        )
    return rows


def rewrite_cids(body: str, files: list[TicketMessageAttachment], base_url: str) -> str:
    """`cid:` references of the HTML pointed at the File endpoint, so that inline images show."""
    by_cid = {row.content_id.strip("<>").lower(): row for row in files if row.content_id}
    if not by_cid:
        return body

    def replace(match: re.Match[str]) -> str:
        cid = unquote(html.unescape(match.group(2))).strip().strip("<>").lower()
        row = by_cid.get(cid)
        if row is None:
            return match.group(0)
        return f"{match.group(1)}{base_url}/api/File/{row.access_token}{match.group(1)}"

    return _CID_REF.sub(replace, body)


async def _file_message(
    ctx: Ctx, storage: Storage, channel: Channel, mail: ParsedMail, blobs: list[StoredBlob], lookups: Lookups
) -> Filed:
    threaded = await threading.thread(ctx, channel, mail, lookups)
    if mail.is_automatic and threaded.ticket is None:
        why = mail.auto_reason or mail.kind.value
        return Filed(f"automatic mail ({why}) answering nothing deskpal has: no ticket opened")
    message = new_message(mail, threaded.reason)
    msg = await intake(
        ctx,
        InboundMessage(
            message=message,
            channel=channel,
            ticket=threaded.ticket,
            opening=TicketOpening(
                subject=clean(mail.subject, 500) or None,
                # Nobody can fill the customer's required ticket fields in a mail: it must still
                # open its ticket.
                require_custom_fields=False,
            ),
            automatic=mail.is_automatic,
            external_id_checked=lookups.external_id_free(channel.channel_id, message.external_id),
        ),
    )
    files = await _attach(ctx, storage, msg, mail, blobs)
    if msg.html_body and files:
        rewritten = rewrite_cids(msg.html_body, files, runtime().public_url)
        if rewritten != msg.html_body:
            msg.html_body = rewritten
            await ctx.db.flush()
    return Filed(f"message {msg.message_id} in ticket {msg.ticket_id}", msg.message_id, msg.ticket_id)


async def file_mail(
    ctx: Ctx,
    storage: Storage,
    row: InboundMail,
    channel: Channel,
    mail: ParsedMail,
    blobs: list[StoredBlob],
    *,
    lookups: Lookups | None = None,
    count_attempt: bool = False,
) -> None:
    """File the parsed mail and record on its row what it became (status stored). `lookups`: a
    batch's Message-ID lookups, read once for all its mails (email/inbound/lookups.py);
    `count_attempt`: the row's attempts go up by one with it."""
    lookups = lookups or Lookups()
    known = await _known(ctx, mail, lookups)
    attached = False
    if known is not None:
        filed = Filed(
            f"Message-ID {mail.message_id} is message {known.message_id} of ticket {known.ticket_id} "
            "already: not filed again",
            known.message_id,
            known.ticket_id,
        )
    elif mail.kind is MailKind.BOUNCE:
        bounced = await bounce_marks.file_bounce(ctx, mail)
        filed = Filed(bounced.outcome, bounced.message_id, bounced.ticket_id)
    else:
        filed = await _file_message(ctx, storage, channel, mail, blobs, lookups)
        attached = filed.message_id is not None
        if mail.message_id and len(mail.message_id) <= 998:  # the message's identifier (new_message)
            lookups.filed(mail.message_id, filed.message_id, filed.ticket_id, channel.channel_id)
    if blobs and not attached:
        # Stored before it was known that no message would hold them: removed after the commit
        # (the delete job keeps any key a row references).
        await blob_jobs.drop_blobs(ctx, storage, [blob.key for blob in blobs])
    if count_attempt:  # with the outcome: one UPDATE of the row
        row.attempts += 1
    row.status = InboundStatus.STORED.value
    row.kind = mail.kind.value
    row.error = None
    row.outcome = filed.outcome
    row.message_id, row.ticket_id = filed.message_id, filed.ticket_id
    row.processed_at = utcnow()
    await ctx.db.flush()
