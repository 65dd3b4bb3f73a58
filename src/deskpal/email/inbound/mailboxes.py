"""An Email channel's IMAP mailbox rows, kept in step with its settings, and what its DTO shows.

Both run in the channel's customer's transaction (a save, a read of the channel); the polling
itself, across customers, is polling.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from deskpal.channels.models import Channel
from deskpal.channels.schemas import ImapStatusDTO
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.email.inbound.imap import DEFAULT_FOLDER, account_of
from deskpal.email.inbound.imap_models import ImapMailbox


def folder_of(settings: dict[str, Any]) -> str | None:
    """The folder the channel polls; None when it has no imapHost (polls nothing)."""
    if not str(settings.get("imapHost") or "").strip():
        return None
    return str(settings.get("imapFolder") or "").strip() or DEFAULT_FOLDER


async def channel_saved(ctx: Ctx, channel: Channel) -> None:
    """After a save: the folder now named is due at once (a fixed password is tried now, not after
    the backoff); another folder, or none, is no longer polled. A different account (imapUser or
    imapHost) starts over from UID 0: its UIDs are another mailbox's. ChannelSpec.saved of Email."""
    settings = channel.settings
    folder = folder_of(settings)
    rows = (
        await ctx.db.scalars(select(ImapMailbox).where(ImapMailbox.channel_id == channel.channel_id))
    ).all()
    current = None
    for row in rows:
        if row.folder == folder:
            current = row
        else:
            row.next_poll_at = None
    if folder is None:
        await ctx.db.flush()
        return
    if current is None:
        current = ImapMailbox(channel_id=channel.channel_id, folder=folder, last_uid=0, failures=0)
        ctx.db.add(current)
    account = account_of(str(settings.get("imapHost")), settings.get("imapUser"))
    if current.account is not None and current.account != account:
        current.uidvalidity = None
        current.last_uid = 0
        current.backlog = None
        # A poll of the old account still under way must not record its UIDs here: its next
        # compare-and-set finds the lease gone and stops.
        current.lease_holder = None
        current.lease_until = None
    current.account = account
    current.failures = 0
    current.next_poll_at = utcnow()
    await ctx.db.flush()


async def imap_status(ctx: Ctx, channels: Sequence[Channel]) -> dict[int, dict[str, Any]]:
    """ChannelSpec.status of Email: `imap_status` of each channel with an imapHost."""
    folders = {c.channel_id: f for c in channels if (f := folder_of(c.settings)) is not None}
    if not folders:
        return {}
    stmt = select(ImapMailbox).where(ImapMailbox.channel_id.in_(list(folders)))
    rows = {(r.channel_id, r.folder): r for r in (await ctx.db.scalars(stmt)).all()}
    found: dict[int, dict[str, Any]] = {}
    for channel_id, folder in folders.items():
        row = rows.get((channel_id, folder))
        found[channel_id] = {
            "imap_status": ImapStatusDTO(
                folder=folder,
                last_fetch_at=row.last_fetch_at if row else None,
                last_error=row.last_error if row else None,
                last_error_at=row.last_error_at if row else None,
                backlog=row.backlog if row else None,
                next_poll_at=row.next_poll_at if row else None,
            )
        }
    return found
