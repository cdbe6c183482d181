"""Tolerant extraction of a JSON object from a model's reply.

Servers without structured output (and some with it) wrap the object in prose, in ```json
fences, or after a reasoning block (`<think>...</think>`, maybe without its opening tag). We
drop reasoning blocks, try the fenced parts first, then the whole text, and return the first
`{...}` that decodes as a JSON object. Work is bounded, so hostile replies full of braces
cost little.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_CHARS = 200_000
MAX_ATTEMPTS = 50  # bounded work on hostile replies full of braces
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_THINK = re.compile(
    r"<\s*(think(?:ing)?|reasoning)\s*>.*?(?:<\s*/\s*\1\s*>|$)", re.DOTALL | re.IGNORECASE
)
# An opening or closing reasoning tag (the script parser uses it too).
# Spaces inside the brackets too (`< think>`, `</ think >`): some templates write them.
REASONING_TAG = re.compile(r"<\s*(?P<close>/?)\s*(?:think(?:ing)?|reasoning)\s*>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """`text` without reasoning blocks (`<think>...</think>`, `<thinking>`, `<reasoning>`,
    or one left unclosed). A reply that starts inside a block (its server's chat template
    opened it) loses everything up to its lone closing tag."""
    first = REASONING_TAG.search(text)
    if first is not None and first.group("close"):
        text = text[first.end() :]
    return _THINK.sub("", text)


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (inside code fences or prose), or None."""
    text = strip_reasoning(text[:MAX_CHARS])
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    attempts = 0
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1 and attempts < MAX_ATTEMPTS:
            attempts += 1
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(value, dict):
                return value
            start = candidate.find("{", start + 1)
    return None
