"""Shared pieces of the benchmarks: an engine on a fresh database, the LLM double, history."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.db import Database  # noqa: E402
from engine.db import models as m  # noqa: E402
from engine.db.migrate import upgrade_to_head  # noqa: E402
from engine.facade import Engine  # noqa: E402
from engine.llm import LLMConfig, LLMGateway  # noqa: E402
from engine.sink import NullSink  # noqa: E402
from engine.stories import StoryCatalog, load_story  # noqa: E402
from engine.usecases.base import EngineOptions  # noqa: E402
from tests.llm_double import LLMDouble  # noqa: E402

STORY = ROOT / "stories" / "last_map.toml"
SCENE = (
    "Narrator: Rain needles the windows while the candles gutter.\n"
    'Odile Marrowgate: "If you came for the map, you are late," she says.\n'
    "Corvin Hale: He turns a page of his ledger and says nothing at all.\n"
)
DIRECTOR = json.dumps(
    {
        "summary": "The guests circle the missing map; Odile grows wary of Corvin.",
        "relationships": [
            {"source": "odile_marrowgate", "target": "corvin_hale", "trust": -0.05},
            {"source": "verity_coyle", "target": "odile_marrowgate", "familiarity": 0.05},
        ],
        "moods": [{"character": "corvin_hale", "mood": "watchful"}],
        "importance": 0.4,
    }
)


def machine() -> str:
    return f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"


def reference_ms(rounds: int = 7) -> float:
    """The median time of a fixed pure-Python workload (string building, a dict, a sort,
    JSON), to tell a slow minute of the machine from a slower engine: this shared machine's
    speed drifts by up to 2.5 times over a day (docs/performance.md)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        rows = {n: f"line {n}: the rain keeps on over the harbour" for n in range(20_000)}
        text = "\n".join(sorted(rows.values(), key=len))
        json.loads(json.dumps({"rows": list(rows.items())}))
        len(text.split())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def start_double(latency: float) -> LLMDouble:
    server = LLMDouble(latency=latency)
    server.set_default("scene", SCENE)
    server.set_default("director", DIRECTOR)
    return await server.start()


class ExternalDouble:
    """The LLM double in its own process, as a real endpoint would be: its CPU time is not
    the engine's."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    @classmethod
    async def start(cls, latency: float) -> ExternalDouble:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.llm_double",
            "--latency-ms",
            str(latency * 1000),
            "--scene",
            SCENE,
            "--director",
            DIRECTOR,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode().strip()
        return cls(process, line.rsplit(" ", 1)[-1])

    def cpu_seconds(self) -> float:
        """The double's CPU time so far (Linux: /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()


def bench_gateway(base_url: str, concurrency: int = 4) -> LLMGateway:
    """A gateway for the LLM double: no retries, a generous deadline."""
    config = LLMConfig(
        base_url=base_url,
        api_key="bench",
        model="bench",
        max_retries=0,
        concurrency=concurrency,
        deadline=120.0,
    )
    return LLMGateway(config)


async def make_engine(
    db_path: Path,
    base_url: str,
    *,
    concurrency: int = 4,
    context_tokens: int = 8_000,
) -> Engine:
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    await upgrade_to_head(db.engine)
    loaded = load_story(STORY)
    gateway = bench_gateway(base_url, concurrency)
    options = EngineOptions(
        collect_window_seconds=0.0, context_tokens=context_tokens, max_waiting_inputs=1_000
    )
    return Engine(db, StoryCatalog({loaded.key: loaded}, []), gateway, NullSink(), options)


async def close(engine: Engine) -> None:
    await engine.close()
    await engine.gateway.close()
    await engine.db.close()


async def seed_history(engine: Engine, channel_id: int, turns: int) -> None:
    """Write `turns` finished turns straight into the database, shaped like real ones:
    two inputs and three posts each, witnessed knowledge, a summary, changes, a log line."""
    if turns == 0:
        return
    rng = random.Random(turns)
    async with engine.db.write() as session:
        pt = await session.scalar(
            select(m.Playthrough).where(m.Playthrough.channel_id == channel_id)
        )
        assert pt is not None
        characters = (
            await session.scalars(select(m.Character).where(m.Character.playthrough_id == pt.id))
        ).all()
        npcs = [c for c in characters if c.role != "player" and c.present]
        base = (await session.scalar(select(m.Turn.number).order_by(m.Turn.number.desc()))) or 0
        turn_rows = [
            {
                "playthrough_id": pt.id,
                "number": base + n + 1,
                "status": "done",
                "context_tokens": 3_000,
            }
            for n in range(turns)
        ]
        await session.execute(insert(m.Turn), turn_rows)
        ids = (
            await session.scalars(
                select(m.Turn.id).where(m.Turn.playthrough_id == pt.id).order_by(m.Turn.number)
            )
        ).all()[-turns:]
        messages, knowledge, memories, changes, events = [], [], [], [], []
        for n, turn_id in enumerate(ids, start=pt.turn_count + 1):
            line = f"Turn {n}: " + " ".join(rng.choice(WORDS) for _ in range(40))
            for kind, speaker in (
                ("player", "Player"),
                ("narrator", "Narrator"),
                ("character", npcs[0].name),
                ("narrator", "Narrator"),
            ):
                messages.append(
                    {
                        "playthrough_id": pt.id,
                        "turn_id": turn_id,
                        "kind": kind,
                        "speaker_name": speaker,
                        "content": line,
                    }
                )
            for npc in npcs:
                knowledge.append(
                    {
                        "playthrough_id": pt.id,
                        "character_id": npc.id,
                        "fact": line[:160],
                        "source": "witnessed",
                        "turn_number": n,
                        "certainty": 1.0,
                    }
                )
            memories.append(
                {
                    "playthrough_id": pt.id,
                    "kind": "summary",
                    "content": line[:200],
                    "importance": 0.5,
                    "turn_from": n,
                    "turn_to": n,
                }
            )
            for _ in range(4):
                changes.append(
                    {
                        "playthrough_id": pt.id,
                        "turn_id": turn_id,
                        "kind": "mood",
                        "target": npcs[0].key,
                        "before": "calm",
                        "after": "wary",
                        "reason": "",
                        "actor": "director",
                    }
                )
            events.append(
                {
                    "playthrough_id": pt.id,
                    "turn_id": turn_id,
                    "kind": "ai_decision",
                    "summary": line[:80],
                    "data": {},
                }
            )
        for model, rows in (
            (m.Message, messages),
            (m.Knowledge, knowledge),
            (m.Memory, memories),
            (m.Change, changes),
            (m.EventLog, events),
        ):
            await session.execute(insert(model), rows)
        pt.turn_count += turns


WORDS = [
    "rain",
    "lantern",
    "map",
    "marsh",
    "ledger",
    "coin",
    "coffin",
    "river",
    "toll",
    "guild",
    "bell",
    "drowned",
    "city",
    "key",
    "whisper",
    "candle",
    "stair",
    "study",
    "hymnal",
    "captain",
    "brandy",
    "debt",
    "secret",
    "map-room",
    "quay",
]
