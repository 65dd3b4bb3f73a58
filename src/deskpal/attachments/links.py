"""Expiring download links to one attachment, for mail that cannot carry the file itself.

A link names its customer, attachment and expiry, signed with the deployment's key
(core/secretbox.py: an HMAC; links made under an old key keep working until they expire). Unlike an
attachment's accessToken, which is good for as long as the file exists, a link stops working at its
expiry: what an oversized mail hands out cannot be passed on forever.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from deskpal.core import secretbox
from deskpal.core.db import utcnow

LINK_TTL = timedelta(days=7)
_PURPOSE = "file-link"
_SHAPE = re.compile(r"^(\d{1,15})\.(\d{1,15})\.(\d{1,12})\.([A-Za-z0-9_-]{10,64})$")


def file_link(base_url: str, customer_id: int, attachment_id: int, *, ttl: timedelta = LINK_TTL) -> str:
    expires = int((utcnow() + ttl).timestamp())
    data = f"{customer_id}.{attachment_id}.{expires}"
    return f"{base_url}/api/File/link/{data}.{secretbox.box().sign(_PURPOSE, data)}"


class LinkExpired(Exception):
    pass


def open_link(link: str, *, now: datetime | None = None) -> tuple[int, int] | None:
    """(customer id, attachment id) of a link deskpal signed; None for anything else; LinkExpired
    for one past its time."""
    match = _SHAPE.match(link)
    if match is None:
        return None
    customer, attachment, expires, tag = match.groups()
    if not secretbox.box().verify(_PURPOSE, f"{customer}.{attachment}.{expires}", tag):
        return None
    if int(expires) < (now or utcnow()).timestamp():
        raise LinkExpired(link)
    return int(customer), int(attachment)
