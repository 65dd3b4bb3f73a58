"""The email package's job types: the escalation notice here, the send job in outbox.py; and the
IMAP poller every worker runs beside its jobs (a daemon, inbound/polling.py)."""

from __future__ import annotations

from deskpal.core.jobs import JobContext, PermanentJobError, job
from deskpal.email import automail, escalation, outbox
from deskpal.email.escalation import EscalationNotice
from deskpal.email.inbound import polling


@job(escalation.NOTICE_JOB, payload=EscalationNotice, max_attempts=8, backoff_seconds=30)
async def escalation_notice(job: JobContext, p: EscalationNotice) -> None:
    """Mail the escalation notice: read what it says and screen it as automatic mail (the count
    commits with the read), then send with no transaction open."""
    async with job.db() as ctx:
        notice = await escalation.load_notice(ctx, p)
        if notice is None:
            return  # the message was deleted meanwhile: there is nothing left to point at
        screened = automail.Screened([notice.address], first_attempt=job.attempt == 1)
        await automail.screen(ctx, [screened])
    if not screened.kept:
        # A dead job with the reason is what admins see in GET /api/Jobs; a retry cannot help.
        raise PermanentJobError(f"escalation notice not sent: {screened.why()}")
    async with job.call_out():
        await escalation.deliver_notice(notice)


__all__ = ["escalation_notice", "outbox", "polling"]
