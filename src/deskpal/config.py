"""Settings, read from DESKPAL_* environment variables."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_URL_PREFIXES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DESKPAL_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where SQLite, files and the secret key live.")
    database_url: str | None = Field(
        default=None,
        description="sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db (default: data_dir).",
    )
    secret_key: str | None = Field(default=None, description="Signs login tokens; generated when unset.")
    old_secret_keys: str | None = Field(
        default=None,
        description="Comma-separated earlier secret keys: channel secrets sealed under them still open.",
    )
    jwt_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    run_worker: bool = Field(default=True, description="Run the job worker inside `deskpal serve`.")
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    job_lease_seconds: int = Field(
        default=300, ge=5, description="A running job's lease, renewed while it runs; lapsed, it runs again."
    )
    worker_concurrency: int = Field(default=4, ge=1, le=256, description="Jobs a worker runs at once.")
    db_pool_size: int = Field(default=10, ge=1)
    login_limit_per_address: int = Field(default=20, ge=1, description="Login attempts per address a minute.")
    argon2_time_cost: int = Field(default=3, ge=1, description="Argon2 passes per password hash.")
    argon2_memory_kib: int = Field(default=65536, ge=1024, description="Argon2 memory per password hash.")
    login_limit_per_account: int = Field(default=10, ge=1, description="Failed logins per account in 15 min.")
    storage_url: str | None = Field(
        default=None,
        description="Where files live: s3://bucket[/prefix] or file:///path (default: data_dir/files).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph, R2…); unset: AWS S3."
    )
    s3_region: str | None = Field(default=None, description="S3 region; unset: AWS_DEFAULT_REGION.")
    attachment_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest attachment.")
    max_inbound_mail_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="Largest raw mail POST /api/Channels/{id}/inbound takes (413 while it streams).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address end users' mail clients reach deskpal at: tracking pixel, "
        "unsubscribe links.",
    )
    storage_orphan_grace_seconds: int = Field(
        default=3600, ge=60, description="A blob no row references is removed once older than this."
    )
    smtp_ca_file: str | None = Field(
        default=None,
        description="A PEM file of CAs trusted for SMTP TLS besides the system's (a private relay's CA).",
    )
    smtp_timeout_seconds: float = Field(
        default=30, gt=0, le=600, description="How long an SMTP server may take to answer each step."
    )
    auto_mail_per_address_per_hour: int = Field(
        default=5,
        ge=0,
        le=10_000,
        description="Automatic mails (AI and system replies, escalation notices) deskpal sends one "
        "address in an hour, per customer; over it they are not sent (docs/mail.md).",
    )
    imap_poll_seconds: float = Field(
        default=5, ge=0.1, le=3600, description="How often each Email channel's IMAP folder is polled."
    )
    imap_timeout_seconds: float = Field(
        default=30, gt=0, le=600, description="How long an IMAP server may take to answer each step."
    )
    imap_lease_seconds: float = Field(
        default=60,
        ge=2,
        le=3600,
        description="A worker's hold on a mailbox while it polls, renewed meanwhile; lapsed, another "
        "worker takes the mailbox over.",
    )
    imap_ca_file: str | None = Field(
        default=None,
        description="A PEM file of CAs trusted for IMAP TLS besides the system's (a private server's CA).",
    )
    imap_idle_seconds: float = Field(
        default=60,
        ge=0,
        le=1500,  # RFC 2177: IDLE re-issued at least every 29 minutes; this stays well below
        description="How long a mailbox whose server offers IDLE is watched after a round that left no "
        "backlog, mail arriving meanwhile fetched at once; 0 turns IDLE off (polling only).",
    )
    imap_idle_max: int = Field(
        default=8,
        ge=0,
        le=32,  # the IDLE threads of email/inbound/imap.py
        description="At most this many mailboxes idle at once per worker process; the others are polled.",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_driver(cls, value: str | None) -> str | None:
        # deskpal runs on the async drivers only; a plain postgresql:// would load psycopg2 and fail later.
        if value and not value.startswith(SUPPORTED_URL_PREFIXES):
            raise ValueError(f"must start with one of {', '.join(SUPPORTED_URL_PREFIXES)}")
        return value or None

    @field_validator("storage_url")
    @classmethod
    def _supported_storage(cls, value: str | None) -> str | None:
        if value and not value.startswith(("s3://", "file://")):
            raise ValueError("must be s3://bucket[/prefix] or file:///path")
        if value and value.startswith("s3://") and not value.removeprefix("s3://").split("/")[0]:
            raise ValueError("must name a bucket: s3://bucket[/prefix]")
        return value or None

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        # Links in mail are opened by any mail client: only an absolute http(s) address works there.
        if not value.startswith(("http://", "https://")) or len(value) > 500:
            raise ValueError("must be an http:// or https:// address")
        return value.rstrip("/")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'deskpal.db').resolve()}"

    @property
    def old_secret_key_list(self) -> list[str]:
        return [k.strip() for k in (self.old_secret_keys or "").split(",") if k.strip()]

    @cached_property
    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        # A stable key across restarts and processes sharing the data dir, so login tokens stay valid.
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            with open(path, "x") as fh:  # "x": a concurrent first start keeps the other's key
                fh.write(key)
            path.chmod(0o600)
        except FileExistsError:
            return path.read_text().strip()
        return key
