"""An Email channel's IMAP server, as imap.py needs it: the one place that turns a channel's stored
settings (secrets opened) into an ImapConfig, or says why it cannot."""

from __future__ import annotations

from deskpal.channels import service as channels
from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx
from deskpal.core.errors import Unprocessable
from deskpal.email.inbound.imap import ImapConfig, config_of


class ImapNotConfigured(Unprocessable):
    code, title = "IMAP_NOT_CONFIGURED", "The channel has no IMAP server to fetch from"


def imap_config_of(
    channel: Channel, *, ca_file: str | None = None, timeout: float = 30.0
) -> ImapConfig | None:
    """The channel's IMAP settings; None for a channel that fetches no mail (not Email, no imapHost)."""
    if channel.channel_type != ChannelType.EMAIL.value:
        return None
    return config_of(channels.secret_settings(channel), ca_file=ca_file, timeout=timeout)


async def channel_imap(
    ctx: Ctx, channel_id: int, *, ca_file: str | None = None, timeout_seconds: float = 30.0
) -> ImapConfig:
    """The IMAP settings of one of the customer's channels (404 for an unknown or another's id;
    422 IMAP_NOT_CONFIGURED naming settings.imapHost when it has none)."""
    channel = await channels.get_channel(ctx, channel_id)
    if channel.channel_type != ChannelType.EMAIL.value:
        raise ImapNotConfigured(
            f"channel {channel_id} is a {channel.channel_type} channel: only Email channels fetch mail",
            errors=[{"field": "settings.imapHost", "message": "only Email channels have an IMAP server"}],
        )
    config = imap_config_of(channel, ca_file=ca_file, timeout=timeout_seconds)
    if config is None:
        raise ImapNotConfigured(
            f"channel {channel_id} has no imapHost: set it (and imapPort, imapSecurity, imapUser, "
            "imapPassword, imapFolder) with PUT /api/Channels/{id}",
            errors=[{"field": "settings.imapHost", "message": "is not set"}],
        )
    return config
