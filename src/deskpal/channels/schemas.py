"""Channel DTOs, with per-type settings whose secrets are written but never read back."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from deskpal.channels.models import ChannelType
from deskpal.core.addresses import EmailAddress
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
Secret = Annotated[str | None, Field(default=None, max_length=1000, json_schema_extra={"writeOnly": True})]
Text200 = Annotated[str | None, Field(default=None, max_length=200)]
Port = Annotated[int | None, Field(default=None, ge=1, le=65535)]


class _Settings(BaseModel):
    model_config = ConfigDict(alias_generator=None, extra="forbid", populate_by_name=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset()


class EmailSettings(_Settings):
    secret_fields = frozenset({"imapPassword", "smtpPassword"})
    imapHost: Text200
    imapPort: Port
    imapUser: Text200
    imapPassword: Secret
    imapFolder: Text200
    imapSecurity: Literal["ssl", "starttls", "none"] | None = None
    smtpHost: Text200
    smtpPort: Port
    smtpUser: Text200
    smtpPassword: Secret
    smtpSecurity: Literal["ssl", "starttls", "none"] | None = None
    fromAddress: EmailAddress | None = None
    fromName: Text200


class ChatSettings(_Settings):
    greeting: Annotated[str | None, Field(default=None, max_length=2000)]
    color: Annotated[str | None, Field(default=None, max_length=20)]


class PhoneSettings(_Settings):
    secret_fields = frozenset({"twilioAuthToken"})
    twilioAccountSid: Text200
    twilioAuthToken: Secret
    phoneNumber: Annotated[str | None, Field(default=None, max_length=32)]
    forwardNumber: Annotated[str | None, Field(default=None, max_length=32)]
    recordCalls: bool | None = None


class WhatsAppSettings(_Settings):
    secret_fields = frozenset({"accessToken", "verifyToken", "appSecret"})
    phoneNumberId: Text200
    businessAccountId: Text200
    accessToken: Secret
    verifyToken: Secret
    appSecret: Secret


class TeamsSettings(_Settings):
    secret_fields = frozenset({"appPassword"})
    appId: Text200
    appPassword: Secret
    tenantId: Text200


SETTINGS_BY_TYPE: dict[ChannelType, type[_Settings]] = {
    ChannelType.EMAIL: EmailSettings,
    ChannelType.CHAT: ChatSettings,
    ChannelType.PHONE: PhoneSettings,
    ChannelType.WHATSAPP: WhatsAppSettings,
    ChannelType.TEAMS: TeamsSettings,
}


def parse_settings(channel_type: ChannelType, raw: dict[str, Any]) -> dict[str, Any]:
    """The settings as the channel type defines them (unknown keys refused), without nulls."""
    model = SETTINGS_BY_TYPE[channel_type]
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        errors = field_errors(exc.errors(), prefix="settings.")
        raise ValueError("; ".join(f"{e['field']}: {e['message']}" for e in errors)) from exc
    return parsed.model_dump(exclude_none=True)


def public_settings(channel_type: str, stored: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    secrets = SETTINGS_BY_TYPE[ChannelType(channel_type)].secret_fields
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


class ChannelCreatedDTO(ChannelDTO):
    phone_auth_token: str | None = Field(
        default=None, description="Phone channels only: the bearer token for phone auth, shown this once."
    )


class PhoneAuthTokenDTO(ApiModel):
    phone_auth_token: str
