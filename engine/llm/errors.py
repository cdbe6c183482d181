"""LLM failures, worded for players: what went wrong, never a key, a response body or a trace.

`retryable` tells a front end whether trying the same call again may help.
"""

from __future__ import annotations

from engine.errors import EngineError


class LLMError(EngineError):
    """The model could not give a usable answer."""

    retryable: bool = True


class LLMUnavailable(LLMError):
    """The endpoint failed: connection errors, 5xx, or 429 after the client's retries."""


class LLMTimeout(LLMError):
    """The call ran past its deadline or the server stopped sending (read timeout)."""


class LLMBadOutput(LLMError):
    """The reply was empty, malformed or not the JSON we asked for."""


class LLMRefused(LLMError):
    """The endpoint rejected the request itself (API key, unknown model, bad parameters):
    the configuration must change before a retry can help."""

    retryable = False
