"""An OpenAI-compatible server for tests and benchmarks, so the real `openai` client is exercised.

In tests, use the `llm_server` fixture (an `LLMDouble`, already started, stopped after the test):

    llm_server.reply("scene", "Narrator: Rain.\\nMira: Hello.")   # the next scene call
    llm_server.reply("director", json.dumps({...}))                # the next director call
    llm_server.set_default("scene", lambda body: "...")            # computed from the request
    llm_server.fail("scene", "500")                                # once; times=3 for three
    llm_server.fail("scene", "429", retry_after=0.1)               # with Retry-After
    llm_server.fail("scene", "stall", after_chunks=2)              # also keepalive, malformed,
                                                                   # empty, long, everyone, and
                                                                   # any HTTP status 400-599
    llm_server.latency = 0.2                                       # seconds added per call
    llm_server.calls("scene")[-1].prompt                           # what the engine sent
    llm_server.max_in_flight, llm_server.streams_aborted           # server-side counters

Replies are chosen by the `X-Dreamwalkers-Purpose` header the gateway sends (requests without
it have the purpose "default"). `LLMDouble(api_key="k")` answers 401 to other keys;
`LLMDouble(models={"m"})` answers 404 to other models. `base_url` is
`http://127.0.0.1:PORT/v1`.

Outside pytest (benchmarks, subprocess tests):

    server = await LLMDouble(latency=0.2).start()   # or: async with LLMDouble() as server:
    ...
    await server.stop()

or `python -m tests.llm_double --port 8765 --latency-ms 100`, which prints
`listening on http://127.0.0.1:PORT/v1` and serves the default replies until killed.

Default replies: a narrator line for "scene" (and calls of unknown purposes), a small JSON
state change for "director", and a one-paragraph story so far, without speaker labels, for
"summary" (the chapter written every 16 turns).
"""

from tests.llm_double.server import (
    DEFAULT_DIRECTOR,
    DEFAULT_SCENE,
    DEFAULT_SUMMARY,
    FAULT_KINDS,
    PURPOSE_HEADER,
    Fault,
    LLMDouble,
    Recorded,
)

__all__ = [
    "DEFAULT_DIRECTOR",
    "DEFAULT_SCENE",
    "DEFAULT_SUMMARY",
    "FAULT_KINDS",
    "PURPOSE_HEADER",
    "Fault",
    "LLMDouble",
    "Recorded",
]
