"""Engine time per turn (LLM time excluded) and prompt size against history length.

    .venv/bin/python bench/turns.py [--turns 200] [--history 0,1000,10000]

For each history length a fresh database gets that many finished turns, then `--turns` turns
are played through the engine against the LLM double (no added latency). Engine time is
storing the player's input (`submit_input`) plus the turn's own work: reading the input and
the context, building the prompt, parsing, planning and the write transaction with its
commit; the two LLM calls are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import (
    ExternalDouble,
    close,
    machine,
    make_engine,
    peak_rss_mib,
    reference_ms,
    seed_history,
)
from sqlalchemy import select

from engine.db import models as m

CHANNEL, GUILD, PLAYER = 1, 1, 7


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def measure(history: int, turns: int, folder: Path, budget: int) -> dict[str, float]:
    # In its own process, so serving the LLM calls never runs inside the engine's time.
    server = await ExternalDouble.start(latency=0.0)
    engine = await make_engine(folder / f"h{history}.db", server.base_url, context_tokens=budget)
    try:
        await engine.start(GUILD, CHANNEL, "last_map")
        await engine.join(CHANNEL, PLAYER, "bench", character="the_surveyor")
        started = time.perf_counter()
        await seed_history(engine, CHANNEL, history)
        seeding = time.perf_counter() - started
        storing = []
        for n in range(turns):
            before = time.perf_counter()
            await engine.submit_input(CHANNEL, PLAYER, f"I ask about the map, attempt {n}.")
            storing.append((time.perf_counter() - before) * 1000)
            await engine.wait_idle(CHANNEL)
        turn_only = list(engine.turn_engine_ms)
        assert len(turn_only) == len(storing), "every input should make exactly one turn"
        times = [a + b for a, b in zip(turn_only, storing, strict=True)]
        async with engine.db.read() as session:
            tokens = (
                await session.scalars(
                    select(m.Turn.context_tokens)
                    .where(m.Turn.context_tokens.is_not(None))
                    .order_by(m.Turn.id.desc())
                    .limit(turns)
                )
            ).all()
        return {
            "history": history,
            "turns": len(times),
            "p50": statistics.median(times),
            "turn_p50": statistics.median(turn_only),
            "input_p50": statistics.median(storing),
            "p99": percentile(times, 99),
            "max": max(times),
            "prompt_tokens": max(t for t in tokens if t is not None),
            "budget": budget,
            "seed_s": seeding,
        }
    finally:
        await close(engine)
        await server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--history", default="0,1000,10000")
    parser.add_argument("--budget", type=int, default=8_000)
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.turns} turns per history length")
    # Before and after: how fast the machine itself was (see common.reference_ms).
    speed = [reference_ms()]
    print(
        "history  turns  engine p50 ms  p99 ms  max ms  "
        "(input p50 + turn p50)  prompt tokens (budget)"
    )
    with tempfile.TemporaryDirectory() as folder:
        for history in [int(h) for h in args.history.split(",")]:
            r = await measure(history, args.turns, Path(folder), args.budget)
            print(
                f"{r['history']:>7}  {r['turns']:>5}  {r['p50']:>13.2f}  {r['p99']:>6.2f}  "
                f"{r['max']:>6.2f}  ({r['input_p50']:.2f} + {r['turn_p50']:.2f})"
                f"{'':>9}{r['prompt_tokens']:>6} ({r['budget']})"
            )
    speed.append(reference_ms())
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    print(
        f"machine speed: reference workload {speed[0]:.1f} ms before, {speed[1]:.1f} ms after "
        "(common.reference_ms: higher on a slower minute of the machine)"
    )


if __name__ == "__main__":
    asyncio.run(main())
