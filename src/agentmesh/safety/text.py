"""Text normalisation for matching: confusables, invisible characters, invalid UTF-8.

Checks match against a *skeleton* of each string so "drop table" in full-width letters,
with a Greek omicron for the "o", or with a zero-width space inside reads as
"drop table". ASCII strings (the common case) are returned untouched at no cost.
"""

from __future__ import annotations

import unicodedata

_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
        "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u206a\u206b\u206c"
        "\u206d\u206e\u206f\u3164\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08"
        "\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f\ufeff\uffa0",
    ),
    None,
)
# the usual Latin look-alikes (Unicode confusables.txt, Cyrillic, Greek, Armenian, Cherokee)
_LOOKALIKES = (
    "\u0430a\u0432b\u0435e\u0451e\u043ak\u043cm\u043dh\u043eo\u0440p\u0441c\u0442t\u0443y"
    "\u0445x\u0455s\u0456i\u0457i\u0458j\u0501d\u051bq\u051dw\u04bbh\u04cfl\u0410A\u0412B"
    "\u0415E\u041aK\u041cM\u041dH\u041eO\u0420P\u0421C\u0422T\u0425X\u0405S\u0406I\u0408J"
    "\u03b1a\u03b2b\u03b5e\u03b9i\u03bak\u03bdv\u03bfo\u03c1p\u03c4t\u03c5u\u03c7x\u0391A"
    "\u0392B\u0395E\u0396Z\u0397H\u0399I\u039aK\u039cM\u039dN\u039fO\u03a1P\u03a4T\u03a5Y"
    "\u03a7X\u0585o\u057du\u0581g\u13aaA\u13dfC\u13acE\u13bbH\u13b3W\u0131i\u2113l"
)
"""Pairs of (look-alike, Latin letter)."""
_TABLE = {
    **_INVISIBLE,
    **{ord(_LOOKALIKES[i]): _LOOKALIKES[i + 1] for i in range(0, len(_LOOKALIKES), 2)},
}


def valid_text(value: str) -> str:
    """``value`` as encodable UTF-8 (lone surrogates become U+FFFD)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


def from_bytes(value: bytes | bytearray | memoryview) -> str:
    """Bytes as text; invalid UTF-8 becomes U+FFFD instead of raising."""
    return bytes(value).decode("utf-8", "replace")


def skeleton(value: str) -> str:
    """What a string looks like (NFKC, look-alikes folded, invisible characters gone)."""
    if value.isascii():
        return value
    return unicodedata.normalize("NFKC", valid_text(value)).translate(_TABLE)
