"""The LLM gateway (design §5): one AsyncOpenAI client for any OpenAI-compatible endpoint.

Every call has connect/read timeouts and retries (the openai client's own, for 429, 5xx and
connection errors, honouring Retry-After), plus a hard wall-clock deadline: a provider that
sends keep-alives can defeat the read timeout. Streams are always closed, also when the
consumer stops early or is cancelled. A semaphore caps calls in flight across all channels.
The call's purpose ("scene", "director", ...) is sent as the `X-Dreamwalkers-Purpose` header
(providers ignore it; test doubles script replies by it) and logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from engine.llm.config import LLMConfig
from engine.llm.errors import LLMBadOutput, LLMError, LLMRefused, LLMTimeout, LLMUnavailable
from engine.llm.jsonout import extract_json_object
from engine.llm.tokens import estimate_messages_tokens

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)
Messages = Sequence[dict[str, str]]
PURPOSE_HEADER = "X-Dreamwalkers-Purpose"
JSON_ONLY = (
    "Reply with one JSON object only, no prose and no code fences. It must match this JSON "
    "schema:\n"
)


@functools.cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    return schema.model_json_schema()


def _translate(error: Exception, model: str) -> LLMError:
    """Map client errors to messages players can read."""
    if isinstance(error, LLMError):
        return error
    if isinstance(error, TimeoutError | openai.APITimeoutError):
        return LLMTimeout("The language model took too long to answer.")
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMRefused("The LLM endpoint rejected the API key (check OPENAI_API_KEY).")
    if isinstance(error, openai.NotFoundError):
        return LLMRefused(f"The LLM endpoint does not know the model {model!r}.")
    if isinstance(error, openai.RateLimitError):
        return LLMUnavailable("The language model is rate-limited (HTTP 429); try again soon.")
    if isinstance(error, openai.APIStatusError):
        if error.status_code >= 500:
            return LLMUnavailable(f"The language model's server failed (HTTP {error.status_code}).")
        return LLMRefused(f"The LLM endpoint refused the request (HTTP {error.status_code}).")
    if isinstance(error, openai.APIConnectionError):
        return LLMUnavailable("The language model's server cannot be reached.")
    return LLMUnavailable(f"The language model call failed ({type(error).__name__}).")


class LLMGateway:
    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key or "not-needed",
            base_url=config.base_url or None,
            timeout=openai.Timeout(
                config.read_timeout,
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.connect_timeout,
            ),
            max_retries=config.max_retries,
        )
        self._slots = asyncio.Semaphore(config.concurrency)

    async def close(self) -> None:
        await self.client.close()

    def _params(self, messages: Messages, model: str, purpose: str) -> dict[str, Any]:
        return {
            "model": model,
            "messages": list(messages),
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "extra_headers": {PURPOSE_HEADER: purpose},
        }

    async def stream_text(
        self, messages: Messages, *, purpose: str, model: str | None = None
    ) -> AsyncGenerator[str, None]:
        """Text deltas of a streamed chat completion."""
        name = model or self.config.model
        started = time.perf_counter()
        received = 0
        async with self._slots:
            try:
                async with asyncio.timeout(self.config.deadline):
                    stream = await self.client.chat.completions.create(
                        **self._params(messages, name, purpose), stream=True
                    )
                    try:
                        async for chunk in stream:
                            if not chunk.choices:
                                continue
                            delta = chunk.choices[0].delta.content
                            if delta:
                                received += len(delta)
                                yield delta
                    finally:
                        await stream.close()
            except Exception as error:
                raise _translate(error, name) from error
            finally:
                self._log(purpose, name, messages, started, received)
        if received == 0:
            raise LLMBadOutput("The language model returned an empty reply.")

    async def complete_text(
        self, messages: Messages, *, purpose: str, model: str | None = None, **extra: Any
    ) -> str:
        name = model or self.config.model
        started = time.perf_counter()
        text = ""
        async with self._slots:
            try:
                async with asyncio.timeout(self.config.deadline):
                    reply = await self.client.chat.completions.create(
                        **self._params(messages, name, purpose), **extra
                    )
            except Exception as error:
                self._log(purpose, name, messages, started, 0)
                raise _translate(error, name) from error
        if reply.choices:
            text = reply.choices[0].message.content or ""
        self._log(purpose, name, messages, started, len(text))
        if not text.strip():
            raise LLMBadOutput("The language model returned an empty reply.")
        return text

    async def complete_json(
        self, messages: Messages, schema: type[Model], *, purpose: str, model: str | None = None
    ) -> Model:
        """A reply parsed into `schema`, requested in the configured JSON mode and extracted
        tolerantly (code fences and surrounding prose are ignored)."""
        name = model or self.config.director_model or self.config.model
        mode = self.config.json_mode
        extra: dict[str, Any] = {}
        prompt = list(messages)
        if mode == "json_schema":
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": _json_schema(schema),
                    "strict": False,
                },
            }
        elif mode == "json_object":
            extra["response_format"] = {"type": "json_object"}
        else:
            instruction = JSON_ONLY + str(_json_schema(schema))
            prompt.append({"role": "system", "content": instruction})
        text = await self.complete_text(prompt, purpose=purpose, model=name, **extra)
        data = extract_json_object(text)
        if data is None:
            raise LLMBadOutput("The language model's answer was not a JSON object.")
        try:
            return schema.model_validate(data)
        except ValidationError as error:
            raise LLMBadOutput(
                f"The language model's JSON did not fit ({error.error_count()} problems)."
            ) from None

    def _log(
        self, purpose: str, model: str, messages: Messages, started: float, received: int
    ) -> None:
        log.info(
            "llm %s model=%s prompt~%d tokens reply=%d chars in %.2fs",
            purpose,
            model,
            estimate_messages_tokens(messages),
            received,
            time.perf_counter() - started,
        )
