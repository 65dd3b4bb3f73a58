"""Ticket state that follows from other state, one rule each, used by every writer.

- The closed state: `status`, `isClosed` and `closeDate` are three views of one fact (closed since a
  date, or open). `closed_state` gives all three after a write that names any of them.
- The channel type: a ticket (or message) in a channel has that channel's type. `channel_type_in`
  gives it, refusing a different type the client named.

See docs/tickets.md ("Closed is one state", "A ticket's channel type").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from deskpal.core.errors import ValidationFailed

OPEN, CLOSED = "Open", "Closed"

# Column name -> JSON name, for the errors of the Tickets API (the second API passes its own).
CLOSED_FIELDS = {"status": "status", "is_closed": "isClosed", "close_date": "closeDate"}


def is_closed_status(status: str) -> bool:
    return status.strip().casefold() == CLOSED.casefold()


class _ClosedColumns(Protocol):
    status: str
    is_closed: bool
    close_date: datetime | None


def closed_state(
    current: _ClosedColumns | None,
    written: Mapping[str, Any],
    now: datetime,
    *,
    fields: Mapping[str, str] = CLOSED_FIELDS,
) -> dict[str, Any]:
    """`status`, `is_closed` and `close_date` after a write, as one consistent state.

    `written` holds what the client wrote of the three (by column name); `current` is the stored
    ticket (None: a new one, which starts open with no close date). Only what differs from the
    current value counts as written, so a client that sends back what it read and changes one of
    the three changes the state through that one. Each written value says open or closed: a status
    of "Closed" (any case) or anything else, `isClosed`, a close date or none. They must agree (400
    naming them); with none written the state is kept. A closed ticket has status "Closed" and a
    close date (the one written, else the one it had, else now); an open ticket has no close date
    and keeps its status, or is "Open" when it was "Closed".
    """
    if "status" in written and not str(written["status"]).strip():
        raise ValidationFailed.field(fields["status"], "must not be blank")
    was = (current.status, current.is_closed, current.close_date) if current else (None, False, None)
    changed = {
        name: value
        for name, value, old in (
            ("status", written.get("status"), was[0]),
            ("is_closed", written.get("is_closed"), was[1]),
            ("close_date", written.get("close_date"), was[2]),
        )
        if name in written and value != old
    }
    says: dict[str, bool] = {}
    if "status" in changed:
        says["status"] = is_closed_status(str(changed["status"]))
    if "is_closed" in changed:
        says["is_closed"] = bool(changed["is_closed"])
    if "close_date" in changed:
        says["close_date"] = changed["close_date"] is not None
    if len(set(says.values())) > 1:
        shown = {
            "status": f"status {changed.get('status')!r}",
            "is_closed": f"isClosed {str(changed.get('is_closed')).lower()}",
            "close_date": "a closeDate" if changed.get("close_date") is not None else "no closeDate",
        }
        detail = (
            " and ".join(shown[name] for name in says)
            + " disagree: a ticket is closed exactly when its status is Closed, isClosed is true and it"
            " has a closeDate"
        )
        raise ValidationFailed(detail, errors=[{"field": fields[name], "message": detail} for name in says])

    closed = next(iter(says.values())) if says else bool(was[1])
    status = changed.get("status", written.get("status", was[0]))
    if closed:
        close_date = changed.get("close_date") or (was[2] if was[1] else None) or now
        return {"status": CLOSED, "is_closed": True, "close_date": close_date}
    if status is None or is_closed_status(status):
        status = OPEN
    return {"status": status, "is_closed": False, "close_date": None}


def _article(word: str) -> str:
    return "an" if word[:1].casefold() in "aeiou" else "a"


class _TypedChannel(Protocol):
    channel_id: int
    channel_type: str


def channel_type_in(channel: _TypedChannel | None, named: str | None, *, field: str) -> str | None:
    """The channel type of a ticket or message in `channel`: the channel's own.

    `named` is the type the client wrote (None: not named); naming another type than the channel's
    is a 400 naming `field`. Without a channel the named type stands.
    """
    if channel is None:
        return named
    if named is not None and named.strip().casefold() != channel.channel_type.casefold():
        kind = channel.channel_type
        raise ValidationFailed.field(
            field, f"channel {channel.channel_id} is {_article(kind)} {kind} channel, not {named}"
        )
    return channel.channel_type


def subject_from(text: str, limit: int = 80) -> str:
    """A ticket's subject from its first message's text: one line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
