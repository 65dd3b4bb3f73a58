"""(measuring stub)"""
from __future__ import annotations
import os
import re
from mailparser_reply import EmailReplyParser
from deskpal.messages.html import html_to_text

_BLANKS = re.compile(r"\n{3,}")


def normalise_whitespace(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def visible_text(text: str | None, html: str | None) -> str:
    source = text if text and text.strip() else (html_to_text(html) if html else "")
    msg = EmailReplyParser(languages=["en", "de", "nl", "fr", "es", "it"]).read(source)
    if not msg.replies:
        return ""
    mode = os.environ.get("MPR_MODE", "body")
    return normalise_whitespace(msg.replies[0].body if mode == "body" else msg.replies[0].content)
