"""What bounds IMAP IDLE in a poller (polling.py): the slots that cap how many mailboxes idle at
once, and the wait that a stopping worker cuts short (docs/mail.md, "IDLE, bounded")."""

from __future__ import annotations

import asyncio

from deskpal.email.inbound.imap import ImapSession


class IdleSlots:
    """How many of a poller's mailboxes may wait in IDLE at once. Every idling round keeps a
    connection and an IDLE thread for up to its idle time: the cap keeps that bounded however many
    mailboxes there are, and the rounds that find no slot end as plain polls."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1


async def idle_or_stop(session: ImapSession, seconds: float, stop: asyncio.Event) -> bool:
    """session.idle(seconds), cut short when `stop` is set: a stopping worker does not wait out the
    IDLE (cancelling it drops the connection, so its thread ends at once). False when cut short."""
    waiting = asyncio.ensure_future(session.idle(seconds))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
            await asyncio.wait({waiting})
    if waiting.cancelled():
        return False
    return waiting.result()
