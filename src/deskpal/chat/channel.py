"""The Chat channel type: the widget's look; a visitor finds the channel by its public token."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from deskpal.channels.models import ChannelType
from deskpal.channels.specs import ChannelSettings, ChannelSpec, register


class ChatSettings(ChannelSettings):
    greeting: Annotated[str | None, Field(default=None, max_length=2000)]
    color: Annotated[str | None, Field(default=None, max_length=20)]


SPEC = register(ChannelSpec(ChannelType.CHAT, ChatSettings))
