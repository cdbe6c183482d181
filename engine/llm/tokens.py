"""Offline token estimates (tiktoken would download its tables at first use).

English prose runs about four characters per token and a little over one token per word;
punctuation-heavy or non-Latin text runs denser. We take the larger of the two estimates,
plus a margin, so prompts err on the side of fitting the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MESSAGE_OVERHEAD = 4
_MARGIN = 1.1


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    by_chars = len(text) / 4
    by_words = len(text.split()) * 1.3
    # Extra UTF-8 bytes stand in for non-Latin text (counted in C, not char by char).
    non_ascii = 0 if text.isascii() else len(text.encode("utf-8", "surrogatepass")) - len(text)
    return int((max(by_chars, by_words) + non_ascii * 0.5) * _MARGIN) + 1


def estimate_messages_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    return sum(estimate_tokens(m.get("content", "")) + MESSAGE_OVERHEAD for m in messages) + 2
