"""POST /api/Channels/{id}/test-imap: an Email channel's IMAP settings, tried for real."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from deskpal.channels.schemas import ImapCheckDTO
from deskpal.config import Settings
from deskpal.core.context import Ctx
from deskpal.core.permissions import Perm, require
from deskpal.core.routing import mount
from deskpal.core.schemas import IdPath
from deskpal.email.inbound import imap_channel
from deskpal.email.inbound.imap import check

router = mount(APIRouter(prefix="/api/Channels", tags=["Channels"]), rank=90)

# As test-smtp (api_smtp.py): a channel write's right (admins), on a read-only session that holds
# neither a lock nor a pooled connection while the server answers.
Check = Annotated[Ctx, require(Perm.SETTINGS_WRITE, writes_after_body=True)]


@router.post("/{id}/test-imap", response_model=ImapCheckDTO)
async def test_imap(ctx: Check, id: IdPath, request: Request) -> ImapCheckDTO:
    """Connect to the channel's IMAP server, start TLS and sign in as configured, open the folder
    read-only (EXAMINE), then LOGOUT; the answer says what failed (DNS, connection, TLS, sign-in,
    folder) and what to change. Reads no mail and changes no flag. No body."""
    settings: Settings = request.app.state.settings
    config = await imap_channel.channel_imap(
        ctx, id, ca_file=settings.imap_ca_file, timeout_seconds=settings.imap_timeout_seconds
    )
    await ctx.db.close()  # no transaction or pooled connection while the network answers
    result = await check(config)
    return ImapCheckDTO(
        ok=result.ok, stage=result.stage, message=result.message, server_text=result.server_text
    )
