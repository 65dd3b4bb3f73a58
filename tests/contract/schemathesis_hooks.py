"""Loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS): edge values its own strategies rarely draw.

Dates at both ends of what a UTC conversion can hold, with offsets that push them past it (the
500s of issue 10), beside ordinary instants with and without offsets.
"""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

EDGE_INSTANTS = [
    "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
    "2024-02-29T23:59:60Z",  # a leap second: not an instant Python holds
    "2026-12-03T10:00:00",  # no offset: UTC
]
_OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=-12)), timezone(timedelta(hours=14, minutes=0))])

schemathesis.openapi.format(
    "date-time",
    st.one_of(
        st.sampled_from(EDGE_INSTANTS),
        st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), _OFFSETS),
    ),
)
