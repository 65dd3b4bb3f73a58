"""What email out needs from the deployment, set once per process (the app, `deskpal worker`).

Jobs run where no request is: the pixel's and the unsubscribe link's base address, the SMTP
client's CA bundle and time limit, the automatic-mail limit, the storage the attachments are read
from, and how the IMAP poller (email/inbound/polling.py) reaches and paces the mailboxes come from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from deskpal.config import Settings
from deskpal.storage import Storage


@dataclass(frozen=True, slots=True)
class EmailRuntime:
    public_url: str = "http://127.0.0.1:8000"
    smtp_ca_file: str | None = None
    smtp_timeout: float = 30.0
    storage_locator: str | None = None
    auto_mail_per_address_per_hour: int = 5
    imap_ca_file: str | None = None
    imap_timeout: float = 30.0
    imap_poll_seconds: float = 5.0
    imap_lease_seconds: float = 60.0
    imap_idle_seconds: float = 60.0
    imap_idle_max: int = 8


_RUNTIME = EmailRuntime()


def configure(settings: Settings, storage: Storage | None = None) -> EmailRuntime:
    global _RUNTIME
    _RUNTIME = EmailRuntime(
        public_url=settings.public_url.rstrip("/"),
        smtp_ca_file=settings.smtp_ca_file,
        smtp_timeout=settings.smtp_timeout_seconds,
        storage_locator=storage.locator if storage is not None else None,
        auto_mail_per_address_per_hour=settings.auto_mail_per_address_per_hour,
        imap_ca_file=settings.imap_ca_file,
        imap_timeout=settings.imap_timeout_seconds,
        imap_poll_seconds=settings.imap_poll_seconds,
        imap_lease_seconds=settings.imap_lease_seconds,
        imap_idle_seconds=settings.imap_idle_seconds,
        imap_idle_max=settings.imap_idle_max,
    )
    return _RUNTIME


def runtime() -> EmailRuntime:
    return _RUNTIME
