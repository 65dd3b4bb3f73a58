"""Bytes of a mail to text, whatever its label says.

Mail lies about its charset: `us-ascii` over 8-bit bytes, `iso-8859-1` over Windows-1252 quotes or
over UTF-8, labels Python does not know (`ks_c_5601-1987` spellings, `x-unknown`, `"utf-8\\r\\n"`),
headers in raw 8-bit with no label at all. The rules, in order:

1. a label is mapped to the superset browsers use for it (WHATWG Encoding: latin-1 → cp1252,
   euc-kr → cp949, gb2312 → gb18030, shift_jis → cp932…), because senders that say the subset
   routinely send the superset;
2. bytes that are valid UTF-8 (and not plain ASCII) under a single-byte label are UTF-8: a random
   single-byte text is practically never valid UTF-8, while UTF-8 mislabelled as latin-1 is common;
3. a label that fails strictly falls back to UTF-8, then to charset-normalizer's guess, and last to
   the label (or cp1252) with replacement characters: the text is always returned.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

# WHATWG-style supersets and common misspellings, keyed by the label's lower-cased, trimmed form.
_SUPERSETS = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "ks_c_5601_1987": "cp949",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "utf8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "unicode": "utf-8",
}
# Labels that name no charset: decide from the bytes.
_NO_CHARSET = {"", "unknown-8bit", "x-unknown", "unknown", "default", "x-user-defined", "8bit", "binary"}
_ASCII = re.compile(rb"[\x00-\x7f]*")
_DETECT_LIMIT = 64 * 1024  # charset-normalizer's guess from the first 64 KiB is as good and bounded


def codec_for(label: str | None) -> str | None:
    """The Python codec to read `label` with (its superset), or None when the label names none
    Python knows."""
    if label is None:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if name in _NO_CHARSET:
        return None
    name = _SUPERSETS.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _single_byte(codec: str) -> bool:
    return codec.startswith(("cp125", "iso8859", "latin", "koi8", "mac-", "cp4", "cp8", "ascii", "cp874"))


def is_ascii(data: bytes) -> bool:
    return _ASCII.fullmatch(data) is not None


def decode_bytes(data: bytes, label: str | None) -> tuple[str, bool]:
    """The text of `data` labelled `label`, and whether the label was wrong (or missing where 8-bit
    bytes needed one). Never raises."""
    codec = codec_for(label)
    if is_ascii(data):
        if b"\x1b" not in data and not (codec or "").startswith(("utf_7", "hz")):
            return data.decode("ascii"), False
        # 7-bit charsets (ISO-2022-JP/KR, UTF-7, HZ) under their label, or an unlabelled ESC sequence.
        for candidate in (codec, "iso2022_jp_ext", "iso2022_jp_2", "iso2022_kr"):
            if candidate is not None:
                try:
                    return data.decode(candidate), codec is None
                except (UnicodeDecodeError, LookupError):
                    continue
        return data.decode("ascii"), False
    if codec is not None and codec != "utf-8" and _single_byte(codec):
        try:
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            pass
    if codec is not None:
        try:
            return data.decode(codec), False
        except UnicodeDecodeError:
            pass
    if codec == "utf-8":
        # Labelled UTF-8 with a few broken bytes (a cut multi-byte character): the label is right.
        return data.decode("utf-8", errors="replace"), True
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    guess = _guess(data)
    if guess is not None:
        try:
            return data.decode(guess), True
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode(codec or "cp1252", errors="replace"), True


def _guess(data: bytes) -> str | None:
    try:
        best = from_bytes(data[:_DETECT_LIMIT]).best()
    except Exception:  # a detector bug must not lose the mail; the caller falls back to cp1252
        return None
    return best.encoding if best is not None else None


_SURROGATES = re.compile("[\udc80-\udcff]+")


def repair_surrogates(value: str, label: str | None = None) -> str:
    """A header value as the email package returns it (raw 8-bit bytes kept as lone surrogates) with
    those bytes decoded: UTF-8 first (RFC 6532), else the guess."""
    if not _SURROGATES.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    return decode_bytes(raw, label)[0]
