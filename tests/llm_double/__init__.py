"""An OpenAI-compatible server for tests, so the real `openai` client is exercised.

Use the `llm_server` fixture (an `LLMDouble`, already started):

    llm_server.reply("scene", "Narrator: Rain.\\nMira: Hello.")   # next scene call
    llm_server.reply("director", json.dumps({...}))                # next director call
    llm_server.set_default("scene", lambda body: "...")            # computed from the request
    llm_server.fail("scene", "500")                                # 429, 500, stall, malformed,
                                                                   # empty, long, everyone
    llm_server.latency = 0.2                                       # seconds per call
    llm_server.calls("scene")[-1].prompt                           # what the engine sent

Replies are chosen by the `X-Dreamwalkers-Purpose` header the gateway sends. Outside pytest:
`python -m tests.llm_double --port 8765 --latency-ms 100` serves the defaults until killed.
"""

from tests.llm_double.server import DEFAULT_DIRECTOR, DEFAULT_SCENE, Fault, LLMDouble, Recorded

__all__ = ["DEFAULT_DIRECTOR", "DEFAULT_SCENE", "Fault", "LLMDouble", "Recorded"]
