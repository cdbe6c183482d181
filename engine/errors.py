"""User-facing errors. `str()` of every `EngineError` is safe to show to a player or moderator."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for errors whose text can be shown to users as is."""
