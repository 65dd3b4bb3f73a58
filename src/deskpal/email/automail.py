"""Loop protection for the mail deskpal sends by itself (issue 13, part 7).

Automatic mail is mail no person pressed send for: AI and system messages (they carry
`Auto-Submitted: auto-replied`) and escalation notices. Two rules keep it from starting or feeding
a loop with another auto-responder, or with deskpal's own mailboxes:

- never to deskpal's own addresses: any customer's registered channel address (an Email channel's
  `fromAddress`), and the customer's own Email channels' `smtpUser` / `imapUser` mailboxes;
- at most DESKPAL_AUTO_MAIL_PER_ADDRESS_PER_HOUR automatic mails per recipient address and customer
  in a clock hour, counted in the database (core/ratelimit.py) so that every worker process shares
  the count.

A mail is screened once, before its first attempt, in the transaction that marks it `sending`:
the count commits with the decision. A retry (a deferred mail) is not counted again (a server
greylisting one mail must not use up its recipient's hour), but drops a recipient whose hour is
already over the limit. Human replies are never screened. docs/mail.md, "Automatic mail and loops".
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from deskpal.auth.networks import held_addresses
from deskpal.channels.models import Channel, ChannelType
from deskpal.core import ratelimit
from deskpal.core.addresses import normalize_email
from deskpal.core.context import Ctx
from deskpal.email.runtime import runtime
from deskpal.messages.models import SenderType

WINDOW_SECONDS = 3600
AUTOMATIC_SENDERS = frozenset({SenderType.AI.value, SenderType.SYSTEM.value})
OWN = "one of deskpal's own channel addresses (automatic mail never goes there)"
# The clock the hourly windows are read from; tests move it to the next hour.
clock: Callable[[], float] = time.time


def is_automatic(sender_type: str | None) -> bool:
    return sender_type in AUTOMATIC_SENDERS


@dataclass(slots=True)
class Screened:
    """One automatic mail's recipients, split into those it may still go to and those dropped."""

    recipients: list[str]
    first_attempt: bool = True
    kept: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # address -> why

    def why(self) -> str | None:
        """The drops in words, for the message's deliveryError; None when nothing was dropped."""
        if not self.dropped:
            return None
        return "; ".join(f"{address}: {reason}" for address, reason in self.dropped.items())


def _key(customer_id: int, address: str) -> str:
    return f"automail:{customer_id}:{address}"


def _bare(address: str) -> str:
    try:
        return normalize_email(address)
    except ValueError:
        return address.strip().lower()


async def own_addresses(ctx: Ctx, candidates: Sequence[str]) -> set[str]:
    """Which of `candidates` (bare, lower-cased) are deskpal's own mailboxes."""
    wanted = set(candidates)
    if not wanted:
        return set()
    own = await held_addresses(ctx.db, "email", sorted(wanted))
    stmt = select(Channel.settings).where(Channel.channel_type == ChannelType.EMAIL.value)
    for settings in (await ctx.db.scalars(stmt)).all():
        for name in ("fromAddress", "smtpUser", "imapUser"):
            value = (settings or {}).get(name)
            if isinstance(value, str) and "@" in value and _bare(value) in wanted:
                own.add(_bare(value))
    return own


async def screen(ctx: Ctx, mails: Sequence[Screened]) -> None:
    """Fill each mail's `kept` and `dropped`, counting the first attempts' recipients in ctx's
    transaction (keys taken in sorted order: two workers' batches never wait on each other in a
    circle)."""
    limit = runtime().auto_mail_per_address_per_hour
    now = clock()
    for mail in mails:
        mail.recipients = list(dict.fromkeys(_bare(r) for r in mail.recipients))
    own = await own_addresses(ctx, [r for m in mails for r in m.recipients])
    wanted: Counter[str] = Counter()
    for mail in mails:
        for address in mail.recipients:
            if address in own:
                mail.dropped[address] = OWN
            elif mail.first_attempt:
                wanted[address] += 1
    # What each address may still take this hour, the batch's mails served in their order.
    room: dict[str, int] = {}
    for address in sorted(wanted):
        total = await ratelimit.add_in(
            ctx.db, _key(ctx.customer_id, address), wanted[address], window_seconds=WINDOW_SECONDS, now=now
        )
        room[address] = limit - (total - wanted[address])
    over = f"had {limit} automatic mails this hour already (DESKPAL_AUTO_MAIL_PER_ADDRESS_PER_HOUR)"
    for mail in mails:
        for address in mail.recipients:
            if address in mail.dropped:
                continue
            if mail.first_attempt:
                allowed = room[address] > 0
                room[address] -= 1
            else:
                key = _key(ctx.customer_id, address)
                seen = await ratelimit.count_in(ctx.db, key, window_seconds=WINDOW_SECONDS, now=now)
                allowed = seen <= limit
            if allowed:
                mail.kept.append(address)
            else:
                mail.dropped[address] = over
