"""The send job: one outgoing message to its recipients over its channel's SMTP server.

Each message has its own send job; the worker runs up to BATCH due ones of a customer together
(core/jobs.py, batch_job): one transaction reads them all, one SMTP session per server sends them
(a new connection per mail cost both sides more than the mail), one transaction writes their states.

Delivery is at least once (core/jobs.py); what keeps a mail from leaving twice is its state: a
message already `sent`, `failed` or `suppressed` is not sent again (automatic mail over its
limit, or only to deskpal's own addresses, is `suppressed` too: email/automail.py), and the SMTP
transactions are the last step before the states are written. The one window left is a worker killed between a
server's "250 OK" and that write: the retry sends the mails of that batch the server took again,
under the same Message-IDs (which receiving systems such as Gmail collapse). docs/mail.md, "Delivery".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from html import escape

from sqlalchemy import select, update

from deskpal.attachments.links import LINK_TTL, file_link
from deskpal.channels.service import secret_settings
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.jobs import BatchItem, JobBatch, PermanentJobError, RetryableJobError, batch_job
from deskpal.email import automail, compose, smtp, tracking
from deskpal.email.delivery import IN_FLIGHT, SEND_KIND, DeliveryStatus, SendMail
from deskpal.email.outgoing import Assembled, AssemblyCache, AttachmentSource, assemble
from deskpal.email.runtime import runtime
from deskpal.messages.models import TicketMessage
from deskpal.storage import Storage, storage_for

log = logging.getLogger("deskpal.email")

_IN_FLIGHT = [s.value for s in IN_FLIGHT]
# Mails of one customer sent in one call. The larger, the less each costs, and the more a worker
# killed mid-batch may send twice (docs/mail.md, "Delivery").
BATCH = 20
# A batch stops starting new mails after this long (a slow server): the job's time limit (180 s)
# must never cut off mails already sent whose states are not yet written. The rest run again at once.
SEND_BUDGET_SECONDS = 90.0
# The longest a sent mail waits for its `sent` to be written while the batch goes on.
RECORD_SECONDS = 0.05


async def _set_states(ctx: Ctx, message_ids: list[int], status: DeliveryStatus, **values: object) -> int:
    """Move the messages that are still on their way to `status`; how many were (the others were
    sent, failed or suppressed by another attempt, or deleted)."""
    stmt = (
        update(TicketMessage)
        .where(TicketMessage.message_id.in_(message_ids), TicketMessage.delivery_status.in_(_IN_FLIGHT))
        .values(delivery_status=status.value, **values)
        .execution_options(synchronize_session=False)
    )
    return int((await ctx.db.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def _set_state(ctx: Ctx, message_id: int, status: DeliveryStatus, **values: object) -> bool:
    return await _set_states(ctx, [message_id], status, **values) == 1


@dataclass(slots=True)
class _Mail:
    """One send of a batch, from its read to its outcome."""

    item: BatchItem
    payload: SendMail
    assembled: Assembled
    config: smtp.SmtpConfig
    recipients: list[str]
    outcome: smtp.SmtpAccepted | smtp.SmtpFailure | None = None
    recorded: bool = False
    # An automatic mail's screening (email/automail.py); None for a human's.
    screened: automail.Screened | None = None


async def _prepare(batch: JobBatch) -> list[_Mail]:
    """One transaction for the whole batch: each message still on its way assembled (the batch's
    tickets and attachments read in one statement each; template, channel and customer once),
    those that cannot be sent settled, the rest marked `sending`."""
    items = {item.payload.message_id: item for item in batch.items}
    mails: list[_Mail] = []
    async with batch.db() as ctx:
        stmt = select(TicketMessage).where(TicketMessage.message_id.in_(list(items)))
        loaded = {m.message_id: m for m in (await ctx.db.scalars(stmt)).all()}
        # In the jobs' order (oldest first), whatever order the database returned them in.
        found = [loaded[i] for i in items if i in loaded]
        messages = [m for m in found if m.delivery_status in _IN_FLIGHT]
        cache = AssemblyCache()
        await cache.prefetch(ctx, messages)
        for msg in messages:  # the others were deleted, or their send already ended
            item = items[msg.message_id]
            mail = await _prepare_one(ctx, item, msg, cache)
            if mail is not None:
                mails.append(mail)
        mails = await _screen_automatic(ctx, mails)
        if mails:
            await _set_states(ctx, [m.payload.message_id for m in mails], DeliveryStatus.SENDING)
    return mails


async def _prepare_one(ctx: Ctx, item: BatchItem, msg: TicketMessage, cache: AssemblyCache) -> _Mail | None:
    try:
        assembled = await assemble(ctx, msg, cache=cache)
        config = smtp.config_of(
            secret_settings(assembled.channel), ca_file=runtime().smtp_ca_file, timeout=runtime().smtp_timeout
        )
    except Exception as exc:  # this mail's job retries as it would alone (no channel can send, say)
        item.fail(exc)
        return None
    recipients = compose.recipients(assembled.mail)
    if assembled.job_ad_id is not None:
        refused = await tracking.suppressed(ctx, assembled.job_ad_id, recipients)
        recipients = [r for r in recipients if r.lower() not in refused]
        if not recipients:
            await _set_state(
                ctx,
                msg.message_id,
                DeliveryStatus.SUPPRESSED,
                send_pending=False,
                delivery_error="every recipient unsubscribed from this job ad",
            )
            return None
    if config is None:
        await _set_state(
            ctx, msg.message_id, DeliveryStatus.FAILED, send_pending=False,
            delivery_error="the channel has no SMTP settings (smtpHost)",
        )  # fmt: skip
        return None
    screened = None
    if automail.is_automatic(msg.sender_type):
        first = msg.delivery_status == DeliveryStatus.QUEUED.value  # a retry was screened before
        screened = automail.Screened(recipients, first_attempt=first)
    return _Mail(item, item.payload, assembled, config, recipients, screened=screened)


async def _screen_automatic(ctx: Ctx, mails: list[_Mail]) -> list[_Mail]:
    """The batch's automatic mails screened together (email/automail.py); those left with no
    recipient are settled `suppressed`, the others go to the recipients left."""
    automatic = [m for m in mails if m.screened is not None]
    if not automatic:
        return mails
    await automail.screen(ctx, [m.screened for m in automatic if m.screened is not None])
    kept: list[_Mail] = []
    for mail in mails:
        if mail.screened is None:
            kept.append(mail)
        elif mail.screened.kept:
            mail.recipients = mail.screened.kept
            kept.append(mail)
        else:
            await _set_state(
                ctx,
                mail.payload.message_id,
                DeliveryStatus.SUPPRESSED,
                send_pending=False,
                delivery_error=f"automatic mail not sent: {mail.screened.why()}",
            )
    return kept


async def _parts(customer_id: int, store: Storage | None, assembled: Assembled, as_links: bool) -> Assembled:
    """The attachments' bytes read from storage; over the channel's limit with `as_links`, the
    files go as expiring download links in the body instead (attachments/links.py)."""
    mail = assembled.mail
    if not assembled.attachments:
        return assembled
    if as_links and assembled.oversized():
        base = runtime().public_url
        urls = [(a.file_name, file_link(base, customer_id, a.attachment_id)) for a in assembled.attachments]
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


@batch_job(
    SEND_KIND, payload=SendMail, max_batch=BATCH, max_attempts=10, backoff_seconds=30.0, timeout_seconds=180.0
)
async def send_mails(batch: JobBatch) -> None:
    """Up to BATCH mails of one customer: read in one transaction, sent over one SMTP session per
    server, their outcomes written as they come (at least every RECORD_SECONDS)."""
    mails = await _prepare(batch)
    if not mails:
        return
    deadline = asyncio.get_running_loop().time() + SEND_BUDGET_SECONDS
    by_server: dict[smtp.SmtpConfig, list[_Mail]] = {}
    for mail in mails:
        by_server.setdefault(mail.config, []).append(mail)
    outbox = _Outbox(batch, deadline)
    try:
        for config, group in by_server.items():
            await outbox.send_over(config, group)
    finally:
        # Whatever stopped the batch (the database, a lost lease), what the servers took is written
        # if it still can be: not written, it would be sent again.
        await outbox.record([m for m in mails if not m.recorded and m.outcome is not None])
    await outbox.record([m for m in mails if not m.recorded])


class _Outbox:
    """Sends a batch's mails and writes their states while the session stays open: a mail the
    server took is recorded within RECORD_SECONDS (plus one mail's send), so that a worker killed
    mid-batch sends again only the few taken since the last write, as a worker sending one mail per
    job would have."""

    def __init__(self, batch: JobBatch, deadline: float) -> None:
        self.batch = batch
        self.deadline = deadline
        self.loop = asyncio.get_running_loop()
        self.stores: dict[str, Storage] = {}
        self.taken: list[_Mail] = []  # sent or refused, not yet recorded
        self.taken_since = 0.0

    async def send_over(self, config: smtp.SmtpConfig, mails: list[_Mail]) -> None:
        """The mails over one session; one that breaks (the server closed it, 421) is opened again,
        one that cannot be opened fails the rest alike."""
        queue = list(mails)
        while queue and self.loop.time() < self.deadline:
            session = smtp.SmtpSession(config)
            try:
                async with self.batch.call_out():
                    await session.open()
            except smtp.SmtpFailure as failure:  # DNS, connection, TLS or sign-in
                for mail in queue:
                    mail.outcome = failure
                return
            try:
                while queue and session.usable and self.loop.time() < self.deadline:
                    mail = queue.pop(0)
                    started = self.loop.time()
                    async with self.batch.call_out():
                        await self._send(session, mail)
                    await self._took(mail, started)
            except BaseException:
                await session.drop()  # cancelled, or the database failed: no goodbye to wait on
                raise
            async with self.batch.call_out():
                await session.close()
            if queue and session.sent == 0:
                return  # broken before any mail went through: not worth another connection now

    async def _send(self, session: smtp.SmtpSession, mail: _Mail) -> None:
        try:
            storage = mail.payload.storage
            store = self.stores.get(storage or "")
            if store is None and storage:
                store = self.stores[storage] = storage_for(storage)
            as_links = mail.payload.attachments_as_links
            assembled = await _parts(self.batch.customer_id, store, mail.assembled, as_links)
            message = compose.build(assembled.mail)
            mail.outcome = await session.send(
                message, sender=assembled.mail.from_address, recipients=mail.recipients
            )
        except smtp.SmtpFailure as failure:
            mail.outcome = failure
        except Exception as exc:  # no store for its attachments here, a mail that cannot be built
            mail.item.fail(exc)  # its job retries as it would alone; the others go on

    async def _took(self, mail: _Mail, started: float) -> None:
        """Write what was taken when the oldest unwritten mail has waited RECORD_SECONDS, or when
        one send took that long (a slow server: the next would make it wait longer)."""
        now = self.loop.time()
        if not self.taken:
            self.taken_since = now
        self.taken.append(mail)
        if now - self.taken_since >= RECORD_SECONDS or now - started >= RECORD_SECONDS:
            await self.record(self.taken)
            self.taken = []

    async def record(self, mails: list[_Mail]) -> None:
        mails = [m for m in mails if not m.recorded]
        if not mails:
            return
        async with self.batch.db() as ctx:
            for mail in mails:
                await _record(ctx, mail)
        for mail in mails:
            mail.recorded = True


async def _record(ctx: Ctx, mail: _Mail) -> None:
    """The message's state after its attempt, and the job's outcome."""
    outcome, message_id = mail.outcome, mail.payload.message_id
    if isinstance(outcome, smtp.SmtpAccepted):
        await _set_state(
            ctx,
            message_id,
            DeliveryStatus.SENT,
            send_pending=False,
            sent_at=utcnow(),
            delivery_error=_joined(_dropped(mail), _refusals(outcome.refused)),
            delivery_response=f"{outcome.code} {outcome.text}".strip(),
        )
    elif isinstance(outcome, smtp.SmtpFailure):
        mail.item.fail(await _failed(ctx, mail.item, message_id, outcome))
    elif mail.item.error is None:  # never tried: the batch ran out of its time (a slow server)
        await _set_state(ctx, message_id, DeliveryStatus.DEFERRED, delivery_error="not tried yet")
        mail.item.fail(RetryableJobError("not tried within the batch's time", retry_after=0))


def _dropped(mail: _Mail) -> str | None:
    why = mail.screened.why() if mail.screened is not None else None
    return f"automatic mail not sent to {why}" if why else None


def _joined(*parts: str | None) -> str | None:
    return "; ".join(p for p in parts if p) or None


def _refusals(refused: dict[str, tuple[int, str]]) -> str | None:
    if not refused:
        return None
    return "; ".join(f"{address}: {code} {text}" for address, (code, text) in refused.items())


async def _failed(ctx: Ctx, item: BatchItem, message_id: int, failure: smtp.SmtpFailure) -> Exception:
    """The message deferred (to be retried) or failed for good; the job's outcome to match."""
    words = f"{failure.code} {failure.text}" if failure.code else failure.text
    job = item.job
    if not failure.transient or job.attempt >= job.max_attempts:
        await _set_state(ctx, message_id, DeliveryStatus.FAILED, send_pending=False, delivery_error=words)
        return PermanentJobError(f"{failure.stage}: {words}")
    await _set_state(ctx, message_id, DeliveryStatus.DEFERRED, delivery_error=words)
    return RetryableJobError(f"{failure.stage}: {words}")
