"""Tolerant extraction of a JSON object from a model's reply."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_CHARS = 200_000
MAX_ATTEMPTS = 50  # bounded work on hostile replies full of braces
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (inside code fences or prose), or None."""
    text = text[:MAX_CHARS]
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        start = candidate.find("{")
        attempts = 0
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
