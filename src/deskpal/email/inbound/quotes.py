"""What the sender wrote in this mail: the text with the quoted history and the signature removed.

Measured first: mail-parser-reply (PyPI mail-parser-reply 1.36) met 30 of the corpus's 48
visible-text expectations (62.5%), took 0.5 s on one long quote, and cuts what a person writes —
every line from "Thanks," or "Best," on, bullet lists (a line starting "- " is a signature to it), and
it knows no Portuguese. So these are our own rules (docs/mail.md, "Inbound parsing"), line based and
with bounded patterns, in this order:

1. HTML: quote blocks are dropped before the text is taken (every <blockquote>, Gmail's gmail_quote,
   Yahoo's yahoo_quoted, Thunderbird's moz-cite-prefix), and everything from Outlook's reply header
   on (divRplyFwdMsg, OLK_SRC_BODY_SECTION, its border-top separator, Hotmail's stopSpelling rule);
   a <hr> becomes a separator line that the text rules read like Outlook's underscores.
2. history: from the first "-----Original Message-----" (and its translations), a header block
   ("From:" plus "Sent:"/"Date:"/"To:"/"Subject:" in the 7 languages and a few more), a separator
   line followed by such a block or a mailing-list footer, or a quote header ("On … wrote:", "Am …
   schrieb …:", "Op … schreef …:", "Le … a écrit :", "El … escribió:", "Il … ha scritto:", "Em …
   escreveu:"…) that is not followed by ">" lines: everything below is history.
3. ">" lines are quotes, and a quote header directly above them is their attribution: both go, the
   text between quotes (an interleaved answer) stays.
4. signatures: from a "-- " line on; a short "Sent from my iPhone" line family (and its
   translations) near the end; a last "-Name" line. Closings such as "Thanks,\\nAlex" stay.
5. whitespace: trailing spaces dropped, at most one blank line in a row, ends stripped.

A mail whose every line is history (a bare forward) keeps its whole text: an empty message would hide
what the customer sent.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

from deskpal.messages.html import html_to_text

_BLANKS = re.compile(r"\n{3,}")
MAX_LINE = 2000  # patterns never see a longer line
MAX_HEADER = 400  # a quote header ("On <date>, <name> <address> wrote:") is shorter than this


def normalise_whitespace(text: str) -> str:
    """Trailing spaces dropped, at most one blank line in a row, ends stripped."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def visible_text(text: str | None, html: str | None) -> str:
    """The new text of a mail from its plain text (preferred) or, when it has none, its HTML."""
    if text and text.strip():
        return strip_text(text[:MAX_TEXT])
    if html and html.strip():
        return strip_text(html_to_text(strip_html(defuse_html(html))))
    return ""


# What a person writes above the history fits in these; a longer body's visible text is its start.
MAX_TEXT = 512 * 1024
MAX_HTML = 256 * 1024  # the standard library's HTML parser reads ~0.5 MB of dense tags a second
_STRAY_LT = re.compile(r"<(?![A-Za-z/!?])")


def defuse_html(html: str) -> str:
    """HTML that the standard library's parser reads in linear time: at most MAX_HTML characters,
    comments and declarations removed in one pass (an unclosed `<!--` otherwise makes it re-scan
    the rest of the document at every `<`), stray `<` escaped."""
    html = html[:MAX_HTML]
    out: list[str] = []
    position = 0
    while True:
        start = html.find("<!", position)
        if start < 0:
            out.append(html[position:])
            break
        out.append(html[position:start])
        closer = "-->" if html.startswith("<!--", start) else ">"
        end = html.find(closer, start + 2)
        if end < 0:
            break  # an unclosed comment hides the rest, as it does in a browser
        position = end + len(closer)
    return _STRAY_LT.sub("&lt;", "".join(out))


# --- plain text -------------------------------------------------------------------------------------

_WROTE = (
    r"wrote|writes|schrieb|schreef|a écrit|a ecrit|escribió|escribio|ha scritto|escreveu|skrev|"
    r"napisał|napisal|написал|написала|написал\(а\)|kirjoitti|yazdı|írta|napsal|napsal\(a\)|έγραψε|"  # noqa: RUF001
    r"пише|hat geschrieben"
)
# A quote header starts with its language's lead word, or carries a date, a time or an address.
_LEAD = r"(?:on|am|op|le|el|il|em|no dia|den|d\.|dnia|w dniu|dne|在|el día|the)\b"
_QUOTE_HEADER = re.compile(
    rf"^[ \t]{{0,4}}(?P<body>.{{0,600}}?)\b(?:{_WROTE})\b[^\n:]{{0,120}}:[ \t]*$", re.I
)
# Clients that name no verb (Yandex, mail.ru): `26.06.2014, 14:41, "Name" <a@b.example>:`.
_DATED_ADDRESS = re.compile(r"^(?=[^\n]{0,600}\d)[^\n<]{0,600}<[^<>\s@]{1,200}@[^<>\s]{1,200}>[ \t]*:[ \t]*$")
_HAS_DATE = re.compile(r"\d{1,2}[:.]\d{2}|\d{4}|@|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
_ORIGINAL = re.compile(
    r"^[ \t>]*-{2,}[ \t]*(?:original message|ursprüngliche nachricht|originalnachricht|message d'origine"
    r"|message original|mensaje original|messaggio originale|oorspronkelijk bericht|origineel bericht"
    r"|mensagem original|originalmeddelelse|ursprungligt meddelande|opprinnelig melding"
    r"|alkuperäinen viesti|forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada"
    r"|reply message|original|oryginalna wiadomość|исходное сообщение|пересылаемое сообщение)"
    r"[ \t]*-{2,}[ \t]*$",
    re.I,
)
_FORWARD_INTRO = re.compile(
    r"^[ \t]*(?:begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié"
    r"|inicio del mensaje reenviado|messaggio inoltrato|begin doorgestuurd bericht"
    r"|início da mensagem reencaminhada)[ \t]*:[ \t]*$",
    re.I,
)
_FROM_KEY = r"from|von|de|van|da|fra|från|od|от|lähettäjä|mittente|remetente|expéditeur|absender"
_OTHER_KEYS = (
    r"sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé|envoye|à|a|objet|verzonden|aan|onderwerp"
    r"|enviado|enviada|fecha|para|asunto|inviato|data|oggetto|assunto|sendt|til|emne|skickat|till|ämne"
    r"|wysłano|temat|do|отправлено|кому|тема|kopie|kopia|reply-to|antwort an|répondre à|organization"
)
_FROM_LINE = re.compile(rf"^[ \t>*]*(?:{_FROM_KEY})[ \t]*\*?[ \t]*:[ \t]*\*?[ \t]*(?P<value>\S?)", re.I)
_OTHER_LINE = re.compile(rf"^[ \t>*]*(?:{_OTHER_KEYS})[ \t]*\*?[ \t]*:[ \t]*\*?", re.I)
_SEPARATOR = re.compile(r"^[ \t]*(?:_{10,}|-{10,}|={10,}|\*{10,})[ \t]*$")
_LIST_FOOTER = re.compile(r"mailing list|listinfo|unsubscribe|abmelden|désinscri", re.I)
_SENT_FROM = re.compile(
    r"^[ \t]*(?:sent from|sent with|sent via|sent using|sent by|get outlook for|envoyé de mon|envoyé depuis"
    r"|envoyé avec|von meinem|gesendet von|gesendet mit|enviado desde|enviado de mi|enviado do meu"
    r"|enviado a partir do|enviado con|inviato da|inviato dal|verzonden (?:vanaf|met|van) mijn"
    r"|verstuurd (?:vanaf|met) mijn|skickat från|sendt fra|wysłane z|отправлено с)\b",  # noqa: RUF001
    re.I,
)
_DASH_NAME = re.compile(r"^-[^\s\-][^\n]{0,60}$")
_QUOTED = re.compile(r"^[ \t]{0,3}>")


def strip_text(text: str) -> str:
    lines = [line[:MAX_LINE] for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept = _drop_quotes(lines[: _history_start(lines)])
    kept = kept[: _signature_start(kept)]
    result = normalise_whitespace("\n".join(kept))
    return result or normalise_whitespace(text)


def _next_content(lines: list[str], start: int, limit: int = 3) -> int | None:
    """Index of the first non-blank line at or after `start`, if it comes within `limit` blanks."""
    index = start
    while index < len(lines) and not lines[index].strip():
        index += 1
        if index - start > limit:
            return None
    return index if index < len(lines) else None


def _quote_header_end(lines: list[str], index: int) -> int | None:
    """When a quote header starts at `index` (Gmail wraps long ones over 2-3 lines), the index of
    its last line."""
    if _QUOTED.match(lines[index]) or not lines[index].strip():
        return None
    joined = ""
    for end in range(index, min(index + 3, len(lines))):
        if end > index and (not lines[end].strip() or _QUOTED.match(lines[end])):
            return None
        joined = f"{joined} {lines[end].strip()}".strip()
        # The header's first line must look like one (a lead word, a date, a time, an address):
        # otherwise "Hi," above a header would be read as its start.
        first = lines[index].strip()
        if not joined.endswith(":") or len(joined) > MAX_HEADER:
            continue
        header = _QUOTE_HEADER.match(joined) or _DATED_ADDRESS.match(joined)
        if header and (re.match(_LEAD, first, re.I) or _HAS_DATE.search(first)):
            return end
    return None


def _header_block_at(lines: list[str], index: int) -> bool:
    """A forwarded or replied-to mail's header block: a From line and another header within the
    next few lines (Outlook, also when its HTML put a blank line between them)."""
    match = _FROM_LINE.match(lines[index])
    if match is None:
        return False
    # "From: x" and one more header; a bare "From:" (its value on the next line) needs two more.
    needed = 1 if match.group("value") else 2
    found = sum(1 for follow in lines[index + 1 : index + 9] if _OTHER_LINE.match(follow))
    return found >= needed


def _history_start(lines: list[str]) -> int:
    """The index of the first line of history that runs to the end (len(lines) when none)."""
    for index, line in enumerate(lines):
        if _ORIGINAL.match(line) or _FORWARD_INTRO.match(line) or _header_block_at(lines, index):
            return index
        if _SEPARATOR.match(line):
            follow = _next_content(lines, index + 1)
            if follow is not None and (
                _FROM_LINE.match(lines[follow])
                or _ORIGINAL.match(lines[follow])
                or _LIST_FOOTER.search(" ".join(lines[follow : follow + 2]))
            ):
                return index
        end = _quote_header_end(lines, index)
        if end is not None:
            follow = _next_content(lines, end + 1)
            if follow is None or not _QUOTED.match(lines[follow]):
                return index  # "On … wrote:" with the quote unmarked below it (or nothing at all)
    return len(lines)


def _drop_quotes(lines: list[str]) -> list[str]:
    """Lines without the ">" quotes and the quote headers that introduce them."""
    kept: list[str] = []
    index = 0
    while index < len(lines):
        end = _quote_header_end(lines, index)
        if end is not None:
            index = end + 1
            continue
        if not _QUOTED.match(lines[index]):
            kept.append(lines[index])
        index += 1
    return kept


def _signature_start(lines: list[str]) -> int:
    content = [i for i, line in enumerate(lines) if line.strip()]
    for index in content:
        if lines[index].rstrip() == "--" and index != content[0]:
            return index
    tail = content[-3:]
    for index in tail:
        line = lines[index].strip()
        if _SENT_FROM.match(line) and len(line) <= 80 and len(line.split()) <= 8 and "," not in line:
            return index
    if (
        len(content) > 1
        and _DASH_NAME.match(lines[content[-1]].strip())
        and len(lines[content[-1]].split()) <= 4
    ):
        return content[-1]
    return len(lines)


# --- HTML ---------------------------------------------------------------------------------------------

_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_DROP_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "ydp", "protonmail_quote")
_CUT_IDS = ("divrplyfwdmsg", "x_divrplyfwdmsg", "olk_src_body_section", "stopspelling", "appendonsend")
_OUTLOOK_RULE = re.compile(
    r"border-top\s*:\s*solid\s+#(?:b5c4df|e1e1e1)|border:\s*none;\s*border-top:\s*solid", re.I
)
HR_MARK = "_" * 32


class _QuoteStripper(HTMLParser):
    """Re-emits the HTML without quote blocks and without anything after Outlook's reply header."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self._open: list[str] = []  # the tags open right now
        self._open_count: Counter[str] = Counter()  # the same, for a membership test in O(1)
        self._drop_depth: int | None = None  # len(self._open) where the dropped element opened
        self.cut = False

    def _dropping(self) -> bool:
        return self.cut or self._drop_depth is not None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.cut:
            return
        values = {k: (v or "") for k, v in attrs}
        if tag not in _VOID:
            self._open.append(tag)
            self._open_count[tag] += 1
        if self._drop_depth is not None:
            return
        classes = values.get("class", "").lower()
        ident = values.get("id", "").lower()
        if ident in _CUT_IDS or (tag == "div" and _OUTLOOK_RULE.search(values.get("style", ""))):
            self.cut = True
            return
        if tag not in _VOID and (tag == "blockquote" or any(c in classes.split() for c in _DROP_CLASSES)):
            self._drop_depth = len(self._open)
            return
        if tag == "hr":
            self.out.append(f"<p>{HR_MARK}</p>")
            return
        self.out.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._dropping():
            if tag == "hr":
                self.out.append(f"<p>{HR_MARK}</p>")
            else:
                self.out.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if self.cut:
            return
        if self._open_count[tag] > 0:
            while self._open:  # close what the sender left open inside it, as browsers do
                closed = self._open.pop()
                self._open_count[closed] -= 1
                if closed == tag:
                    break
        if self._drop_depth is not None:
            if len(self._open) < self._drop_depth:
                self._drop_depth = None
            return
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self._dropping():
            self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        if not self._dropping():
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self._dropping():
            self.out.append(f"&#{name};")


def strip_html(html: str) -> str:
    """The HTML without its quote blocks (see the module doc)."""
    parser = _QuoteStripper()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but a bug here must not hide the text
        return html
    return "".join(parser.out)
