"""Email templates: CRUD, the default template, and the template a message sends with."""

from __future__ import annotations

from sqlalchemy import select, update

from deskpal.core.context import Ctx
from deskpal.core.crud import get_or_404
from deskpal.core.errors import Conflict, ValidationFailed
from deskpal.core.schemas import PageParams, PageResult, paginate
from deskpal.email.models import EmailTemplate
from deskpal.email.schemas import EmailTemplateWriteDTO
from deskpal.email.templates import FIELDS, check_source


async def list_templates(ctx: Ctx, params: PageParams) -> PageResult[EmailTemplate]:
    stmt = select(EmailTemplate).order_by(EmailTemplate.name, EmailTemplate.email_template_id)
    return await paginate(ctx.db, stmt, params)


async def get_template(ctx: Ctx, template_id: int) -> EmailTemplate:
    return await get_or_404(ctx.db, EmailTemplate, template_id, what="email template")


async def find_template(ctx: Ctx, template_id: int) -> EmailTemplate | None:
    stmt = select(EmailTemplate).where(EmailTemplate.email_template_id == template_id)
    return (await ctx.db.scalars(stmt)).first()


async def find_default(ctx: Ctx) -> EmailTemplate | None:
    stmt = select(EmailTemplate).where(EmailTemplate.is_default.is_(True))
    return (await ctx.db.scalars(stmt.order_by(EmailTemplate.email_template_id))).first()


async def template_for(ctx: Ctx, email_template_id: int | None) -> EmailTemplate | None:
    """The template a message sends with: the one it names, else (none named, or named and since
    deleted: the column has no foreign key) the customer's default, else None."""
    if email_template_id is not None and (named := await find_template(ctx, email_template_id)):
        return named
    return await find_default(ctx)


async def require_template_id(ctx: Ctx, template_id: int, *, field: str = "emailTemplateID") -> None:
    """400 naming `field` unless the id names one of the customer's templates."""
    if await find_template(ctx, template_id) is None:
        raise ValidationFailed.field(field, f"no email template {template_id}")


def _check(data: EmailTemplateWriteDTO) -> None:
    for name in FIELDS:
        check_source(name, getattr(data, name))


async def _ensure_name_free(ctx: Ctx, name: str, except_id: int | None = None) -> None:
    stmt = select(EmailTemplate.email_template_id).where(EmailTemplate.name == name)
    if except_id is not None:
        stmt = stmt.where(EmailTemplate.email_template_id != except_id)
    if (await ctx.db.scalars(stmt)).first() is not None:
        message = f"an email template named {name!r} exists"
        errors = [{"field": "name", "message": message}]
        raise Conflict(message, code="EMAIL_TEMPLATE_NAME_TAKEN", errors=errors)


async def _lock_templates(ctx: Ctx) -> None:
    # Two admins making two templates the default at once: each locks the customer's templates
    # (in id order, so the two cannot deadlock) before changing any, so the second waits and then
    # unsets the first's. SQLite serialises writers anyway.
    stmt = select(EmailTemplate.email_template_id).order_by(EmailTemplate.email_template_id)
    await ctx.db.execute(stmt.with_for_update())


async def _unset_other_defaults(ctx: Ctx, keep_id: int) -> None:
    await ctx.db.execute(
        update(EmailTemplate)
        .where(EmailTemplate.is_default.is_(True), EmailTemplate.email_template_id != keep_id)
        .values(is_default=False)
        .execution_options(synchronize_session="fetch")
    )


def _assign(template: EmailTemplate, data: EmailTemplateWriteDTO) -> None:
    template.name, template.is_default = data.name, data.is_default
    template.header, template.footer, template.signature = data.header, data.footer, data.signature


async def create_template(ctx: Ctx, data: EmailTemplateWriteDTO) -> EmailTemplate:
    _check(data)
    if data.is_default:
        await _lock_templates(ctx)
    await _ensure_name_free(ctx, data.name)
    template = EmailTemplate()
    _assign(template, data)
    ctx.db.add(template)
    await ctx.db.flush()
    if data.is_default:
        await _unset_other_defaults(ctx, template.email_template_id)
    return template


async def update_template(ctx: Ctx, template_id: int, data: EmailTemplateWriteDTO) -> EmailTemplate:
    template = await get_template(ctx, template_id)
    _check(data)
    if data.is_default:
        await _lock_templates(ctx)
    await _ensure_name_free(ctx, data.name, except_id=template_id)
    _assign(template, data)
    await ctx.db.flush()
    if data.is_default:
        await _unset_other_defaults(ctx, template_id)
    return template


async def delete_template(ctx: Ctx, template_id: int) -> None:
    """Messages naming it keep the id and send with the default template (no foreign key)."""
    await ctx.db.delete(await get_template(ctx, template_id))
    await ctx.db.flush()
