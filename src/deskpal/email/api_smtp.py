"""POST /api/Channels/{id}/test-smtp: an Email channel's SMTP settings, tried for real."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from deskpal.channels.schemas import SmtpCheckDTO
from deskpal.config import Settings
from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath
from deskpal.email import smtp_channel
from deskpal.email.smtp import check

router = mount(APIRouter(prefix="/api/Channels", tags=["Channels"]), rank=90)

# The right of a channel write (admins), on a read-only session: writes_after_body opens no write
# transaction (SQLite: no BEGIN, so no write lock; PostgreSQL: autocommit), and this route writes
# nothing afterwards.
Check = Annotated[Ctx, require(Perm.SETTINGS_WRITE, writes_after_body=True)]


@router.post("/{id}/test-smtp", response_model=SmtpCheckDTO)
async def test_smtp(ctx: Check, id: IdPath, request: Request) -> SmtpCheckDTO:
    """Connect to the channel's SMTP server, start TLS and sign in as configured, then QUIT; the
    answer says what failed (DNS, connection, TLS, sign-in) and what to change. No body."""
    settings: Settings = request.app.state.settings
    config = await smtp_channel.channel_smtp(
        ctx, id, ca_file=settings.smtp_ca_file, timeout_seconds=settings.smtp_timeout_seconds
    )
    # No database transaction may be open while the network answers (up to a timeout per step):
    # the session above ran its reads in autocommit (no BEGIN on SQLite, AUTOCOMMIT on
    # PostgreSQL), and closing it now hands its connection back to the pool, so the check holds
    # neither a lock nor a connection. The dependency's commit afterwards has nothing to commit.
    await ctx.db.close()
    result = await check(config)
    return SmtpCheckDTO(
        ok=result.ok, stage=result.stage, message=result.message, server_text=result.server_text
    )
