"""Who wrote a message, kept when the representative is deleted.

Deleting a rep nulls the messages' customer_rep_id and created_by_rep_id (their foreign keys are
SET NULL); the names next to them stay, so that a conversation still says who answered, as
Zendesk's and Zammad's do (docs/messages.md).
"""

from __future__ import annotations

from sqlalchemy import update

from deskpal.core.context import Ctx
from deskpal.messages.models import TicketMessage

# Each rep id column of a message and the name kept with it.
_AUTHOR_COLUMNS = (
    (TicketMessage.customer_rep_id, TicketMessage.customer_rep_name),
    (TicketMessage.created_by_rep_id, TicketMessage.created_by_rep_name),
)


async def keep_author_names(ctx: Ctx, rep_id: int, name: str) -> None:
    """Before `rep_id` is deleted: its messages keep `name`, its last one (it may have been renamed
    since it wrote them, and messages written before the names were stored have none)."""
    for rep_column, name_column in _AUTHOR_COLUMNS:
        # dateUpdated set to itself, or its onupdate would stamp now: the messages did not change.
        # The full-text triggers watch other columns.
        stmt = (
            update(TicketMessage)
            .where(rep_column == rep_id)
            .values({name_column: name, TicketMessage.updated_at: TicketMessage.updated_at})
        )
        await ctx.db.execute(stmt.execution_options(synchronize_session=False))
