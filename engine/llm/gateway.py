"""The LLM gateway (design §5): one AsyncOpenAI client for any OpenAI-compatible endpoint.

Requests go through the client's documented low-level `post`, so its auth, base URL,
timeouts, retries and error classes apply, but the request body is sent as built here (no
per-call transform against the SDK's TypedDicts) and the reply is read raw: the SSE lines of a
stream are decoded by `engine.llm.sse` and each chunk parsed with `json.loads`, without a
pydantic model per chunk (this halves the CPU cost of a turn's two calls).

Every call has connect/read timeouts and retries (the openai client's own, for 429, 5xx and
connection errors, honouring Retry-After), plus a hard wall-clock deadline: a provider that
sends keep-alives can defeat the read timeout. The deadline starts when the call gets one of
the `concurrency` slots (a semaphore shared by all channels) and covers every wait on the
endpoint, including each chunk of a stream.

For streams the deadline is applied to each wait on the endpoint (`asyncio.timeout_at` with
the call's absolute end time), never across a `yield`: a timeout context spanning a `yield`
would cancel the *consumer's* code (for instance a Discord edit) with a bare CancelledError
instead of ending the call with `LLMTimeout`. Streams are always closed (the raw response, in
a `finally`), also when the consumer stops early or is cancelled; consumers should still
iterate inside `contextlib.aclosing(...)` so the close happens at once rather than when the
generator is garbage collected.

The call's purpose ("scene", "director", "summary", ...) is sent as the
`X-Dreamwalkers-Purpose` header (providers ignore it; test doubles script replies by it) and
logged with the model, the duration, the prompt's size and the outcome. The API
key is never logged nor put in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import httpx2
import openai
from pydantic import BaseModel, ValidationError

from engine.llm.config import LLMConfig
from engine.llm.errors import LLMBadOutput, LLMError, LLMRefused, LLMTimeout, LLMUnavailable
from engine.llm.jsonout import extract_json_object
from engine.llm.sse import SSEDecoder

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)
Messages = Sequence[Mapping[str, str]]
PURPOSE_HEADER = "X-Dreamwalkers-Purpose"
PLACEHOLDER_API_KEY = "not-needed"  # local servers (llama.cpp, Ollama, LM Studio) need none
EMPTY_REPLY = "The language model returned an empty reply."
TOO_LONG = "The language model took too long to answer."
UNREADABLE = "The language model's reply could not be read."
MID_REPLY_ERROR = "The language model's server reported an error mid-reply."
CANNOT_REACH = "The language model's server cannot be reached."
DONE = b"[DONE]"
# After `[DONE]` the rest of the body (the chunked-encoding end) is read for this long at most,
# so that the HTTP/1.1 connection can be reused rather than closed.
DRAIN_SECONDS = 0.1
JSON_ONLY = (
    "Reply with one JSON object only: no prose before or after it and no code fences. "
    "It must match this JSON schema:\n"
)


@functools.cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    return schema.model_json_schema()


@functools.cache
def _json_instruction(schema: type[BaseModel]) -> str:
    return JSON_ONLY + json.dumps(_json_schema(schema), separators=(",", ":"))


def _response_format(mode: str, schema: type[BaseModel]) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__[:64],
                "schema": _json_schema(schema),
                "strict": False,
            },
        }
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _connection_failed(error: BaseException) -> bool:
    """Whether the connection itself failed (refused, no route, DNS, the server hanging up):
    the aiohttp transport reports all of that as a connect *timeout*, so the cause is
    looked at."""
    cause: BaseException | None = error
    for _ in range(8):  # a chain of causes is short; this only bounds a cycle
        if cause is None or isinstance(cause, TimeoutError):
            return False
        if isinstance(cause, OSError | aiohttp.ClientConnectionError):
            return True
        cause = cause.__cause__
    return False


def _translate(error: BaseException, model: str, *, json_requested: bool = False) -> LLMError:
    """Map client errors to messages players can read (no key, no response body)."""
    if isinstance(error, LLMError):
        return error
    if _connection_failed(error):
        return LLMUnavailable(CANNOT_REACH)
    if isinstance(error, TimeoutError | openai.APITimeoutError | httpx2.TimeoutException):
        return LLMTimeout(TOO_LONG)
    if isinstance(error, openai.AuthenticationError):
        return LLMRefused("The LLM endpoint rejected the API key (check OPENAI_API_KEY).")
    if isinstance(error, openai.PermissionDeniedError):
        return LLMRefused(
            f"The LLM endpoint denied access to the model {model!r} (HTTP 403; check the "
            "API key's permissions)."
        )
    if isinstance(error, openai.NotFoundError):
        return LLMRefused(
            f"The LLM endpoint says the model {model!r} was not found (HTTP 404; check "
            "LLM_MODEL and OPENAI_BASE_URL)."
        )
    if isinstance(error, openai.RateLimitError):
        return LLMUnavailable("The language model is rate-limited (HTTP 429); try again soon.")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status >= 500:
            return LLMUnavailable(f"The language model's server failed (HTTP {status}).")
        hint = (
            " If the server does not support structured output, set LLM_JSON_MODE to "
            "json_object or text."
            if json_requested and status in (400, 422)
            else ""
        )
        return LLMRefused(f"The LLM endpoint refused the request (HTTP {status}).{hint}")
    # The client raises APIConnectionError for the request; a stream being read raises the
    # transport's own errors.
    if isinstance(error, openai.APIConnectionError | httpx2.RequestError):
        return LLMUnavailable(CANNOT_REACH)
    if isinstance(error, openai.APIError):
        return LLMUnavailable(MID_REPLY_ERROR)
    if isinstance(error, ValueError):  # undecodable data in the reply
        return LLMBadOutput(UNREADABLE)
    return LLMUnavailable(f"The language model call failed ({type(error).__name__}).")


def _delta(event: bytes) -> str:
    """The text one stream chunk adds ("" for chunks without choices, e.g. usage, and for
    role-only or finishing deltas). An `error` object in the stream is `LLMUnavailable`,
    anything unreadable `LLMBadOutput`."""
    try:
        chunk = json.loads(event)
    except ValueError:
        raise LLMBadOutput(UNREADABLE) from None
    if not isinstance(chunk, dict):
        raise LLMBadOutput(UNREADABLE)
    if chunk.get("error"):
        raise LLMUnavailable(MID_REPLY_ERROR)
    choices = chunk.get("choices")
    if not choices:
        return ""
    try:
        content = (choices[0].get("delta") or {}).get("content")
    except (AttributeError, LookupError, TypeError):
        raise LLMBadOutput(UNREADABLE) from None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise LLMBadOutput(UNREADABLE)
    return content


def _message_text(body: bytes) -> str:
    """The reply's text in a (non-streamed) chat completion; "" when it has no choices or no
    content. A body that is not JSON is `LLMBadOutput`."""
    try:
        reply = json.loads(body)
    except ValueError:
        raise LLMBadOutput(UNREADABLE) from None
    try:
        content = reply["choices"][0]["message"]["content"]
    except (LookupError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


class LLMGateway:
    """All LLM calls of the process. Create one, share it, `await close()` at shutdown."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key or PLACEHOLDER_API_KEY,
            base_url=config.base_url or None,
            timeout=openai.Timeout(
                config.read_timeout,
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.connect_timeout,
            ),
            max_retries=config.max_retries,
            http_client=openai.DefaultAioHttpClient(),
        )
        self._slots = asyncio.Semaphore(config.concurrency)

    async def close(self) -> None:
        await self.client.close()

    def _body(self, messages: Messages, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "messages": [dict(m) for m in messages],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }

    async def _post(self, body: dict[str, Any], purpose: str, *, stream: bool) -> httpx2.Response:
        """The raw response; errors are the client's (status, connection, timeout)."""
        return await self.client.post(
            "/chat/completions",
            cast_to=httpx2.Response,
            body=body,
            options={"headers": {PURPOSE_HEADER: purpose}, "security": {"bearer_auth": True}},
            stream=stream,
        )

    async def stream_text(
        self, messages: Messages, *, purpose: str, model: str | None = None
    ) -> AsyncGenerator[str, None]:
        """Text deltas of a streamed chat completion (an async generator).

        Raises `LLMError` subclasses; an empty reply is `LLMBadOutput` (after any
        whitespace-only deltas were yielded). Iterate inside `contextlib.aclosing(...)`.
        """
        name = model or self.config.model
        body = self._body(messages, name)
        body["stream"] = True
        received = 0
        substantive = False
        outcome = "cancelled"
        async with self._slots:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            ends_at = loop.time() + self.config.deadline
            try:
                try:
                    async with asyncio.timeout_at(ends_at):
                        response = await self._post(body, purpose, stream=True)
                except Exception as error:
                    raise _translate(error, name) from error
                chunks = response.aiter_bytes()
                try:
                    decoder = SSEDecoder()
                    done = False
                    while not done:
                        if loop.time() >= ends_at:
                            raise LLMTimeout(TOO_LONG)
                        try:
                            async with asyncio.timeout_at(ends_at):
                                chunk = await anext(chunks)
                        except StopAsyncIteration:
                            events, done = decoder.finish(), True
                        except Exception as error:
                            raise _translate(error, name) from error
                        else:
                            events = decoder.feed(chunk)
                        for event in events:
                            if loop.time() >= ends_at:  # also when the data is already buffered
                                raise LLMTimeout(TOO_LONG)
                            if event.startswith(DONE):
                                await self._drain(chunks, ends_at)
                                done = True
                                break
                            delta = _delta(event)
                            if delta:
                                received += len(delta)
                                substantive = substantive or not delta.isspace()
                                yield delta
                finally:
                    await chunks.aclose()
                    await response.aclose()
                if not substantive:
                    raise LLMBadOutput(EMPTY_REPLY)
                outcome = "ok"
            except LLMError as error:
                outcome = type(error).__name__
                raise
            except GeneratorExit:
                outcome = "closed early"
                raise
            finally:
                self._log(purpose, name, messages, started, received, outcome)

    @staticmethod
    async def _drain(chunks: AsyncIterator[bytes], ends_at: float) -> None:
        """Read what follows `[DONE]` (briefly): a response read to its end leaves its
        connection to the pool; one closed early closes the connection."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout_at(min(ends_at, loop.time() + DRAIN_SECONDS)):
                async for _ in chunks:
                    pass

    async def complete_text(
        self, messages: Messages, *, purpose: str, model: str | None = None
    ) -> str:
        """The whole reply of a (non-streamed) chat completion."""
        return await self._complete(messages, purpose, model or self.config.model, None)

    async def complete_json(
        self, messages: Messages, schema: type[Model], *, purpose: str, model: str | None = None
    ) -> Model:
        """A reply parsed into `schema`, requested in the configured JSON mode and extracted
        tolerantly (code fences and surrounding prose are ignored). The model is `model`,
        else the director model, else the main model. Unusable output is `LLMBadOutput`."""
        name = model or self.config.director
        response_format = _response_format(self.config.json_mode, schema)
        prompt: list[Mapping[str, str]] = list(messages)
        if response_format is None:
            prompt.append({"role": "system", "content": _json_instruction(schema)})
        text = await self._complete(prompt, purpose, name, response_format)
        data = extract_json_object(text)
        if data is None:
            raise LLMBadOutput("The language model's answer was not a JSON object.")
        try:
            return schema.model_validate(data)
        except ValidationError as error:
            count = error.error_count()
            raise LLMBadOutput(
                f"The language model's JSON did not fit ({count} problem{'s' * (count != 1)})."
            ) from None

    async def _complete(
        self,
        messages: Messages,
        purpose: str,
        name: str,
        response_format: dict[str, Any] | None,
    ) -> str:
        body = self._body(messages, name)
        if response_format is not None:
            body["response_format"] = response_format
        text = ""
        outcome = "cancelled"
        async with self._slots:
            started = time.perf_counter()
            try:
                try:
                    async with asyncio.timeout_at(self._deadline()):
                        response = await self._post(body, purpose, stream=False)
                except Exception as error:
                    raise _translate(
                        error, name, json_requested=response_format is not None
                    ) from error
                try:
                    text = _message_text(response.content)  # read in full by `post`
                finally:
                    await response.aclose()
                if not text.strip():
                    raise LLMBadOutput(EMPTY_REPLY)
                outcome = "ok"
            except LLMError as error:
                outcome = type(error).__name__
                raise
            finally:
                self._log(purpose, name, messages, started, len(text), outcome)
        return text

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.config.deadline

    def _log(
        self,
        purpose: str,
        model: str,
        messages: Messages,
        started: float,
        received: int,
        outcome: str,
    ) -> None:
        # Characters and the plain four-per-token rule: running the full estimate over a
        # 7,000-token prompt again for a log line cost 5% of a turn's CPU (the turn's event
        # log has the context's estimate).
        chars = sum(len(m.get("content") or "") for m in messages)
        log.info(
            "llm %s model=%s prompt=%d chars (~%d tokens) reply=%d chars in %.2fs: %s",
            purpose,
            model,
            chars,
            chars // 4,
            received,
            time.perf_counter() - started,
            outcome,
        )
