"""The LLM gateway: any OpenAI-compatible endpoint, streaming, JSON modes, deadlines.

    gateway = LLMGateway(LLMConfig.from_settings(settings))
    async with contextlib.aclosing(gateway.stream_text(messages, purpose="scene")) as deltas:
        async for text in deltas: ...
    plan = await gateway.complete_json(messages, DirectorOutput, purpose="director")
    await gateway.close()

Failures are `LLMError` subclasses whose text is safe to show to players.
"""

from engine.llm.config import JsonMode, LLMConfig
from engine.llm.errors import LLMBadOutput, LLMError, LLMRefused, LLMTimeout, LLMUnavailable
from engine.llm.gateway import PURPOSE_HEADER, LLMGateway, Messages
from engine.llm.jsonout import REASONING_TAG, extract_json_object, strip_reasoning
from engine.llm.tokens import estimate_messages_tokens, estimate_tokens

__all__ = [
    "PURPOSE_HEADER",
    "REASONING_TAG",
    "JsonMode",
    "LLMBadOutput",
    "LLMConfig",
    "LLMError",
    "LLMGateway",
    "LLMRefused",
    "LLMTimeout",
    "LLMUnavailable",
    "Messages",
    "estimate_messages_tokens",
    "estimate_tokens",
    "extract_json_object",
    "strip_reasoning",
]
