"""Topics."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict, ValidationFailed
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.topics.models import Topic
from deskpal.topics.schemas import TopicWriteDTO


async def list_topics(ctx: Ctx, params: PageParams) -> PageResult[Topic]:
    return await paginate(ctx.db, select(Topic).order_by(Topic.name, Topic.topic_id), params)


async def get_topic(ctx: Ctx, topic_id: int) -> Topic:
    return await get_or_404(ctx.db, Topic, topic_id, what="topic")


async def require_topic_ids(ctx: Ctx, topic_ids: Sequence[int], *, field: str = "topicIds") -> list[int]:
    """The ids, deduplicated in order, once every one names a topic; else 400 naming `field`."""
    wanted = list(dict.fromkeys(topic_ids))
    found = set((await ctx.db.scalars(select(Topic.topic_id).where(Topic.topic_id.in_(wanted)))).all())
    missing = [t for t in wanted if t not in found]
    if missing:
        raise ValidationFailed.field(field, f"no topics {', '.join(map(str, missing))}")
    return wanted


async def _ensure_name_free(ctx: Ctx, name: str, except_id: int | None = None) -> None:
    stmt = select(Topic.topic_id).where(Topic.name == name)
    if except_id is not None:
        stmt = stmt.where(Topic.topic_id != except_id)
    if (await ctx.db.scalars(stmt)).first() is not None:
        raise Conflict(f"a topic named {name!r} exists", code="TOPIC_NAME_TAKEN")


async def create_topic(ctx: Ctx, data: TopicWriteDTO) -> Topic:
    await _ensure_name_free(ctx, data.name)
    topic = Topic(name=data.name, description=data.description)
    ctx.db.add(topic)
    await ctx.db.flush()
    return topic


async def update_topic(ctx: Ctx, topic_id: int, data: TopicWriteDTO) -> Topic:
    topic = await get_topic(ctx, topic_id)
    await _ensure_name_free(ctx, data.name, except_id=topic_id)
    topic.name, topic.description = data.name, data.description
    await ctx.db.flush()
    return topic


async def delete_topic(ctx: Ctx, topic_id: int) -> None:
    await ctx.db.delete(await get_topic(ctx, topic_id))
    await ctx.db.flush()
