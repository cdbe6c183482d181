"""Helpers for engine tests: a recording sink and an engine on a temporary database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.db import Database
from engine.db.migrate import upgrade_to_head
from engine.facade import Engine
from engine.llm import LLMConfig, LLMGateway
from engine.results import Post, TurnResult
from engine.stories import StoryCatalog, load_story, parse_story
from engine.usecases.base import EngineOptions

STORIES = Path(__file__).resolve().parents[1] / "stories"
GUILD = 100
CHANNEL = 200
MOD = 900


@dataclass
class RecordingSink:
    """Keeps every event, as a front end would receive them."""

    events: list[tuple[str, object]] = field(default_factory=list)
    results: list[TurnResult] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    streamed: dict[tuple[int, int], str] = field(default_factory=dict)

    async def turn_started(self, channel_id: int, turn_number: int) -> None:
        self.events.append(("turn_started", turn_number))

    async def post_started(self, channel_id: int, index: int, post: Post) -> None:
        self.events.append(("post_started", post.speaker))
        self.streamed[(channel_id, index)] = ""

    async def text_streamed(self, channel_id: int, index: int, delta: str) -> None:
        self.streamed[(channel_id, index)] += delta

    async def turn_finished(self, channel_id: int, result: TurnResult) -> None:
        self.events.append(("turn_finished", result.turn_number))
        self.results.append(result)

    async def notice(self, channel_id: int, text: str, *, retryable: bool = False) -> None:
        self.events.append(("notice", text))
        self.notices.append(text)


async def eventually(condition: Callable[[], object]) -> None:
    """Wait (up to 5 s) for state nothing can be awaited on (the LLM double's counters, a
    sink's streamed text)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def gateway_for(base_url: str, **overrides: object) -> LLMGateway:
    config = dict(
        base_url=base_url,
        api_key="test",
        model="scene-model",
        director_model="director-model",
        json_mode="json_schema",
        temperature=0.7,
        max_tokens=400,
        connect_timeout=2.0,
        read_timeout=5.0,
        deadline=10.0,
        max_retries=0,
        concurrency=8,
    )
    config.update(overrides)
    return LLMGateway(LLMConfig(**config))  # type: ignore[arg-type]


def catalog_of(*texts_or_paths: str | Path) -> StoryCatalog:
    stories = {}
    for item in texts_or_paths:
        loaded = (
            load_story(item) if isinstance(item, Path) else parse_story(item.encode(), "t.toml")
        )
        stories[loaded.key] = loaded
    return StoryCatalog(stories, [])


@contextlib.asynccontextmanager
async def running_engine(
    tmp_path: Path,
    base_url: str,
    catalog: StoryCatalog,
    *,
    sink: RecordingSink | None = None,
    collect_window: float = 0.0,
    db_name: str = "engine.db",
    driver_statements: bool = True,
    **gateway_overrides: object,
) -> AsyncIterator[tuple[Engine, RecordingSink]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / db_name}", driver_statements=driver_statements)
    await upgrade_to_head(db.engine)
    sink = sink or RecordingSink()
    gateway = gateway_for(base_url, **gateway_overrides)
    engine = Engine(
        db, catalog, gateway, sink, EngineOptions(collect_window_seconds=collect_window)
    )
    try:
        yield engine, sink
    finally:
        await engine.close(cancel_running=True)
        await gateway.close()
        await db.close()


TEST_STORY = """
[story]
key = "inn"
title = "The Drowned Inn"
summary = "A storm traps travellers in an inn above a flooded cellar."
opening = "Rain hammers the shutters of the Drowned Inn."
start_location = "hall"
time_of_day = "night"
weather = "storm"
tone = "tense"

[[locations]]
key = "hall"
name = "Common Hall"
description = "Low beams, a smoking fire."

[[locations]]
key = "cellar"
name = "Flooded Cellar"
parent = "hall"

[[characters]]
key = "mira"
name = "Mira"
role = "main"
avatar = "https://example.invalid/mira.png"
personality = "Sharp innkeeper."
location = "hall"
knows = ["The cellar door key hangs behind the bar."]

[[characters]]
key = "bram"
name = "Bram"
role = "support"
location = "cellar"
knows = ["Something moves in the floodwater."]

[[characters]]
key = "vesna"
name = "Vesna"
role = "antagonist"
location = "hall"

[[player_characters]]
key = "ash"
name = "Ash"
description = "A courier with a sealed letter."

[[player_characters]]
key = "rowan"
name = "Rowan"
description = "A hedge-priest."

[[relationships]]
source = "mira"
target = "vesna"
trust = -0.2
affection = 0.1
familiarity = 0.5

[[relationships]]
source = "mira"
target = "ash"
trust = 0.1

[flags]
door_open = false

[[arcs]]
key = "escape"
title = "Escape the Storm"

[[arcs.episodes]]
key = "the_door"
title = "The Cellar Door"
goal = "Get the cellar door open."
completes_when = "flag.door_open"
sets_flags = { cellar_reached = false }

[[arcs.episodes]]
key = "below"
title = "Below"
goal = "Go down into the cellar."
completes_when = 'location == "cellar"'

[[arcs]]
key = "bond"
title = "A Bond"
starts_when = "flag.door_open"

[[arcs.episodes]]
key = "trust_ash"
title = "Trust"
goal = "Mira comes to trust Ash."
completes_when = 'trust("mira", "ash") >= 0.3'
"""
