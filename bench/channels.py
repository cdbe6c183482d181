"""Many channels at once: wall time against the ideal, with a fixed LLM latency.

    .venv/bin/python bench/channels.py [--channels 200] [--turns 5] [--latency-ms 200]

Each channel plays `--turns` turns one after another (each turn is two LLM calls: scene and
director). With unlimited parallelism the ideal wall time is turns x 2 x latency; the engine
runs with LLM_CONCURRENCY = channels, so the cap is not what limits it. With
`--concurrency C` (the default setting is 4) at most C calls are in flight, and the ideal
is the larger of that and all the calls shared among C slots. All channels start
at the same moment and, the double answering every call in exactly the same time, stay in
step: the worst case, every turn's work arriving at once. With `--stagger` the channels'
starts are spread over one turn's LLM time (players do not type in step), and each channel
is measured against the ideal from its own start.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from common import ExternalDouble, close, machine, make_engine, peak_rss_mib

from engine.facade import Engine

GUILD = 1


async def play_channel(engine: Engine, channel: int, turns: int, delay: float) -> float:
    """Play `turns` turns after `delay` seconds; the seconds they took."""
    await asyncio.sleep(delay)
    started = time.perf_counter()
    for n in range(turns):
        await engine.submit_input(channel, channel, f"Move {n} in channel {channel}.")
        await engine.wait_idle(channel)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="start the channels spread over one turn's LLM time instead of all at once",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="LLM_CONCURRENCY for this run (default: one slot per channel, no cap)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval for this run (seconds)",
    )
    args = parser.parse_args()
    if args.switch_interval:
        import sys

        sys.setswitchinterval(args.switch_interval)
    latency = args.latency_ms / 1000
    slots = args.concurrency or args.channels
    if args.stagger and slots < args.channels:
        parser.error("--stagger measures each channel alone; use it without a --concurrency cap")
    server = await ExternalDouble.start(latency)
    with tempfile.TemporaryDirectory() as folder:
        engine = await make_engine(Path(folder) / "channels.db", server, concurrency=slots)
        try:
            channels = range(1_000, 1_000 + args.channels)
            for channel in channels:
                await engine.start(GUILD, channel, "last_map")
                await engine.join(channel, channel, f"player{channel}", character="the_surveyor")
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            spread = 2 * latency if args.stagger else 0.0
            delays = [spread * i / args.channels for i in range(args.channels)]
            plays = [
                play_channel(engine, c, args.turns, d)
                for c, d in zip(channels, delays, strict=True)
            ]
            took = await asyncio.gather(*plays)
            wall = time.perf_counter() - started
            engine_ms = sorted(engine.turn_engine_ms)
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            await close(engine)
            await server.stop()
    calls = args.channels * args.turns * 2
    ideal = max(args.turns * 2 * latency, calls * latency / slots)
    print(f"machine: {machine()}")
    print(
        f"{args.channels} channels x {args.turns} turns, {args.latency_ms:.0f} ms per LLM call "
        "(LLM double in its own process)"
        + (", starts staggered" if args.stagger else "")
        + (f", at most {slots} calls at once" if slots < args.channels else "")
    )
    if args.stagger:
        # Each channel against its own ideal, from its own start.
        share = ideal * len(took) / sum(took)
        print(f"per channel: ideal {ideal:.2f} s, mean {sum(took) / len(took):.2f} s, ", end="")
        print(f"throughput {100 * share:.1f}% of ideal")
    else:
        print(f"wall {wall:.2f} s, ideal {ideal:.2f} s, ", end="")
        print(f"throughput {100 * ideal / wall:.1f}% of ideal")
    p50 = engine_ms[len(engine_ms) // 2]
    p90 = engine_ms[int(len(engine_ms) * 0.9)]
    print(f"engine time per turn under this load: p50 {p50:.1f} ms, p90 {p90:.1f} ms")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    turns = args.channels * args.turns
    print(f"engine process CPU while playing: {cpu:.2f} s ({1000 * cpu / turns:.1f} ms per turn)")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
