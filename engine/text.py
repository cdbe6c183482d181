"""Checks on what people type: is there anything to see in it."""

from __future__ import annotations

import re
import unicodedata

# Letters that render as nothing: Hangul fillers, the blank braille pattern. Python counts
# them printable, so they pass `isprintable()` and would make an input or a name of blanks.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(text: str) -> bool:
    """True if `text` shows at least one character: not only spaces, zero-width characters
    or letters that render blank."""
    return any(c.isprintable() and not c.isspace() and c not in _BLANK_LETTERS for c in text)


# C0 controls but tab and newline, DEL and C1: a terminal runs some of them (`\x1b[2J` clears
# the screen), and no chat text needs them.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def without_controls(text: str) -> str:
    """`text` without control characters, tab and newline kept."""
    return CONTROL_CHARACTER.sub("", text) if CONTROL_CHARACTER.search(text) else text


# Marks that show nothing: the combining grapheme joiner and the variation selectors.
_INVISIBLE_MARKS = frozenset(
    ["\u034f", *map(chr, range(0xFE00, 0xFE10)), *map(chr, range(0xE0100, 0xE01F0))]
)


def clean_name(name: str) -> str:
    """A character's name as it is stored and matched: compatibility-normalized (NFKC:
    `ℌilda` is `Hilda`, fullwidth `Ｍｉｒａ` is `Mira`), without what shows nothing (format
    characters such as zero-width spaces, variation selectors, blank letters), spaces
    collapsed. The model writes the plain form, so the plain form must be the name."""
    normal = unicodedata.normalize("NFKC", without_controls(name))
    kept = (
        c
        for c in normal
        if unicodedata.category(c) != "Cf" and c not in _INVISIBLE_MARKS and c not in _BLANK_LETTERS
    )
    return " ".join("".join(kept).split())


def name_key(name: str) -> str:
    """What two names must not share: the clean name, casefolded."""
    return clean_name(name).casefold()
