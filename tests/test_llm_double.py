"""The LLM double itself: the real openai client and raw HTTP see an OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.llm_double import DEFAULT_SCENE, DEFAULT_SUMMARY, PURPOSE_HEADER, Fault, LLMDouble
from tests.llm_double.__main__ import parse_fault

ROOT = Path(__file__).resolve().parent.parent
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there."}]


def client(server: LLMDouble, **options: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key="k",
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )


async def test_models_and_completion_shapes(llm_server: LLMDouble) -> None:
    llm_server.reply("scene", "Narrator: Fog.")
    api = client(llm_server)
    try:
        models = await api.models.list()
        assert [m.id for m in models.data] == ["double"]
        reply = await api.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={PURPOSE_HEADER: "scene"}
        )
        assert reply.object == "chat.completion"
        assert reply.choices[0].message.content == "Narrator: Fog."
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None and reply.usage.total_tokens > 0
        # Without the header: the "default" purpose, answered with the default scene.
        plain = await api.chat.completions.create(model="m", messages=MESSAGES)
        assert plain.choices[0].message.content == DEFAULT_SCENE
    finally:
        await api.close()
    assert [c.purpose for c in llm_server.calls()] == ["scene", "default"]
    assert llm_server.call_count == 2


async def test_sse_stream_is_in_the_real_chunk_shape(llm_server: LLMDouble) -> None:
    llm_server.reply("scene", "Narrator: The tide comes in under the pier.")
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{llm_server.base_url}/chat/completions",
            json=body,
            headers={PURPOSE_HEADER: "scene"},
        ) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    events = [part for part in raw.split("\n\n") if part]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event[6:]) for event in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Narrator: The tide comes in under the pier."
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) > 2
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_replies_queue_then_default_then_callable(llm_server: LLMDouble) -> None:
    llm_server.reply("summary", "first", "second")
    llm_server.set_default("summary", lambda body: "echo: " + body["messages"][-1]["content"])
    api = client(llm_server)
    try:
        texts = []
        for _ in range(3):
            reply = await api.chat.completions.create(
                model="m", messages=MESSAGES, extra_headers={PURPOSE_HEADER: "summary"}
            )
            texts.append(reply.choices[0].message.content)
    finally:
        await api.close()
    assert texts == ["first", "second", "echo: Hello there."]


async def test_summary_calls_get_a_story_so_far_by_default(llm_server: LLMDouble) -> None:
    """The chapter written every 16 turns reads as prose, not as a scene's labelled lines."""
    api = client(llm_server)
    try:
        reply = await api.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={PURPOSE_HEADER: "summary"}
        )
    finally:
        await api.close()
    text = reply.choices[0].message.content
    assert text == DEFAULT_SUMMARY
    assert "\n" not in text and not text.startswith("Narrator:")
    assert ":" not in text  # no `Speaker:` label anywhere


async def test_faults_are_per_purpose_and_counted(llm_server: LLMDouble) -> None:
    llm_server.fail("scene", "500", times=2, skip=1)
    api = client(llm_server)
    try:

        async def call(purpose: str) -> int:
            try:
                await api.chat.completions.create(
                    model="m", messages=MESSAGES, extra_headers={PURPOSE_HEADER: purpose}
                )
            except openai.APIStatusError as error:
                return error.status_code
            return 200

        assert [await call("director")] == [200]  # another purpose is untouched
        assert [await call("scene") for _ in range(4)] == [200, 500, 500, 200]
    finally:
        await api.close()


async def test_rate_limit_carries_retry_after_and_an_openai_error(llm_server: LLMDouble) -> None:
    llm_server.fail("scene", "429", retry_after=7)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{llm_server.base_url}/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            headers={PURPOSE_HEADER: "scene"},
        ) as response,
    ):
        assert response.status == 429
        assert float(response.headers["Retry-After"]) == 7
        error = (await response.json())["error"]
    assert error["code"] == "rate_limit_exceeded" and error["message"]


def test_unknown_faults_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("timeout")
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("200")
    assert Fault("503").status == 503


async def test_response_format_and_model_are_recorded(llm_server: LLMDouble) -> None:
    api = client(llm_server)
    try:
        await api.chat.completions.create(
            model="json-model",
            messages=MESSAGES,
            response_format={"type": "json_object"},
            extra_headers={PURPOSE_HEADER: "director"},
        )
    finally:
        await api.close()
    [call] = llm_server.calls("director")
    assert call.model == "json-model"
    assert call.response_format == {"type": "json_object"}
    assert call.stream is False
    assert call.prompt == "Hello there."


async def test_runs_as_a_process_until_killed() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.llm_double",
        "--port",
        "0",
        "--latency-ms",
        "10",
        "--scene",
        "Narrator: From the process.",
        "--fault",
        "scene:500:skip=1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[-1]
        api = openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0)
        try:
            stream = await api.chat.completions.create(
                model="m",
                messages=MESSAGES,
                stream=True,
                extra_headers={PURPOSE_HEADER: "scene"},
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            with pytest.raises(openai.InternalServerError):  # --fault: the second call fails
                await api.chat.completions.create(
                    model="m", messages=MESSAGES, extra_headers={PURPOSE_HEADER: "scene"}
                )
            chapter = await api.chat.completions.create(  # no --summary: the default prose
                model="m", messages=MESSAGES, extra_headers={PURPOSE_HEADER: "summary"}
            )
        finally:
            await api.close()
        assert "".join(parts) == "Narrator: From the process."
        assert chapter.choices[0].message.content == DEFAULT_SUMMARY
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


def test_fault_options_on_the_command_line_are_checked() -> None:
    assert parse_fault("director:malformed:times=2") == ("director", Fault("malformed", times=2))
    assert parse_fault("scene:429:retry_after=1.5")[1].retry_after == 1.5
    for bad in ("scene", "scene:teapot", "scene:500:often=3", ":500"):
        with pytest.raises(ValueError):
            parse_fault(bad)
