"""A message's bodies as stored: HTML sanitised, plain text and preview derived."""

from __future__ import annotations

from dataclasses import dataclass

from deskpal.messages.html import html_to_text, preview_of, sanitize_html


@dataclass(frozen=True, slots=True)
class Content:
    """A message's bodies: HTML sanitised, plain text derived from it when missing."""

    html_body: str | None
    text_body: str | None
    body_preview: str | None


def derive_content(*, html_body: str | None, text_body: str | None, message: str | None) -> Content:
    clean = sanitize_html(html_body) if html_body else None
    text = text_body or (html_to_text(clean) if clean else None) or message
    return Content(clean or None, text, preview_of(text) if text else None)
