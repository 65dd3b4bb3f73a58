"""What a channel type is, declared by the channel's own package (`deskpal/<channel>/channel.py`).

A channel type brings its settings (what an admin configures; which of them are secrets) and the
network addresses it answers on (a mailbox, a phone number, a WhatsApp number id, a Teams app id),
which `auth/networks.py` resolves back to the channel and its customer when the network calls.
Adding a channel is a new package with a `channel.py` that calls `register`, and its adapters
beside it; nothing is listed centrally.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

import deskpal
from deskpal.channels.models import Channel, ChannelType

if TYPE_CHECKING:
    from deskpal.core.context import Ctx


class ChannelSettings(BaseModel):
    """A channel type's settings: unknown keys refused; `secret_fields` are written, never shown."""

    model_config = ConfigDict(alias_generator=None, extra="forbid", populate_by_name=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset()


def secret() -> Any:
    """A setting written by the admin and never shown again (a password, a token)."""
    return Field(default=None, max_length=1000, json_schema_extra={"writeOnly": True})


# (network, address) pairs a channel answers on, from its parsed settings.
Addresses = Callable[[dict[str, Any]], list[tuple[str, str]]]
# Run in the saving transaction after a channel of the type is created or its settings replaced:
# what the type keeps beside the channel follows the settings (an Email channel's IMAP mailbox).
Saved = Callable[["Ctx", Channel], Awaitable[None]]
# Read-only fields the type adds to its channels' DTOs (an Email channel's imapStatus): channel id ->
# ChannelDTO field name -> value, for the channels given (all of the type).
Status = Callable[["Ctx", Sequence[Channel]], Awaitable[dict[int, dict[str, Any]]]]


def _no_addresses(_settings: dict[str, Any]) -> list[tuple[str, str]]:
    return []


def _as_given(address: str) -> str:
    return address.strip()


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    channel_type: ChannelType
    settings: type[ChannelSettings]
    addresses: Addresses = _no_addresses
    # network -> how an address on it is compared (a number's punctuation, a mailbox's case).
    networks: dict[str, Callable[[str], str]] = field(default_factory=dict)
    saved: Saved | None = None
    status: Status | None = None

    def key(self, network: str, address: str) -> str:
        return self.networks.get(network, _as_given)(address)


_SPECS: dict[ChannelType, ChannelSpec] = {}


def register(spec: ChannelSpec) -> ChannelSpec:
    if spec.channel_type in _SPECS and _SPECS[spec.channel_type] != spec:
        raise ValueError(f"channel type {spec.channel_type} is registered twice")
    _SPECS[spec.channel_type] = spec
    return spec


@functools.cache
def discover() -> frozenset[str]:
    """Import every package's `channel` module; the module names."""
    names = [
        m.name for m in pkgutil.walk_packages(deskpal.__path__, "deskpal.") if m.name.endswith(".channel")
    ]
    for name in names:
        importlib.import_module(name)
    return frozenset(names)


def spec_of(channel_type: ChannelType | str) -> ChannelSpec:
    discover()
    return _SPECS[ChannelType(channel_type)]


def all_specs() -> dict[ChannelType, ChannelSpec]:
    discover()
    return dict(_SPECS)


def address_key(network: str, address: str) -> str:
    """An address as the channel of its network stores it."""
    for spec in all_specs().values():
        if network in spec.networks:
            return spec.key(network, address)
    return _as_given(address)
