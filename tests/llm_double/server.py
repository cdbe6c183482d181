"""An OpenAI-compatible chat completions server on loopback, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PURPOSE_HEADER = "X-Dreamwalkers-Purpose"
DEFAULT_SCENE = "Narrator: The wind shifts, and the story waits for what you do next."
DEFAULT_DIRECTOR = json.dumps({"summary": "The scene moved on a little.", "importance": 0.3})

Reply = str | Callable[[dict[str, Any]], str]


@dataclass
class Fault:
    """One way to fail: `kind` is 429, 500, stall, malformed, empty, long or everyone."""

    kind: str
    times: int = 1
    retry_after: float = 0.0
    after_chunks: int = 1  # for a stalled stream: how many chunks before it stalls
    skip: int = 0  # let this many calls through before failing


@dataclass
class Recorded:
    purpose: str
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    response_format: dict[str, Any] | None
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.messages)


@dataclass
class LLMDouble:
    """Scripted replies per purpose (the X-Dreamwalkers-Purpose header), faults, latency."""

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 0.0
    chunk_size: int = 12
    chunk_delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    replies: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    defaults: dict[str, Reply] = field(
        default_factory=lambda: {"scene": DEFAULT_SCENE, "director": DEFAULT_DIRECTOR}
    )
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    in_flight: int = 0
    max_in_flight: int = 0
    streams_finished: int = 0
    streams_aborted: int = 0
    _runner: web.AppRunner | None = None
    _stalls: list[asyncio.Event] = field(default_factory=list)

    # --- scripting --------------------------------------------------------------------

    def reply(self, purpose: str, *replies: Reply) -> None:
        """Queue replies for the next calls of `purpose` (then the default is used)."""
        self.replies[purpose].extend(replies)

    def set_default(self, purpose: str, reply: Reply) -> None:
        self.defaults[purpose] = reply

    def fail(self, purpose: str, kind: str, **options: Any) -> None:
        """Make the next call(s) of `purpose` fail; see `Fault` for kinds and options."""
        self.faults[purpose].append(Fault(kind, **options))

    def calls(self, purpose: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if purpose is None or r.purpose == purpose]

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
        return self

    async def stop(self) -> None:
        for stall in self._stalls:
            stall.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- HTTP -------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "double", "object": "model"}]})

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
        body = await request.json()
        purpose = request.headers.get(PURPOSE_HEADER, "default")
        self.requests.append(
            Recorded(
                purpose,
                body.get("model", ""),
                body.get("messages", []),
                bool(body.get("stream")),
                body.get("response_format"),
                body,
            )
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            fault = self._next_fault(purpose)
            if fault is not None and fault.kind in ("429", "500"):
                return self._error(fault)
            text = self._text_for(purpose, body, fault)
            if fault is not None and fault.kind == "stall" and not body.get("stream"):
                await self._stall()
            if body.get("stream"):
                return await self._stream(request, body, text, fault)
            return web.json_response(self._completion(body, text))
        finally:
            self.in_flight -= 1

    def _text_for(self, purpose: str, body: dict[str, Any], fault: Fault | None) -> str:
        kind = fault.kind if fault else None
        if kind == "empty":
            return ""
        if kind == "malformed":
            return '{"summary": "broken", "relationships": [{"source": '
        text = self._next_text(purpose, body)
        if kind == "long":
            return text + " " + ("The rain keeps falling on the long road. " * 120)
        if kind == "everyone":
            return text + " @everyone @here <@123456789012345678>"
        return text

    def _error(self, fault: Fault) -> web.Response:
        status = int(fault.kind)
        headers = {"Retry-After": str(fault.retry_after)} if status == 429 else {}
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        return web.json_response(
            {"error": {"message": f"double says {status}", "type": kind, "code": kind}},
            status=status,
            headers=headers,
        )

    async def _stall(self) -> None:
        stall = asyncio.Event()
        self._stalls.append(stall)
        await stall.wait()

    @staticmethod
    def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "double"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "double"),
        }
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        try:
            for number, piece in enumerate(pieces):
                if fault is not None and fault.kind == "stall" and number >= fault.after_chunks:
                    await self._stall()
                if self.chunk_delay and number:
                    await asyncio.sleep(self.chunk_delay)
                delta = (
                    {"role": "assistant", "content": piece} if number == 0 else {"content": piece}
                )
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await response.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_aborted += 1
            raise
        self.streams_finished += 1
        return response
