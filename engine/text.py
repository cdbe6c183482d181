"""Checks on what people type: is there anything to see in it."""

from __future__ import annotations

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
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])


def without_controls(text: str) -> str:
    """`text` without control characters, tab and newline kept."""
    return text.translate(_CONTROLS)


def name_key(name: str) -> str:
    """What two names must not share: compatibility-normalized, casefolded, without format
    characters (`Mi\u200bra` and fullwidth `Ｍｉｒａ` read as `Mira`, and would pass for her)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf").strip()
