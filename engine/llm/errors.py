"""LLM failures, worded for players: what went wrong, never a key or a stack trace."""

from __future__ import annotations

from engine.errors import EngineError


class LLMError(EngineError):
    """The model could not give a usable answer."""


class LLMUnavailable(LLMError):
    """The endpoint failed (connection, 5xx, or rate limits after retries)."""


class LLMTimeout(LLMError):
    """The call ran past its deadline or the server stopped sending."""


class LLMBadOutput(LLMError):
    """The reply was empty, malformed or not the JSON we asked for."""


class LLMRefused(LLMError):
    """The endpoint rejected the request itself (key, model name, bad parameters)."""
