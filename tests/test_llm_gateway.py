"""The LLM gateway through the real openai client against the OpenAI-compatible double."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from engine.llm import LLMBadOutput, LLMGateway, LLMTimeout, LLMUnavailable
from engine.llm.tokens import estimate_tokens
from tests.engine_support import gateway_for
from tests.llm_double import LLMDouble

MESSAGES = [{"role": "user", "content": "Go on."}]


class Verdict(BaseModel):
    summary: str
    importance: float = 0.5


@contextlib.asynccontextmanager
async def gateway(server: LLMDouble, **overrides: object):  # type: ignore[no-untyped-def]
    gw = gateway_for(server.base_url, **overrides)
    try:
        yield gw
    finally:
        await gw.close()


async def collect(gw: LLMGateway, purpose: str = "scene") -> list[str]:
    return [chunk async for chunk in gw.stream_text(MESSAGES, purpose=purpose)]


async def test_stream_delivers_the_reply_in_chunks(llm_server: LLMDouble) -> None:
    llm_server.reply("scene", "Narrator: The bell rings twice over the harbour.")
    async with gateway(llm_server) as gw:
        chunks = await collect(gw)
    assert "".join(chunks) == "Narrator: The bell rings twice over the harbour."
    assert len(chunks) > 1
    assert llm_server.calls("scene")[0].stream is True
    assert llm_server.streams_finished == 1


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "text"])
async def test_json_in_every_mode(llm_server: LLMDouble, mode: str) -> None:
    llm_server.reply("director", json.dumps({"summary": "A deal is struck.", "importance": 0.8}))
    async with gateway(llm_server, json_mode=mode) as gw:
        verdict = await gw.complete_json(MESSAGES, Verdict, purpose="director")
    assert verdict == Verdict(summary="A deal is struck.", importance=0.8)
    sent = llm_server.calls("director")[0]
    assert sent.model == "director-model"
    if mode == "json_schema":
        assert sent.response_format is not None
        assert sent.response_format["type"] == "json_schema"
        assert "summary" in json.dumps(sent.response_format["json_schema"]["schema"])
    elif mode == "json_object":
        assert sent.response_format == {"type": "json_object"}
    else:
        assert sent.response_format is None
        assert "JSON" in sent.prompt


async def test_json_wrapped_in_prose_and_fences_is_extracted(llm_server: LLMDouble) -> None:
    llm_server.reply("director", 'Sure! Here it is:\n```json\n{"summary": "ok"}\n```\nEnjoy.')
    async with gateway(llm_server) as gw:
        verdict = await gw.complete_json(MESSAGES, Verdict, purpose="director")
    assert verdict.summary == "ok"


@pytest.mark.parametrize("fault", ["malformed", "empty"])
async def test_malformed_or_empty_json_is_bad_output(llm_server: LLMDouble, fault: str) -> None:
    llm_server.fail("director", fault)
    async with gateway(llm_server) as gw:
        with pytest.raises(LLMBadOutput):
            await gw.complete_json(MESSAGES, Verdict, purpose="director")


async def test_empty_stream_is_bad_output(llm_server: LLMDouble) -> None:
    llm_server.fail("scene", "empty")
    async with gateway(llm_server) as gw:
        with pytest.raises(LLMBadOutput, match="empty"):
            await collect(gw)


async def test_server_errors_are_retried_then_reported(llm_server: LLMDouble) -> None:
    llm_server.fail("scene", "500")
    llm_server.reply("scene", "Narrator: Back again.")
    async with gateway(llm_server, max_retries=1) as gw:
        assert "".join(await collect(gw)) == "Narrator: Back again."
        llm_server.fail("scene", "500", times=5)
        with pytest.raises(LLMUnavailable, match="HTTP 500"):
            await collect(gw)


async def test_rate_limit_with_retry_after_is_retried(llm_server: LLMDouble) -> None:
    llm_server.fail("scene", "429", retry_after=0.1)
    llm_server.reply("scene", "Narrator: Patience pays.")
    async with gateway(llm_server, max_retries=2) as gw:
        assert "".join(await collect(gw)) == "Narrator: Patience pays."
    assert len(llm_server.calls("scene")) == 2


async def test_stalled_stream_ends_at_the_deadline(llm_server: LLMDouble) -> None:
    llm_server.fail("scene", "stall", after_chunks=1)
    async with gateway(llm_server, deadline=0.5, read_timeout=30.0) as gw:
        with pytest.raises(LLMTimeout):
            await collect(gw)


async def test_cancelled_consumer_closes_the_stream(llm_server: LLMDouble) -> None:
    llm_server.chunk_delay = 0.05
    llm_server.reply("scene", "Narrator: " + "word " * 200)
    async with gateway(llm_server) as gw:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in gw.stream_text(MESSAGES, purpose="scene"):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for _ in range(100):
            if llm_server.streams_aborted:
                break
            await asyncio.sleep(0.02)
    assert llm_server.streams_aborted == 1
    assert llm_server.streams_finished == 0


async def test_concurrency_cap_holds(llm_server: LLMDouble) -> None:
    llm_server.latency = 0.1
    async with gateway(llm_server, concurrency=2) as gw:
        await asyncio.gather(*(gw.complete_text(MESSAGES, purpose="scene") for _ in range(6)))
    assert llm_server.max_in_flight == 2
    assert len(llm_server.calls()) == 6


async def test_per_call_model_override(llm_server: LLMDouble) -> None:
    async with gateway(llm_server) as gw:
        await gw.complete_text(MESSAGES, purpose="scene", model="guild-model")
    assert llm_server.calls("scene")[0].model == "guild-model"


async def test_unreachable_endpoint_is_unavailable() -> None:
    server = await LLMDouble().start()
    url = server.base_url
    await server.stop()
    gw = gateway_for(url)
    try:
        with pytest.raises(LLMUnavailable, match="cannot be reached"):
            await gw.complete_text(MESSAGES, purpose="scene")
    finally:
        await gw.close()


@given(st.text(max_size=400), st.text(max_size=400))
def test_token_estimate_grows_with_text(a: str, b: str) -> None:
    assert estimate_tokens(a + b) >= max(estimate_tokens(a), estimate_tokens(b)) - 1
    assert estimate_tokens(a) >= len(a) / 4
