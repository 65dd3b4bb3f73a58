"""The Phone channel type: a Twilio number, and the number it answers on."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field

from deskpal.channels.models import ChannelType
from deskpal.channels.specs import ChannelSettings, ChannelSpec, register, secret

Text200 = Annotated[str | None, Field(default=None, max_length=200)]
Number = Annotated[str | None, Field(default=None, max_length=32)]


class PhoneSettings(ChannelSettings):
    secret_fields = frozenset({"twilioAuthToken"})
    twilioAccountSid: Text200
    twilioAuthToken: str | None = secret()
    phoneNumber: Number
    forwardNumber: Number
    recordCalls: bool | None = None


def phone_key(number: str) -> str:
    """A number as networks send it (+15551234567): a leading + and its digits."""
    digits = re.sub(r"\D", "", number)
    return ("+" if number.strip().startswith("+") else "") + digits


def _numbers(settings: dict[str, Any]) -> list[tuple[str, str]]:
    return [("phone", phone_key(settings["phoneNumber"]))] if settings.get("phoneNumber") else []


SPEC = register(ChannelSpec(ChannelType.PHONE, PhoneSettings, _numbers, {"phone": phone_key}))
