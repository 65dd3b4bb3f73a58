"""Job types of deskpal itself."""

from __future__ import annotations

from pydantic import BaseModel

from deskpal.core.context import Ctx
from deskpal.core.jobs import job


class NoopPayload(BaseModel):
    note: str = ""


@job("system.noop", payload=NoopPayload, max_attempts=3)
async def noop(ctx: Ctx, payload: NoopPayload) -> None:
    """Does nothing, successfully: proves a deployment's workers claim and finish jobs."""
