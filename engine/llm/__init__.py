"""The LLM gateway: any OpenAI-compatible endpoint, streaming, JSON modes, deadlines."""

from engine.llm.config import LLMConfig
from engine.llm.errors import LLMBadOutput, LLMError, LLMRefused, LLMTimeout, LLMUnavailable
from engine.llm.gateway import LLMGateway

__all__ = [
    "LLMBadOutput",
    "LLMConfig",
    "LLMError",
    "LLMGateway",
    "LLMRefused",
    "LLMTimeout",
    "LLMUnavailable",
]
