"""Email templates: a customer's header, signature and footer around outgoing mail (docs/mail.md).

Rendered by Jinja2's SandboxedEnvironment with autoescape (a template is HTML; placeholder values
are escaped). A template sees only the context it is given, made of plain values (`context()`):
no globals (range, cycler, lipsum... are removed), and no ORM object or setting is ever passed.
Beyond the sandbox, the language is cut down to what a header needs, so that rendering is linear
in the template's size and cannot be made to allocate or loop without bound: `{{ expressions }}`
(names, attributes, items, constants, `~`, comparisons, and/or/not, `x if c else y`), `{% if %}`,
an allow-list of filters and tests. No `for`, `set`, macros, calls, arithmetic, include/import.
A template breaking these rules, or with a syntax error, is refused when it is saved (400 naming
the field, with Jinja's message and line); at send time every failure (a name that is not there
renders empty; a sandbox SecurityError, any error, output over the cap) renders that part empty
and is logged: a send never dies on a template.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from deskpal.core.errors import ValidationFailed
from deskpal.email.compose import text_to_html
from deskpal.email.models import EmailTemplate
from deskpal.messages.html import html_to_text

log = logging.getLogger("deskpal.email")

MAX_SOURCE_BYTES = 64 * 1024
MAX_OUTPUT_CHARS = 256 * 1024
FIELDS = ("header", "footer", "signature")

_FILTERS = frozenset(
    {
        "default", "d", "escape", "e", "upper", "lower", "title", "capitalize", "trim", "striptags",
        "truncate", "length", "count", "first", "last", "string", "int", "abs", "round", "urlencode",
        "wordcount",
    }
)  # fmt: skip
_TESTS = frozenset(
    {
        "defined", "undefined", "none", "number", "string", "mapping", "integer", "boolean", "true",
        "false", "eq", "ne", "equalto", "lt", "gt", "le", "ge", "in", "sameas", "odd", "even",
    }
)  # fmt: skip
_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name, nodes.Getattr,
    nodes.Getitem, nodes.Const, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand, nodes.And,
    nodes.Or, nodes.Not, nodes.CondExpr, nodes.Concat, nodes.Neg, nodes.Pos, nodes.Keyword,
)  # fmt: skip


def _blank_none(value: Any) -> Any:
    return "" if value is None else value  # a missing rep or end user name prints nothing


# Names Jinja itself binds (the template, loops, macros): not the context's, so not shown.
_JINJA_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs"})


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=True, undefined=ChainableUndefined, auto_reload=False, finalize=_blank_none
    )
    env.globals.clear()
    env.filters = {name: fn for name, fn in env.filters.items() if name in _FILTERS}
    env.tests = {name: fn for name, fn in env.tests.items() if name in _TESTS}
    return env


_ENV = _environment()


class TemplateRefused(ValueError):
    """A template source deskpal does not render: the message says why, with its line."""


_SPELLED = {
    "For": "{% for %}", "Assign": "{% set %}", "AssignBlock": "{% set %}", "Macro": "{% macro %}",
    "CallBlock": "{% call %}", "FilterBlock": "{% filter %}", "With": "{% with %}", "Call": "a call",
    "Include": "{% include %}", "Import": "{% import %}", "FromImport": "{% from %}",
    "Extends": "{% extends %}", "Block": "{% block %}", "Mul": "*", "Pow": "**", "Mod": "%",
    "Div": "/", "FloorDiv": "//", "Add": "+", "Sub": "-",
}  # fmt: skip


def _check_nodes(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _NODES):
            what = _SPELLED.get(type(node).__name__, type(node).__name__.lower())
            raise TemplateRefused(f"{what} is not allowed in a template (line {node.lineno})")
        if isinstance(node, nodes.Name) and node.ctx != "load":
            raise TemplateRefused(f"assignment is not allowed in a template (line {node.lineno})")
        if isinstance(node, nodes.Name) and node.name in _JINJA_NAMES:
            raise TemplateRefused(f"{node.name} is not available in a template (line {node.lineno})")


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise TemplateRefused(f"is longer than {MAX_SOURCE_BYTES // 1024} KB")
    try:
        _check_nodes(_ENV.parse(source))
        return _ENV.from_string(source)  # unknown filters and tests fail here
    except TemplateSyntaxError as exc:
        raise TemplateRefused(f"{exc.message} (line {exc.lineno})") from None
    except (RecursionError, SyntaxError):
        # Jinja parses and Python compiles nesting recursively (Python allows 20 nested blocks).
        raise TemplateRefused("is nested too deeply") from None


def check_source(field: str, source: str | None) -> None:
    """Refuse a template part that would not render: ValidationFailed naming `field`."""
    if not source:
        return
    try:
        _compiled(source)
    except TemplateRefused as exc:
        raise ValidationFailed.field(field, str(exc)) from None


def render(source: str | None, context: Mapping[str, Any], *, part: str = "template") -> str:
    """The rendered HTML of one part; empty (and logged) when it cannot render."""
    if not source:
        return ""
    try:
        out: list[str] = []
        size = 0
        for chunk in _compiled(source).generate(_plain(dict(context))):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateRefused(f"renders more than {MAX_OUTPUT_CHARS // 1024} KB")
            out.append(chunk)
        return "".join(out)
    except Exception as exc:  # a template must never stop a send (the sandbox's SecurityError too)
        log.warning("email template %s rendered empty: %s: %s", part, type(exc).__name__, exc)
        return ""


def _plain(value: Any) -> Any:
    """Only plain values reach a template: dicts, lists, text, numbers; dates as ISO text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return None  # an ORM object, a setting, a function: nothing a template may see


def context(
    *,
    ticket_id: int | None = None,
    ticket_subject: str | None = None,
    end_user_name: str | None = None,
    end_user_email: str | None = None,
    rep_name: str | None = None,
    rep_email: str | None = None,
    channel_name: str | None = None,
    customer_name: str | None = None,
    message_subject: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The documented template context (docs/mail.md), as plain values."""
    return {
        "ticket": {"id": ticket_id, "subject": ticket_subject},
        "end_user": {"name": end_user_name, "email": end_user_email},
        "rep": {"name": rep_name, "email": rep_email},
        "channel": {"name": channel_name},
        "customer": {"name": customer_name},
        "message": {"subject": message_subject},
        "now": now.isoformat() if now is not None else None,
    }


@dataclass(frozen=True)
class Wrapped:
    text: str | None
    html: str | None


def wrap(
    template: EmailTemplate | None, context: Mapping[str, Any], *, text: str | None, html: str | None
) -> Wrapped:
    """The body inside the template: header, body, signature, footer, in HTML and in text (the
    text of the rendered HTML parts). Without a template, or one rendering nothing, unchanged."""
    if template is None:
        return Wrapped(text, html)
    header, signature, footer = (
        render(getattr(template, name), context, part=f"{template.name}.{name}")
        for name in ("header", "signature", "footer")
    )
    if not (header.strip() or signature.strip() or footer.strip()):
        return Wrapped(text, html)
    body_html = html if html is not None else text_to_html(text or "")
    body_text = text if text is not None else html_to_text(html or "")
    html_out, text_out = [], []
    for part, body in ((header, None), (None, (body_html, body_text)), (signature, None), (footer, None)):
        if body is not None:
            html_out.append(body[0])
            text_out.append(body[1])
        elif part and part.strip():
            html_out.append(f"<div>{part}</div>")
            text_out.append(html_to_text(part))
    return Wrapped("\n\n".join(t for t in text_out if t.strip()), "\n".join(h for h in html_out if h.strip()))
