"""Open tracking and one-click unsubscribe: the links outgoing mail carries, and what they do.

Open tracking: every outgoing message gets an unguessable `open_token` when it is written
(messages/insert.new_row); its HTML carries `pixel_url`, and each fetch of that URL with the right
token counts one open. Unsubscribe: a message whose custom fields name a job ad (`jobAdID`) carries
`unsubscribe_url`, whose token is signed, not stored (`customer.message.tag`, HMAC-SHA256 under a key
derived from DESKPAL_SECRET_KEY, core/secretbox.sign); using it suppresses later mail of that job
ad to the message's To addresses (`suppressed`, for the send path). docs/mail.md has the rules.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from functools import cache
from typing import Any, TypeGuard
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from deskpal.core import secretbox
from deskpal.core.addresses import normalize_email, parse_addresses
from deskpal.core.context import Ctx
from deskpal.core.db import utcnow
from deskpal.core.tenancy import tenant_insert, write_bound
from deskpal.email.models import EmailSuppression
from deskpal.messages.models import TicketMessage

JOB_AD_FIELD = "jobAdID"
MAX_JOB_AD_ID = 200  # email_suppression.job_ad_id
PIXEL_PATH = "/api/TicketMessages/ot"
UNSUBSCRIBE_PATH = "/api/TicketMessages/unsubscribejobad"
_UNSUBSCRIBE_PURPOSE = "unsubscribe-job-ad"

# A 1x1 transparent GIF89a (43 bytes): what every fetch of the pixel gets, whatever its token.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
# What secrets.token_urlsafe(24) makes (32 characters); anything else is not looked up at all.
_OPEN_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_ID = re.compile(r"[1-9][0-9]{0,15}")


# --- open tracking ---------------------------------------------------------------------------------


def pixel_url(base_url: str, message: TicketMessage) -> str | None:
    """The tracking pixel's URL for this message, or None when it has no open token (incoming)."""
    if not message.open_token:
        return None
    return f"{base_url.rstrip('/')}{PIXEL_PATH}?token={quote(message.open_token, safe='')}"


def is_open_token(value: str | None) -> TypeGuard[str]:
    """Whether `value` could be an open token: junk is answered without a query."""
    return value is not None and _OPEN_TOKEN.fullmatch(value) is not None


async def record_open(ctx: Ctx, open_token: str) -> bool:
    """Count one open of the message with this token (in ctx's customer); False when none has it.

    One UPDATE that adds to the stored count: two fetches at once both count, with no read first.
    """
    result = await ctx.db.execute(
        update(TicketMessage)
        .where(TicketMessage.open_token == open_token)
        .values(is_opened=True, last_open_date=utcnow(), open_count=TicketMessage.open_count + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


# --- unsubscribe -----------------------------------------------------------------------------------


def job_ad_of(message: TicketMessage) -> str | None:
    """The job ad the message is about (custom field `jobAdID`: text or a number), or None."""
    value: Any = (message.custom_fields_data or {}).get(JOB_AD_FIELD)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= MAX_JOB_AD_ID else None


def unsubscribe_token(customer_id: int, message_id: int) -> str:
    """`customer.message.tag`: names the message, and only deskpal's key can make the tag."""
    data = f"{customer_id}.{message_id}"
    return f"{data}.{secretbox.box().sign(_UNSUBSCRIBE_PURPOSE, data)}"


def read_unsubscribe_token(token: str | None) -> tuple[int, int] | None:
    """(customer id, message id) of a token unsubscribe_token made; None for any other text."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not (_ID.fullmatch(parts[0]) and _ID.fullmatch(parts[1])):
        return None
    if not secretbox.box().verify(_UNSUBSCRIBE_PURPOSE, f"{parts[0]}.{parts[1]}", parts[2]):
        return None
    return int(parts[0]), int(parts[1])


def unsubscribe_url(base_url: str, message: TicketMessage) -> str | None:
    """The unsubscribe link (and List-Unsubscribe target) of a job-ad message; None for other mail."""
    if job_ad_of(message) is None:
        return None
    token = unsubscribe_token(message.customer_id, message.message_id)
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}?token={token}"


def recipients_of(message: TicketMessage) -> list[str]:
    """The message's To addresses, bare and lower-cased (a stored list that no longer parses: none)."""
    try:
        boxes = parse_addresses(message.to_address or "")
    except ValueError:
        return []
    return list(dict.fromkeys(box.address for box in boxes))


async def find_job_ad_message(ctx: Ctx, message_id: int) -> tuple[TicketMessage, str] | None:
    """The message (of ctx's customer) and its job ad, or None when it is gone or names none."""
    message = await ctx.db.get(TicketMessage, message_id)
    job_ad = job_ad_of(message) if message is not None else None
    return (message, job_ad) if message is not None and job_ad is not None else None


@cache
def _suppress_once(dialect: str) -> Any:
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = dialect_insert(EmailSuppression).on_conflict_do_nothing()
    return tenant_insert(stmt.returning(EmailSuppression.email_suppression_id))


async def unsubscribe(ctx: Ctx, message_id: int) -> tuple[str, int] | None:
    """Suppress the message's job ad for each of its To addresses; (job ad, rows written), or None
    when the message is gone or names no job ad.

    Each row is one INSERT ... ON CONFLICT DO NOTHING on (customer, job ad, address): a replayed
    link, or two clicks racing on PostgreSQL, write each row once and fail neither.
    """
    found = await find_job_ad_message(ctx, message_id)
    if found is None:
        return None
    message, job_ad = found
    stmt, written = _suppress_once(ctx.db.get_bind().dialect.name), 0
    for address in recipients_of(message):
        values = {"job_ad_id": job_ad, "address": address, "message_id": message_id, "created_at": utcnow()}
        written += len((await write_bound(ctx.db, stmt, values)).all())
    return job_ad, written


def _bare(address: str) -> str:
    try:
        return normalize_email(address)
    except ValueError:
        return address.strip().lower()


async def suppressed(ctx: Ctx, job_ad_id: str, addresses: Sequence[str]) -> set[str]:
    """The addresses among `addresses` (bare and lower-cased, as returned) that unsubscribed from
    this job ad: the send path leaves them out, and marks a mail to none else `suppressed`."""
    wanted = {_bare(a) for a in addresses if a.strip()}
    if not wanted:
        return set()
    stmt = select(EmailSuppression.address).where(
        EmailSuppression.job_ad_id == job_ad_id, EmailSuppression.address.in_(sorted(wanted))
    )
    return set((await ctx.db.scalars(stmt)).all())


# --- pages -----------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


def unsubscribed_page(job_ad_id: str) -> str:
    body = (
        "<p>You will no longer receive mail about this job ad.</p>"
        f"<p>Job ad: <code>{html.escape(job_ad_id)}</code></p>"
    )
    return _PAGE.format(title="You are unsubscribed", body=body)


def invalid_link_page() -> str:
    body = "<p>This unsubscribe link is not valid. Nothing was changed.</p>"
    return _PAGE.format(title="Link not valid", body=body)
