"""What a channel hands to the conversation: a normalised inbound message, or an outgoing one.

An adapter (the chat widget, the two message APIs, later mail, Twilio, WhatsApp, Teams) turns what
its network or client delivers into one of these and calls `conversations.intake` or
`conversations.send`; nothing else writes a new message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deskpal.channels.models import Channel
from deskpal.messages.insert import NewMessage
from deskpal.tickets.models import Ticket
from deskpal.tickets.writes import StateChange


@dataclass(slots=True, kw_only=True)
class TicketOpening:
    """How a ticket the message opens looks: what the message does not say by itself."""

    # None: from the message's text (its first 80 characters), else "(no subject)".
    subject: str | None = None
    # Whether the customer's required ticket custom fields must be given (they never are by a
    # message). The chat widget has never asked for them and create-new has always refused to
    # open a ticket without them; both kept as they were (docs/decisions.md, "Intake").
    require_custom_fields: bool = True


@dataclass(slots=True, kw_only=True)
class Conversing:
    """What both directions carry: the message, where it came through, and how to thread it."""

    message: NewMessage
    # The channel it came through (its type becomes the message's); None: its ticket's channel.
    channel: Channel | None = None
    # Thread hints, tried in this order: a ticket the caller has loaded (visible to the actor), a
    # ticket id, the identifier of the message it answers (a mail's In-Reply-To). None of them, or
    # an identifier no visible message carries: the message opens a new ticket.
    ticket: Ticket | None = None
    ticket_id: int | None = None
    in_reply_to: str | None = None
    opening: TicketOpening = field(default_factory=TicketOpening)
    # Ticket state written with the message (the second API's ticket_update), by the ticket rules.
    ticket_change: StateChange | None = None
    # The request field the HTML body came in, for the error when nothing of it is left.
    html_field: str = "htmlBody"


@dataclass(slots=True, kw_only=True)
class InboundMessage(Conversing):
    """A message from the end user's side (incoming)."""

    # An incoming message reopens a closed ticket and marks it unread; seeding and imports say
    # False and leave the ticket's state alone.
    reopen: bool = True
    # Automatic mail (an out-of-office answer, a delivery or read report): stored and flagged
    # (isAutoReply), it reopens nothing, and nothing automatic may follow it (hooks, automatic
    # answers), so that two auto-responders cannot answer each other forever.
    automatic: bool = False
    # The caller read, in this transaction, that its channel holds no message under the message's
    # external id (a batch of mails asks for all of them at once): intake skips that read. The
    # unique index still stops a concurrent delivery of the same message.
    external_id_checked: bool = False


@dataclass(slots=True, kw_only=True)
class OutgoingMessage(Conversing):
    """A message from the support side: a reply, a draft, an internal note."""

    # Record a pending send (the channel's sender picks it up; today the email issue's). Drafts
    # and internal notes are never sent, whatever this says.
    deliver: bool = False
    # Attachments over the channel's size limit go as download links (oversizedAttachmentDecision).
    as_links: bool = False
