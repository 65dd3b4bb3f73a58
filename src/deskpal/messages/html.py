"""HTML bodies: sanitised on the way in (nh3), and their plain text for textBody and bodyPreview.

nh3 (the Rust ammonia sanitiser) keeps an allow-list of tags, attributes and URL schemes: scripts,
styles sheets, event handlers, forms, iframes and `javascript:` / `data:` URLs never survive. Inline
`style` attributes are kept, reduced to plain formatting properties, because mail clients format with
them; properties that can load URLs (background-image, behavior…) are dropped.
"""

from __future__ import annotations

from html.parser import HTMLParser

import nh3

PREVIEW_CHARS = 200

_TAGS = nh3.ALLOWED_TAGS | {"font", "tfoot", "th", "center"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "a": {"href", "hreflang", "title", "name"},
    "font": {"color", "face", "size"},
    "img": {"src", "alt", "width", "height", "align", "title"},
    "td": {"colspan", "rowspan", "align", "valign", "width", "height", "bgcolor"},
    "th": {"colspan", "rowspan", "align", "valign", "width", "height", "bgcolor", "scope"},
    "table": {"align", "width", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
}
_GENERIC_ATTRIBUTES = {"style", "dir", "lang", "title"}
# http(s) links, mail and phone links, and cid: for images embedded in the mail itself.
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "line-height",
    "letter-spacing",
    "white-space",
    "vertical-align",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "border-radius",
    "width",
    "max-width",
    "min-width",
    "height",
    "display",
    "list-style-type",
}


def sanitize_html(value: str) -> str:
    """The HTML with only safe markup left; the content of dropped script/style elements goes too."""
    attributes = {tag: attrs | _GENERIC_ATTRIBUTES for tag, attrs in _ATTRIBUTES.items()}
    attributes["*"] = _GENERIC_ATTRIBUTES
    return nh3.clean(
        value,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "template", "object", "iframe"},
        attributes=attributes,
        url_schemes=_URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=_STYLE_PROPERTIES,
    )


_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "nav", "ol",
        "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
_SKIPPED = frozenset({"script", "style", "head", "title", "noscript", "template"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in {"td", "th"}:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def has_visible_content(clean_html: str | None) -> bool:
    """Whether sanitised HTML shows anything: text, or an image."""
    if not clean_html:
        return False
    return bool(html_to_text(clean_html).strip()) or "<img" in clean_html.lower()


def html_to_text(value: str) -> str:
    """The readable text of an HTML body: one line per block, spaces collapsed, no markup."""
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def preview_of(text: str, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most `limit` characters, cut at a word where possible."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"
