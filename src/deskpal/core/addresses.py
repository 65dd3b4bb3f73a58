"""Email addresses, parsed as mail parses them: one module for every field that holds one.

The standard library's RFC 5322 header parser (email.headerregistry) reads display names, quoted
commas ("Doe, John" <john@x.example>), encoded words and comments; a value it reports a defect
in, or that lacks a local part or a domain, is not an address. Addresses are lower-cased: the
uid of an end user, the login of a representative and the match of inbound mail all compare
them without regard to case, as every mail system in practice does.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import errors as mail_errors
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from deskpal.core.header_registry import CachedHeaderRegistry

MAX_ADDRESS = 320  # 64 for the local part, @, 255 for the domain
MAX_LIST = 10_000
_REGISTRY = CachedHeaderRegistry()
# Defects that do not make an address unusable: an internationalised local part (SMTPUTF8), and
# RFC 5322's obsolete syntax that mail still carries (`J. Doe <j@x.example>`: a dot in a name).
_HARMLESS = (mail_errors.NonASCIILocalPartDefect, mail_errors.ObsoleteHeaderDefect)
_SPECIALS = set('()<>@,;:\\".[]')


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str  # lower-cased addr-spec
    name: str | None = None

    def formatted(self) -> str:
        """`Name <address>`, the name quoted where RFC 5322 needs it and left in Unicode: this is
        the stored and shown form; the mail sender encodes it for the wire."""
        if not self.name:
            return self.address
        name = self.name
        if any(c in _SPECIALS for c in name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.address}>"


def parse_addresses(value: str) -> list[Mailbox]:
    """Every mailbox in an address list (`a@x.example, "Doe, John" <j@y.example>`); ValueError
    naming the first part that is not an address."""
    if not value.strip():
        return []
    try:
        header: Any = _REGISTRY("to", value)  # an AddressHeader: .addresses and .defects
    except Exception as exc:  # the parser raises IndexError and friends on some broken input
        raise ValueError(f"{value!r} is not an email address") from exc
    if any(not isinstance(d, _HARMLESS) for d in header.defects) or not header.addresses:
        raise ValueError(f"{value!r} is not an email address")
    boxes = []
    for address in header.addresses:
        spec = f"{address.username}@{address.domain}"
        if not address.username or not address.domain or " " in address.username or len(spec) > MAX_ADDRESS:
            raise ValueError(f"{address.addr_spec!r} is not an email address")
        boxes.append(Mailbox(spec.lower(), address.display_name or None))
    return boxes


def parse_mailbox(value: str) -> Mailbox:
    """Exactly one address, with or without a display name."""
    boxes = parse_addresses(value)
    if len(boxes) != 1:
        raise ValueError("must be one email address" + (f", not {len(boxes)}" if boxes else ""))
    return boxes[0]


def normalize_email(value: str) -> str:
    """The bare, lower-cased address of `value` (which may carry a display name)."""
    return parse_mailbox(value).address


def _mailbox(value: str) -> str:
    return parse_mailbox(value).formatted()


def _address_list(value: str) -> str:
    return ", ".join(box.formatted() for box in parse_addresses(value))


def single_address_of(value: str | None) -> str | None:
    """The one address of a stored address list, or None when it holds none or several."""
    boxes = parse_addresses(value) if value else []
    return boxes[0].address if len(boxes) == 1 else None


def has_address(value: str | None) -> bool:
    """Whether a stored address list holds at least one address a mail could go to."""
    try:
        return bool(value) and bool(parse_addresses(value or ""))
    except ValueError:
        return False


# Field types. A list is stored formatted ("Jane <jane@x.example>, bob@y.example").
EmailAddress = Annotated[str, Field(max_length=MAX_ADDRESS), AfterValidator(normalize_email)]
MailboxStr = Annotated[str, Field(max_length=MAX_ADDRESS + 200), AfterValidator(_mailbox)]
AddressListStr = Annotated[str, Field(max_length=MAX_LIST), AfterValidator(_address_list)]
