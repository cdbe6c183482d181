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


# Surrogate code points: never text on their own. Python makes them of bytes it cannot decode
# (`surrogateescape`: a stray \xff on standard input is "\udcff"), and neither UTF-8 nor the
# database can store them.
SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """`text` with each surrogate code point replaced by U+FFFD, as a decoder with
    `errors="replace"` shows a byte it cannot decode."""
    return SURROGATE.sub("\N{REPLACEMENT CHARACTER}", text) if SURROGATE.search(text) else text


def without_controls(text: str) -> str:
    """`text` without control characters, tab and newline kept, and with surrogates shown as
    U+FFFD (`without_surrogates`): what the engine stores can always be encoded."""
    text = without_surrogates(text)
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


def name_words(name: str) -> list[str]:
    """The words of a name, each of which the model (or a player) may call its character by:
    `Corvin` and `Hale` of Corvin Hale, `The` and `Marsh-Born` of The Marsh-Born."""
    return [word for word in re.split(r"[^\w-]+", clean_name(name)) if word]


def name_key(name: str) -> str:
    """What two names must not share: the clean name, casefolded."""
    return clean_name(name).casefold()


# Letters of other scripts that look like Latin ones, and the Latin letter each passes for: the
# Cyrillic and Greek entries of Unicode's confusables.txt (UTS #39) whose prototype is one
# Latin letter, those that survive NFKC (the lunate sigma `ϲ` becomes `ς`). Where the
# table's prototype is `l` because a capital I looks like an l (Cyrillic `І`, Greek `Ι`), the
# letter maps to `I`: Latin lookalikes of one another (`I`/`l`, `rn`/`m`) are not compared.
# Letters with an accent are covered: a name is decomposed first (`ё` is `е` + diaeresis).
_LATIN_LOOKALIKES = str.maketrans(
    {
        # Cyrillic capitals
        "А": "A", "В": "B", "Е": "E", "Ѕ": "S", "І": "I", "Ј": "J", "К": "K", "М": "M",
        "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ү": "Y",
        "Ѵ": "V", "Ӏ": "I", "Ԍ": "G", "Ԝ": "W",
        # Cyrillic small letters
        "а": "a", "г": "r", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x",
        "ѕ": "s", "і": "i", "ј": "j", "һ": "h", "ѡ": "w", "ѵ": "v", "ү": "y", "ҽ": "e",
        "ԁ": "d", "ԛ": "q", "ԝ": "w",
        # Greek capitals
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
        "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϝ": "F", "Ϳ": "J",
        # Greek small letters
        "α": "a", "γ": "y", "ι": "i", "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "υ": "u",
        "ϳ": "j",
    }
)  # fmt: skip


def skeleton(name: str) -> str:
    """How `name` looks, to tell a lookalike of another name (UTS #39's skeleton, for Latin
    lookalikes only): the clean name decomposed, Cyrillic and Greek letters that look like
    Latin ones made Latin, casefolded. `Міга` (all Cyrillic) is `mira`, as `Mira` is."""
    decomposed = unicodedata.normalize("NFD", clean_name(name))
    return unicodedata.normalize("NFC", decomposed.translate(_LATIN_LOOKALIKES)).casefold()


def name_keys(name: str) -> frozenset[str]:
    """What two names must not share, any of it: the name's key (so `НАТАША` is `Наташа`) and
    its skeleton (so `Міга` is `Mira`)."""
    return frozenset((name_key(name), skeleton(name)))


def same_name(name: str, *others: str) -> bool:
    """True if `name` is, or looks like, one of `others` (names or keys)."""
    keys = name_keys(name)
    return any(not keys.isdisjoint(name_keys(other)) for other in others)


# UTS #39's augmented script sets: a word may mix Han with the kana (Japanese), with Hangul
# (Korean) or with Bopomofo (Chinese), and Latin with any of these ("highly restrictive").
_WRITING_SYSTEMS = {
    "LATIN": frozenset({"LATIN", "JAPANESE", "KOREAN", "CHINESE"}),
    "HAN": frozenset({"HAN", "JAPANESE", "KOREAN", "CHINESE"}),
    "HIRAGANA": frozenset({"JAPANESE"}),
    "KATAKANA": frozenset({"JAPANESE"}),
    "HANGUL": frozenset({"KOREAN"}),
    "BOPOMOFO": frozenset({"CHINESE"}),
}
# First words of character names that are not the script's own: `CJK UNIFIED IDEOGRAPH-4E00`,
# `IDEOGRAPHIC ITERATION MARK` (々), `KATAKANA-HIRAGANA PROLONGED SOUND MARK` (ー).
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA"}


def script_of(char: str) -> str | None:
    """The script of a letter, by the first word of its Unicode name (`LATIN`, `CYRILLIC`,
    `GREEK`, `HAN`, ...); None for what any script uses: digits, punctuation, symbols,
    combining marks, modifier letters such as `ʼ`."""
    if not unicodedata.category(char).startswith("L"):
        return None
    first = unicodedata.name(char, "").partition(" ")[0]
    if first in ("", "MODIFIER"):
        return None
    return _SCRIPT_ALIASES.get(first, first)


def mixed_scripts(name: str) -> tuple[str, list[str]] | None:
    """The first word of `name` whose letters mix scripts, and its scripts in order (`Mirа`
    with a Cyrillic `а`: Latin and Cyrillic), or None: UTS #39's mixed-script detection, one
    word at a time (`Mira Петрова` is fine). Japanese, Korean and Chinese mix their scripts."""
    for word in clean_name(name).split():
        scripts = list(dict.fromkeys(s for s in map(script_of, word) if s is not None))
        systems = [_WRITING_SYSTEMS.get(s, frozenset({s})) for s in scripts]
        if systems and not frozenset.intersection(*systems):
            return word, [s.title() for s in scripts]
    return None
