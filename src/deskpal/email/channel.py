"""The Email channel type: IMAP in, SMTP out, and the mailbox it answers on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from deskpal.channels.models import ChannelType
from deskpal.channels.specs import ChannelSettings, ChannelSpec, register, secret
from deskpal.core.addresses import EmailAddress, normalize_email
from deskpal.email.inbound.mailboxes import channel_saved, imap_status

Text200 = Annotated[str | None, Field(default=None, max_length=200)]
Port = Annotated[int | None, Field(default=None, ge=1, le=65535)]
Security = Literal["ssl", "starttls", "none"] | None
TicketTag = Annotated[
    str, Field(min_length=len("{ticketID}"), max_length=40, pattern=r"^[^\r\n]*\{ticketID\}[^\r\n]*$")
]


class EmailSettings(ChannelSettings):
    secret_fields = frozenset({"imapPassword", "smtpPassword"})
    imapHost: Text200
    imapPort: Port
    imapUser: Text200
    imapPassword: str | None = secret()
    imapFolder: Text200
    imapSecurity: Security = None
    smtpHost: Text200
    smtpPort: Port
    smtpUser: Text200
    smtpPassword: str | None = secret()
    smtpSecurity: Security = None
    fromAddress: EmailAddress | None = None
    fromName: Text200
    # Where escalation notices go when the escalating request names no address (docs/mail.md).
    escalationAddress: EmailAddress | None = None
    # The ticket reference in subjects; inbound threading reads it too (docs/mail.md, "Threading").
    ticketTag: TicketTag | None = None
    # A mail answering a closed ticket reopens it ("reopen", the default) or opens a follow-up
    # ticket ("newTicket"); automatic mail does neither (docs/mail.md, "Inbound pipeline").
    closedTicketReply: Literal["reopen", "newTicket"] | None = None
    # What a mail's attachments may weigh together; over it, send asks for a decision (links/refuse).
    maxAttachmentBytes: Annotated[int | None, Field(default=None, ge=1, le=1024**3)]


def _mailboxes(settings: dict[str, Any]) -> list[tuple[str, str]]:
    # Mail to the channel's address is the channel's, whichever customer's mailbox fetched it.
    return [("email", settings["fromAddress"])] if settings.get("fromAddress") else []


def _mailbox_key(address: str) -> str:
    try:
        return normalize_email(address)
    except ValueError:
        return address.strip().lower()


SPEC = register(
    ChannelSpec(
        ChannelType.EMAIL,
        EmailSettings,
        _mailboxes,
        {"email": _mailbox_key},
        saved=channel_saved,  # the IMAP mailbox follows imapHost, imapUser and imapFolder
        status=imap_status,  # imapStatus on the channel's DTO
    )
)
