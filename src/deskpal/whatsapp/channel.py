"""The WhatsApp channel type: a Cloud API phone number id, which Meta's webhooks name."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from deskpal.channels.models import ChannelType
from deskpal.channels.specs import ChannelSettings, ChannelSpec, register, secret

Text200 = Annotated[str | None, Field(default=None, max_length=200)]


class WhatsAppSettings(ChannelSettings):
    secret_fields = frozenset({"accessToken", "verifyToken", "appSecret"})
    phoneNumberId: Text200
    businessAccountId: Text200
    accessToken: str | None = secret()
    verifyToken: str | None = secret()
    appSecret: str | None = secret()


def _number_ids(settings: dict[str, Any]) -> list[tuple[str, str]]:
    return [("whatsapp", settings["phoneNumberId"])] if settings.get("phoneNumberId") else []


SPEC = register(ChannelSpec(ChannelType.WHATSAPP, WhatsAppSettings, _number_ids, {"whatsapp": str.strip}))
