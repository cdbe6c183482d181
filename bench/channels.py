"""Many channels at once: wall time against the ideal, with a fixed LLM latency.

    .venv/bin/python bench/channels.py [--channels 200] [--turns 5] [--latency-ms 200]
        [--stagger] [--concurrency C] [--processes P]

Each channel plays `--turns` turns one after another (each turn is two LLM calls: scene and
director). With unlimited parallelism the ideal wall time is turns x 2 x latency; the engine
runs with LLM_CONCURRENCY = channels, so the cap is not what limits it. With
`--concurrency C` (the default setting is 4) at most C calls are in flight, and the ideal
is the larger of that and all the calls shared among C slots. All channels start
at the same moment and, the double answering every call in exactly the same time, stay in
step: the worst case, every turn's work arriving at once. With `--stagger` the channels'
starts are spread over one turn's LLM time (players do not type in step), and each channel
is measured against the ideal from its own start.

With `--processes P` the channels are split among P engine processes on the same SQLite
file, channel c in process c mod P (as Discord shards split guilds; design §9): a measure
of how the engine scales out. A `--concurrency` cap is then shared out among them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from common import ExternalDouble, close, machine, make_engine, peak_rss_mib

from engine.facade import Engine

GUILD = 1
FIRST_CHANNEL = 1_000


async def play_channel(engine: Engine, channel: int, turns: int, delay: float) -> float:
    """Play `turns` turns after `delay` seconds; the seconds they took."""
    await asyncio.sleep(delay)
    started = time.perf_counter()
    for n in range(turns):
        await engine.submit_input(channel, channel, f"Move {n} in channel {channel}.")
        await engine.wait_idle(channel)
    return time.perf_counter() - started


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def play(engine: Engine, channels: list[int], args: argparse.Namespace) -> dict[str, object]:
    """Play every channel's turns at once; what the parent aggregates."""
    spread = 2 * args.latency_ms / 1000 if args.stagger else 0.0
    cpu, started = cpu_seconds(), time.perf_counter()
    took = await asyncio.gather(
        *(
            play_channel(engine, c, args.turns, spread * (c - FIRST_CHANNEL) / args.channels)
            for c in channels
        )
    )
    return {
        "wall": time.perf_counter() - started,
        "took": took,
        "engine_ms": list(engine.turn_engine_ms),
        "cpu": cpu_seconds() - cpu,
        "rss": peak_rss_mib(),
    }


async def worker(args: argparse.Namespace) -> None:
    """One of `--processes` engine processes: play its share once told to start."""
    slots = max(1, (args.concurrency or args.channels) // args.processes)
    engine = await make_engine(Path(args.db), args.base_url, concurrency=slots)
    mine = [c for c in channels_of(args) if c % args.processes == args.worker]
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the parent's "go", to all at once
        result = await play(engine, mine, args)
    finally:
        await close(engine)
    print(json.dumps(result), flush=True)


def channels_of(args: argparse.Namespace) -> list[int]:
    return list(range(FIRST_CHANNEL, FIRST_CHANNEL + args.channels))


async def run_workers(args: argparse.Namespace, db: Path, base_url: str) -> dict[str, object]:
    """Start the engine processes, release them together, and merge what they report."""
    command = [sys.executable, __file__, *sys.argv[1:], "--db", str(db), "--base-url", base_url]
    workers = [
        await asyncio.create_subprocess_exec(
            *command,
            "--worker",
            str(k),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for k in range(args.processes)
    ]
    for process in workers:
        assert process.stdout is not None
        if (await process.stdout.readline()).strip() != b"ready":
            raise SystemExit("an engine process failed to start")
    started = time.perf_counter()
    for process in workers:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    reports = []
    for process in workers:
        out, _ = await process.communicate()
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "took": [t for r in reports for t in r["took"]],
        "engine_ms": [ms for r in reports for ms in r["engine_ms"]],
        "cpu": sum(r["cpu"] for r in reports),
        "rss": max(r["rss"] for r in reports),
    }


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
        "--processes", type=int, default=1, help="engine processes sharing the channels"
    )
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        await worker(args)
        return
    latency = args.latency_ms / 1000
    slots = args.concurrency or args.channels
    if args.stagger and slots < args.channels:
        parser.error("--stagger measures each channel alone; use it without a --concurrency cap")
    if args.processes < 1 or slots < args.processes:
        parser.error("--processes must be at least 1 and at most the LLM slots")
    server = await ExternalDouble.start(latency)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "channels.db"
        engine = await make_engine(db, server.base_url, concurrency=slots)
        try:
            for channel in channels_of(args):
                await engine.start(GUILD, channel, "last_map")
                await engine.join(channel, channel, f"player{channel}", character="the_surveyor")
            if args.processes == 1:
                result = await play(engine, channels_of(args), args)
        finally:
            await close(engine)
        try:
            if args.processes > 1:
                result = await run_workers(args, db, server.base_url)
            result["double_cpu"] = server.cpu_seconds()
        finally:
            await server.stop()
    report(args, result, slots)


def report(args: argparse.Namespace, result: dict[str, object], slots: int) -> None:
    latency = args.latency_ms / 1000
    took: list[float] = result["took"]  # type: ignore[assignment]
    wall: float = result["wall"]  # type: ignore[assignment]
    engine_ms = sorted(result["engine_ms"])  # type: ignore[call-overload]
    cpu: float = result["cpu"]  # type: ignore[assignment]
    calls = args.channels * args.turns * 2
    ideal = max(args.turns * 2 * latency, calls * latency / slots)
    print(f"machine: {machine()}")
    print(
        f"{args.channels} channels x {args.turns} turns, {args.latency_ms:.0f} ms per LLM call "
        "(LLM double in its own process)"
        + (", starts staggered" if args.stagger else "")
        + (f", at most {slots} calls at once" if slots < args.channels else "")
        + (f", {args.processes} engine processes" if args.processes > 1 else "")
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
    turns = args.channels * args.turns
    where = "engine processes" if args.processes > 1 else "engine process"
    print(f"{where} CPU while playing: {cpu:.2f} s ({1000 * cpu / turns:.1f} ms per turn)")
    print(f"LLM double process CPU, start to end: {result['double_cpu']:.2f} s")
    largest = " (largest process)" if args.processes > 1 else ""
    print(f"peak RSS: {result['rss']:.0f} MiB{largest}")


if __name__ == "__main__":
    asyncio.run(main())
