"""An OpenAI-compatible chat completions server on loopback, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PURPOSE_HEADER = "X-Dreamwalkers-Purpose"
DEFAULT_PURPOSE = "default"  # the purpose of requests without the header
DEFAULT_SCENE = "Narrator: The wind shifts, and the story waits for what you do next."
DEFAULT_DIRECTOR = json.dumps({"summary": "The scene moved on a little.", "importance": 0.3})
# The chapter ("story so far") every 16 turns: a paragraph of prose, no speaker labels.
DEFAULT_SUMMARY = (
    "The players pressed on through the scene, trading a few words and small deeds; nothing "
    "decisive happened yet, and the story waits to see where they go next."
)
MALFORMED = '{"summary": "broken", "relationships": [{"source": '
LONG_FILLER = "The rain keeps falling on the long road. " * 120  # 4,920 characters
MENTIONS = " @everyone @here <@123456789012345678>"
# Faults besides HTTP statuses (any of 400-599, given as a string such as "429").
FAULT_KINDS = ("stall", "keepalive", "malformed", "empty", "long", "everyone")

Reply = str | Callable[[dict[str, Any]], str]


@dataclass
class Fault:
    """One way to fail the next call(s) of a purpose.

    kind:
      "429", "500", any HTTP status 400-599: an OpenAI-style error body (429 always carries
          `Retry-After: retry_after`; other statuses only when retry_after > 0);
      "stall": the reply stops (streamed: after `after_chunks` chunks; not streamed: before
          the headers) and nothing more is sent until the client gives up;
      "keepalive": like stall, but SSE comments (or whitespace, not streamed) keep arriving
          every `interval` seconds, which defeats a client's read timeout;
      "malformed": truncated JSON; "empty": an empty reply; "long": the reply plus filler to
          over 4,000 characters; "everyone": the reply plus @everyone, @here and a user ping.
    times: how many calls fail; skip: let this many calls through first.
    """

    kind: str
    times: int = 1
    retry_after: float = 0.0
    after_chunks: int = 1
    skip: int = 0
    interval: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and not (
            self.kind.isdigit() and 400 <= int(self.kind) <= 599
        ):
            raise ValueError(
                f"unknown fault {self.kind!r}: use {', '.join(FAULT_KINDS)} or an HTTP status"
            )
        if self.times < 1:
            raise ValueError("a fault must happen at least once")

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None


@dataclass
class Recorded:
    """One request as the double received it."""

    purpose: str
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    response_format: dict[str, Any] | None
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.messages)


@dataclass
class LLMDouble:
    """Scripted replies per purpose (the X-Dreamwalkers-Purpose header), faults, latency.

    `api_key`: when set, requests without `Authorization: Bearer <api_key>` get 401.
    `models`: when set, requests for any other model get 404 `model_not_found`.
    """

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 0.0  # seconds added to every call (settable at run time)
    chunk_size: int = 12  # characters per streamed chunk
    chunk_delay: float = 0.0  # seconds between streamed chunks
    requests: list[Recorded] = field(default_factory=list)
    replies: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    defaults: dict[str, Reply] = field(
        default_factory=lambda: {
            "scene": DEFAULT_SCENE,
            "director": DEFAULT_DIRECTOR,
            "summary": DEFAULT_SUMMARY,
        }
    )
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    in_flight: int = 0
    max_in_flight: int = 0
    streams_started: int = 0
    streams_finished: int = 0
    streams_aborted: int = 0  # streamed replies whose client went away before the end
    api_key: str | None = None
    models: set[str] | None = None
    _runner: web.AppRunner | None = None
    _stalls: list[asyncio.Event] = field(default_factory=list)
    _request_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    # --- scripting --------------------------------------------------------------------

    def reply(self, purpose: str, *replies: Reply) -> None:
        """Queue replies for the next calls of `purpose` (then the default is used). A reply
        is a text or a callable that gets the request's JSON body and returns the text."""
        self.replies[purpose].extend(replies)

    def set_default(self, purpose: str, reply: Reply) -> None:
        """The reply of `purpose` once its queue is empty (`"default"`: calls without the
        purpose header; unknown purposes fall back to the default scene reply)."""
        self.defaults[purpose] = reply

    def fail(self, purpose: str, kind: str, **options: Any) -> None:
        """Make the next call(s) of `purpose` fail; see `Fault` for kinds and options."""
        self.faults[purpose].append(Fault(kind, **options))

    def calls(self, purpose: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if purpose is None or r.purpose == purpose]

    async def wait_for_call(self, purpose: str, timeout: float = 30.0) -> Recorded:  # noqa: ASYNC109
        """The first call of `purpose`, once it has arrived (e.g. a turn reached the model)."""
        async with asyncio.timeout(timeout):
            while not self.calls(purpose):
                self._request_arrived.clear()
                await self._request_arrived.wait()
        return self.calls(purpose)[0]

    @property
    def call_count(self) -> int:
        return len(self.requests)

    def reset(self) -> None:
        """Forget scripted replies, faults, records and counters (defaults and latency stay)."""
        self.requests.clear()
        self.replies.clear()
        self.faults.clear()
        self.max_in_flight = self.in_flight
        self.streams_started = self.streams_finished = self.streams_aborted = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> LLMDouble:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        # Cancel a handler when its client goes away, as a real server stops generating.
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._stopping = False
        return self

    async def stop(self) -> None:
        self._stopping = True
        for stall in self._stalls:
            stall.set()
        self._stalls.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LLMDouble:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- HTTP -------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        names = sorted(self.models) if self.models is not None else ["double"]
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "double"} for name in names
        ]
        return web.json_response({"object": "list", "data": data})

    def _next_fault(self, purpose: str) -> Fault | None:
        queue = self.faults.get(purpose)
        if not queue:
            return None
        fault = queue[0]
        if fault.skip > 0:
            fault.skip -= 1
            return None
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    def _next_text(self, purpose: str, body: dict[str, Any]) -> str:
        queue = self.replies.get(purpose)
        reply = queue.popleft() if queue else self.defaults.get(purpose, DEFAULT_SCENE)
        return reply(body) if callable(reply) else reply

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error_response(400, "the request body is not JSON", "invalid_request")
        if not isinstance(body, dict):
            return self._error_response(400, "the request body is not an object", "invalid_request")
        purpose = request.headers.get(PURPOSE_HEADER, DEFAULT_PURPOSE)
        model = str(body.get("model", ""))
        self.requests.append(
            Recorded(
                purpose,
                model,
                body.get("messages", []),
                bool(body.get("stream")),
                body.get("response_format"),
                body,
                dict(request.headers),
            )
        )
        self._request_arrived.set()
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            shown = request.headers.get("Authorization", "")[-4:]
            return self._error_response(
                401, f"Incorrect API key provided: ...{shown}.", "invalid_api_key"
            )
        if self.models is not None and model not in self.models:
            return self._error_response(
                404, f"The model `{model}` does not exist.", "model_not_found"
            )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            fault = self._next_fault(purpose)
            if fault is not None and fault.status is not None:
                return self._fault_response(fault)
            text = self._text_for(purpose, body, fault)
            if body.get("stream"):
                return await self._stream(request, body, text, fault)
            if fault is not None and fault.kind == "stall":
                await self._stall()
            if fault is not None and fault.kind == "keepalive":
                return await self._trickle(request, fault)
            return web.json_response(self._completion(body, text))
        finally:
            self.in_flight -= 1

    def _text_for(self, purpose: str, body: dict[str, Any], fault: Fault | None) -> str:
        kind = fault.kind if fault else None
        if kind == "empty":
            return ""
        if kind == "malformed":
            return MALFORMED
        text = self._next_text(purpose, body)
        if kind == "long":
            return text + " " + LONG_FILLER
        if kind == "everyone":
            return text + MENTIONS
        return text

    def _fault_response(self, fault: Fault) -> web.Response:
        status = fault.status or 500
        headers = {}
        if status == 429 or fault.retry_after > 0:
            headers["Retry-After"] = str(fault.retry_after)
        code = {
            400: "invalid_request",
            401: "invalid_api_key",
            403: "permission_denied",
            404: "model_not_found",
            429: "rate_limit_exceeded",
        }.get(status, "server_error")
        return self._error_response(status, f"double says {status}", code, headers)

    @staticmethod
    def _error_response(
        status: int, message: str, code: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 429:
            kind = "rate_limit_exceeded"
        return web.json_response(
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            status=status,
            headers=headers,
        )

    async def _stall(self) -> None:
        stall = asyncio.Event()
        self._stalls.append(stall)
        try:
            await stall.wait()
        finally:
            with contextlib.suppress(ValueError):
                self._stalls.remove(stall)

    async def _trickle(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        """A non-streamed reply that never comes, with whitespace sent now and then."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        while not self._stopping:
            await response.write(b" ")
            await asyncio.sleep(fault.interval)
        return response

    @staticmethod
    def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
        completion = len(text) // 4 + 1 if text else 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    @classmethod
    def _completion(cls, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "double"),
            "system_fingerprint": "fp_double",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": cls._usage(body, text),
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.streams_started += 1
        base = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "double"),
            "system_fingerprint": "fp_double",
        }
        size = max(1, self.chunk_size)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        stops = fault.kind if fault is not None and fault.kind in ("stall", "keepalive") else None

        async def send(payload: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        try:
            first = {"role": "assistant", "content": ""}
            await send({**base, "choices": [{"index": 0, "delta": first, "finish_reason": None}]})
            for number, piece in enumerate(pieces):
                if stops and fault is not None and number >= fault.after_chunks:
                    break
                if self.chunk_delay and number:
                    await asyncio.sleep(self.chunk_delay)
                delta = {"content": piece}
                await send(
                    {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                )
            if stops == "stall":
                await self._stall()
            elif stops == "keepalive" and fault is not None:
                while not self._stopping:
                    await response.write(b": keep-alive\n\n")
                    await asyncio.sleep(fault.interval)
            await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            options = body.get("stream_options") or {}
            if options.get("include_usage"):
                await send({**base, "choices": [], "usage": self._usage(body, text)})
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.streams_aborted += 1
            raise
        self.streams_finished += 1
        return response
