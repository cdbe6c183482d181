"""Offline token estimates (tiktoken would download its tables at first use, which fails here).

Heuristic, documented so the budget maths can be trusted:

- English prose runs about four characters per token (`chars / 4`) and a little over one
  token per word (`words * 1.3`); code, numbers and punctuation-heavy text run denser than
  the character rule, short-word text denser than the word rule. We take the larger of the
  two, so either kind of text is covered.
- Non-Latin scripts (CJK, Cyrillic, emoji...) cost more tokens per character: every extra
  UTF-8 byte adds half a token.
- A 10 % margin on top, rounded up, so a prompt errs on the side of fitting the budget.

So `estimate_tokens(t) >= len(t) / 4` always, and the estimate never decreases when text is
appended. Real tokenizers agree within roughly ±25 % on prose; the margin absorbs most of it.
It is pure and cheap (one split, one encode for non-ASCII text): the turn pipeline calls it
for every context entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Role and separators of one chat message (OpenAI documents 3-4 per message), and the
# priming of the assistant's reply.
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 2
_MARGIN = 1.1
LINE_KEPT = 30  # tokens of a line `fit_lines` keeps however small the room


def estimate_tokens(text: str) -> int:
    """An upper-leaning estimate of the tokens of `text`; 0 for the empty string."""
    if not text:
        return 0
    by_chars = len(text) / 4
    by_words = len(text.split()) * 1.3
    # Extra UTF-8 bytes stand in for non-Latin text (counted in C, not char by char).
    non_ascii = 0 if text.isascii() else len(text.encode("utf-8", "surrogatepass")) - len(text)
    return int((max(by_chars, by_words) + non_ascii * 0.5) * _MARGIN) + 1


def shortened(text: str, tokens: int, mark: str = " [...]") -> str:
    """`text`, or its start in about `tokens` estimated tokens (the mark's included) with
    `mark` after it to show it was cut."""
    cost = estimate_tokens(text)
    if cost <= tokens:
        return text
    keep = len(text) * tokens // cost
    while keep > 0 and estimate_tokens(text[:keep] + mark) > tokens:
        keep = keep * 9 // 10
    return text[:keep].rstrip() + mark


def fit_lines(lines: list[str], room: int, floor: int = LINE_KEPT) -> list[str]:
    """`lines` shortened to about `room` tokens together: each to a fair share, a line
    shorter than its share keeping all of it and leaving the rest to the others (none to
    fewer than `floor` tokens)."""
    costs = [estimate_tokens(line) + 1 for line in lines]  # (+1: the line break)
    if sum(costs) <= room:
        return lines
    caps = [0] * len(lines)
    left = room
    by_cost = sorted(range(len(lines)), key=costs.__getitem__)
    for done, i in enumerate(by_cost):
        share = max(floor, left // (len(lines) - done))
        caps[i] = min(costs[i], share)
        left -= caps[i]
    return [
        line if caps[i] >= costs[i] else shortened(line, caps[i] - 1)
        for i, line in enumerate(lines)
    ]


def estimate_messages_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """Estimated prompt tokens of chat messages, per-message overhead included."""
    return (
        sum(estimate_tokens(m.get("content") or "") + MESSAGE_OVERHEAD for m in messages)
        + REPLY_PRIMING
    )
