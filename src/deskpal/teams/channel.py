"""The Teams channel type: a Bot Framework app, which Teams' activities name by its app id."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from deskpal.channels.models import ChannelType
from deskpal.channels.specs import ChannelSettings, ChannelSpec, register, secret

Text200 = Annotated[str | None, Field(default=None, max_length=200)]


class TeamsSettings(ChannelSettings):
    secret_fields = frozenset({"appPassword"})
    appId: Text200
    appPassword: str | None = secret()
    tenantId: Text200


def _app_ids(settings: dict[str, Any]) -> list[tuple[str, str]]:
    return [("teams", settings["appId"])] if settings.get("appId") else []


SPEC = register(ChannelSpec(ChannelType.TEAMS, TeamsSettings, _app_ids, {"teams": str.strip}))
