"""The send job: one outgoing message to its recipients over its channel's SMTP server.

Delivery is at least once (core/jobs.py); what keeps a mail from leaving twice is its state: a
message already `sent`, `failed` or `suppressed` is not sent again, and the SMTP transaction is
the last step before the state is written. The one window left is a worker killed between the
server's "250 OK" and that write: the retry sends the mail again, under the same Message-ID (which
receiving systems such as Gmail collapse). docs/mail.md, "Delivery".
"""

from __future__ import annotations

import logging
from dataclasses import replace
from html import escape

from sqlalchemy import update

from deskpal.attachments.links import LINK_TTL, file_link
from deskpal.channels.service import secret_settings
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.jobs import JobContext, PermanentJobError, RetryableJobError, job
from deskpal.email import compose, smtp, tracking
from deskpal.email.delivery import IN_FLIGHT, SEND_KIND, DeliveryStatus, SendMail
from deskpal.email.outgoing import Assembled, AttachmentSource, assemble
from deskpal.email.runtime import runtime
from deskpal.messages.models import TicketMessage
from deskpal.storage import Storage, storage_for

log = logging.getLogger("deskpal.email")

_IN_FLIGHT = [s.value for s in IN_FLIGHT]


async def _set_state(ctx: Ctx, message_id: int, status: DeliveryStatus, **values: object) -> bool:
    """Move a message that is still on its way to `status`; False when it no longer is (sent,
    failed, suppressed by another attempt, or deleted)."""
    stmt = (
        update(TicketMessage)
        .where(TicketMessage.message_id == message_id, TicketMessage.delivery_status.in_(_IN_FLIGHT))
        .values(delivery_status=status.value, **values)
        .execution_options(synchronize_session=False)
    )
    return bool((await ctx.db.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def _prepare(job: JobContext, p: SendMail) -> tuple[Assembled, smtp.SmtpConfig, list[str]] | None:
    async with job.db() as ctx:
        msg = await ctx.db.get(TicketMessage, p.message_id)
        if msg is None or msg.delivery_status not in _IN_FLIGHT:
            return None  # deleted, or this send already ended
        assembled = await assemble(ctx, msg)
        config = smtp.config_of(
            secret_settings(assembled.channel),
            ca_file=runtime().smtp_ca_file,
            timeout=runtime().smtp_timeout,
        )
        recipients = compose.recipients(assembled.mail)
        if assembled.job_ad_id is not None:
            refused = await tracking.suppressed(ctx, assembled.job_ad_id, recipients)
            recipients = [r for r in recipients if r.lower() not in refused]
            if not recipients:
                await _set_state(
                    ctx,
                    p.message_id,
                    DeliveryStatus.SUPPRESSED,
                    send_pending=False,
                    delivery_error="every recipient unsubscribed from this job ad",
                )
                return None
        if config is None:
            await _set_state(
                ctx, p.message_id, DeliveryStatus.FAILED, send_pending=False,
                delivery_error="the channel has no SMTP settings (smtpHost)",
            )  # fmt: skip
            return None
        await _set_state(ctx, p.message_id, DeliveryStatus.SENDING)
    return assembled, config, recipients


async def _parts(job: JobContext, store: Storage | None, assembled: Assembled, as_links: bool) -> Assembled:
    """The attachments' bytes read from storage; over the channel's limit with `as_links`, the
    files go as expiring download links in the body instead (attachments/links.py)."""
    mail = assembled.mail
    if not assembled.attachments:
        return assembled
    if as_links and assembled.oversized():
        base = runtime().public_url
        urls = [
            (a.file_name, file_link(base, job.customer_id, a.attachment_id)) for a in assembled.attachments
        ]
        days = LINK_TTL.days
        text = "\n".join([mail.text or "", "", f"Attachments (links valid for {days} days):"])
        text += "".join(f"\n{name}: {url}" for name, url in urls)
        items = "".join(f'<li><a href="{escape(url)}">{escape(name)}</a></li>' for name, url in urls)
        html = (mail.html or compose.text_to_html(mail.text or "")) + (
            f"<p>Attachments (links valid for {days} days):</p><ul>{items}</ul>"
        )
        return replace(assembled, mail=replace(mail, text=text, html=html), attachments=[])
    if store is None:
        raise RetryableJobError("no storage is configured in this process to read the attachments from")
    parts = [await _read(store, a) for a in assembled.attachments]
    return replace(assembled, mail=replace(mail, attachments=parts))


async def _read(store: Storage, source: AttachmentSource) -> compose.Part:
    reader = await store.open(source.storage_key)
    chunks = [chunk async for chunk in reader]
    return compose.Part(
        filename=source.file_name,
        content_type=source.content_type,
        data=b"".join(chunks),
        content_id=source.content_id,
    )


@job(SEND_KIND, payload=SendMail, max_attempts=10, backoff_seconds=30.0, timeout_seconds=180.0)
async def send_mail(job: JobContext, p: SendMail) -> None:
    prepared = await _prepare(job, p)
    if prepared is None:
        return
    assembled, config, recipients = prepared
    store = storage_for(p.storage) if p.storage else None
    async with job.call_out():
        assembled = await _parts(job, store, assembled, p.attachments_as_links)
        message = compose.build(assembled.mail)
        try:
            accepted = await smtp.deliver(
                config, message, sender=assembled.mail.from_address, recipients=recipients
            )
        except smtp.SmtpFailure as failure:
            outcome: smtp.SmtpFailure | None = failure
        else:
            outcome = None
    if outcome is None:
        async with job.db() as ctx:
            await _set_state(
                ctx,
                p.message_id,
                DeliveryStatus.SENT,
                send_pending=False,
                sent_at=utcnow(),
                delivery_error=_refusals(accepted.refused),
                delivery_response=f"{accepted.code} {accepted.text}".strip(),
            )
        return
    await _failed(job, p, outcome)


def _refusals(refused: dict[str, tuple[int, str]]) -> str | None:
    if not refused:
        return None
    return "; ".join(f"{address}: {code} {text}" for address, (code, text) in refused.items())


async def _failed(job: JobContext, p: SendMail, failure: smtp.SmtpFailure) -> None:
    words = f"{failure.code} {failure.text}" if failure.code else failure.text
    final = not failure.transient or job.attempt >= job.max_attempts
    async with job.db() as ctx:
        if final:
            await _set_state(
                ctx, p.message_id, DeliveryStatus.FAILED, send_pending=False, delivery_error=words
            )
        else:
            await _set_state(ctx, p.message_id, DeliveryStatus.DEFERRED, delivery_error=words)
    if final:
        raise PermanentJobError(f"{failure.stage}: {words}")
    raise RetryableJobError(f"{failure.stage}: {words}")
