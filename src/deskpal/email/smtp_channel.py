"""An Email channel's SMTP server, as smtp.py needs it: the one place that turns a channel's
stored settings (secrets opened) into an SmtpConfig, or says why it cannot."""

from __future__ import annotations

from deskpal.channels import service as channels
from deskpal.channels.models import Channel, ChannelType
from deskpal.core.context import Ctx
from deskpal.core.errors import Unprocessable
from deskpal.email.smtp import SmtpConfig, config_of


class SmtpNotConfigured(Unprocessable):
    code, title = "SMTP_NOT_CONFIGURED", "The channel has no SMTP server to send with"


def smtp_config_of(channel: Channel, *, ca_file: str | None = None, timeout: float = 30.0) -> SmtpConfig:
    """The channel's SMTP settings, or 422 SMTP_NOT_CONFIGURED naming settings.smtpHost."""
    if channel.channel_type != ChannelType.EMAIL.value:
        raise SmtpNotConfigured(
            f"channel {channel.channel_id} is a {channel.channel_type} channel: only Email channels send",
            errors=[{"field": "settings.smtpHost", "message": "only Email channels have an SMTP server"}],
        )
    config = config_of(channels.secret_settings(channel), ca_file=ca_file, timeout=timeout)
    if config is None:
        raise SmtpNotConfigured(
            f"channel {channel.channel_id} has no smtpHost: set it (and smtpPort, smtpSecurity, "
            "smtpUser, smtpPassword) with PUT /api/Channels/{id}",
            errors=[{"field": "settings.smtpHost", "message": "is not set"}],
        )
    return config


async def channel_smtp(
    ctx: Ctx, channel_id: int, *, ca_file: str | None = None, timeout_seconds: float = 30.0
) -> SmtpConfig:
    """The SMTP settings of one of the customer's channels (404 for an unknown or another's id)."""
    channel = await channels.get_channel(ctx, channel_id)
    return smtp_config_of(channel, ca_file=ca_file, timeout=timeout_seconds)
