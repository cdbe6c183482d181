"""CPU time of the LLM gateway per turn (the client side of the two calls of a turn).

    .venv/bin/python bench/llm_client.py [--turns 300] [--tokens 7000]

The LLM double runs in its own process (its CPU time is not ours). Each turn is one streamed
scene call (`stream_text`) and one director call (`complete_json` into `DirectorOutput`)
through a real `LLMGateway`, with a prompt of about `--tokens` estimated tokens (7,000 is
about 28 KB, a full context). Printed: this process's CPU time per turn (user + system,
from getrusage) and wall time per turn, after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import time

from common import WORDS, ExternalDouble, bench_gateway, machine, peak_rss_mib

from engine.llm import LLMGateway, Messages, estimate_messages_tokens
from engine.turns.director_output import DirectorOutput

WARMUP = 20


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def prompt(tokens: int) -> list[dict[str, str]]:
    """A system prompt (story, characters, memories) and a history of user/assistant turns,
    grown until the estimate reaches `tokens`."""
    rng = random.Random(tokens)
    messages = [{"role": "system", "content": prose(rng, 900)}]
    while estimate_messages_tokens(messages) < tokens:
        role = "user" if len(messages) % 2 else "assistant"
        messages.append({"role": role, "content": prose(rng, 120)})
    return messages


async def turn(gateway: LLMGateway, messages: Messages) -> None:
    async with contextlib.aclosing(gateway.stream_text(messages, purpose="scene")) as deltas:
        async for _ in deltas:
            pass
    await gateway.complete_json(messages, DirectorOutput, purpose="director")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=7_000)
    args = parser.parse_args()
    messages = prompt(args.tokens)
    size = sum(len(m["content"]) for m in messages)
    server = await ExternalDouble.start(0.0)
    gateway = bench_gateway(server.base_url)
    try:
        for _ in range(WARMUP):
            await turn(gateway, messages)
        cpu, wall = cpu_seconds(), time.perf_counter()
        for _ in range(args.turns):
            await turn(gateway, messages)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    finally:
        await gateway.close()
        await server.stop()
    print(f"machine: {machine()}")
    print(
        f"{args.turns} turns (scene stream + director JSON), prompt ~"
        f"{estimate_messages_tokens(messages)} tokens ({size / 1024:.1f} KiB) in "
        f"{len(messages)} messages"
    )
    print(f"client CPU per turn: {cpu / args.turns * 1000:.2f} ms")
    print(f"wall time per turn:  {wall / args.turns * 1000:.2f} ms")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
