"""Input normalisation shared by domains."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$|^[^@\s]{1,64}@[^@\s.]+$")


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased; raises ValueError when it is not an address."""
    value = value.strip().lower()
    if not _EMAIL.match(value) or len(value) > 320:
        raise ValueError("is not a valid email address")
    return value
