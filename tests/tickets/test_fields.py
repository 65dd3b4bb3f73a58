"""Every field of the ticket's write document has exactly one rule (tickets/writes.py), and the read
DTO's stored fields come from the columns of the same name (tickets/views.py)."""

from __future__ import annotations

from collections import Counter

import deskpal.models  # noqa: F401 - every table, for the mappers
from deskpal.tickets import views, writes
from deskpal.tickets.models import Ticket
from deskpal.tickets.schemas import TicketReadDTO, TicketWriteDTO

GROUPS = {
    "REPLACED": writes.REPLACED,
    "KEPT_UNLESS_NAMED": writes.KEPT_UNLESS_NAMED,
    "SERVER_MAINTAINED": writes.SERVER_MAINTAINED,
    "CLOSED_COLUMNS": writes.CLOSED_COLUMNS,
    "OWN_RULES": writes.OWN_RULES,
}


def test_every_write_field_has_exactly_one_rule() -> None:
    named = Counter(name for group in GROUPS.values() for name in group)
    assert {name for name, n in named.items() if n > 1} == set()
    assert set(named) == set(TicketWriteDTO.model_fields)


def test_the_read_dto_shows_every_column_it_names() -> None:
    columns = set(Ticket.__table__.columns.keys())
    assert set(views.READ_COLUMNS) == set(TicketReadDTO.model_fields) & columns
    # The write document (a JSON Patch's target) is the stored part of what a client reads.
    shared = set(views.STORED_COLUMNS) | {"custom_fields_data", "end_user_id"}
    assert shared == set(TicketWriteDTO.model_fields)
