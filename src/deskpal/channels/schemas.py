"""Channel DTOs, with per-type settings whose secrets are written but never read back."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError

from deskpal.channels.models import ChannelType
from deskpal.channels.specs import spec_of
from deskpal.core.errors import field_errors
from deskpal.core.schemas import ApiModel, Line

_HOSTNAME = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _hostname(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if not _HOSTNAME.match(value) or len(value) > 253:
        raise ValueError(f"{value!r} is not a hostname (e.g. example.com or *.example.com)")
    return value


Hostname = Annotated[str, Field(max_length=253), AfterValidator(_hostname)]


def parse_settings(channel_type: ChannelType, raw: dict[str, Any]) -> dict[str, Any]:
    """The settings as the channel type defines them (unknown keys refused), without nulls."""
    model = spec_of(channel_type).settings
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        errors = field_errors(exc.errors(), prefix="settings.")
        raise ValueError("; ".join(f"{e['field']}: {e['message']}" for e in errors)) from exc
    return parsed.model_dump(exclude_none=True)


def public_settings(channel_type: str, stored: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    secrets = spec_of(channel_type).settings.secret_fields
    shown = {k: v for k, v in stored.items() if k not in secrets}
    return shown, sorted(k for k in stored if k in secrets)


class ChannelCreateDTO(ApiModel):
    name: Line = Field(min_length=1, max_length=200)
    channel_type: ChannelType
    allowed_hostnames: list[Hostname] = Field(default_factory=list, max_length=100)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Per channel type; secrets are accepted but never returned."
    )


class ChannelUpdateDTO(ApiModel):
    name: Line = Field(min_length=1, max_length=200)
    allowed_hostnames: list[Hostname] = Field(default_factory=list, max_length=100)
    settings: dict[str, Any] = Field(
        default_factory=dict, description='Secrets left out or null keep their stored value; "" clears.'
    )


class ImapStatusDTO(ApiModel):
    """How an Email channel's IMAP polling goes (read-only; docs/mail.md, "IMAP and import")."""

    folder: str = Field(description="The folder polled (imapFolder, default INBOX).")
    last_fetch_at: datetime | None = Field(description="When a poll last got through (null: not yet).")
    last_error: str | None = Field(
        description="What the last poll's failure was and what to change; null once a poll works."
    )
    last_error_at: datetime | None
    backlog: int | None = Field(
        description="Messages on the server not fetched yet (0: caught up; null: not polled yet)."
    )
    next_poll_at: datetime | None = Field(description="When the next poll is due (later while failing).")


class ChannelDTO(ApiModel):
    channel_id: int = Field(alias="channelID")
    name: str
    channel_type: ChannelType
    token: str
    allowed_hostnames: list[str]
    settings: dict[str, Any]
    secrets_set: list[str] = Field(description="Names of secret settings that hold a value.")
    has_phone_auth_token: bool
    date_created: datetime
    imap_status: ImapStatusDTO | None = Field(
        default=None, description="Email channels with an imapHost: how polling goes. Read-only."
    )


class ChannelCreatedDTO(ChannelDTO):
    phone_auth_token: str | None = Field(
        default=None, description="Phone channels only: the bearer token for phone auth, shown this once."
    )


class PhoneAuthTokenDTO(ApiModel):
    phone_auth_token: str


class SmtpCheckDTO(ApiModel):
    """What POST /api/Channels/{id}/test-smtp found."""

    ok: bool
    stage: str | None = Field(
        description="Where it failed: dns, connect, tls, auth, timeout or protocol; null when ok."
    )
    message: str = Field(description="What worked, or what to change, in words an admin can act on.")
    server_text: str | None = Field(description="The SMTP server's own reply, verbatim, when it answered.")


class ImapCheckDTO(ApiModel):
    """What POST /api/Channels/{id}/test-imap found."""

    ok: bool
    stage: str | None = Field(
        description="Where it failed: dns, connect, tls, auth, select, timeout or protocol; null when ok."
    )
    message: str = Field(description="What worked, or what to change, in words an admin can act on.")
    server_text: str | None = Field(
        description="The IMAP server's own words, verbatim: its greeting when ok, else its refusal."
    )
