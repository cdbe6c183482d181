"""What happens while a turn is being written. Ending, pausing or regenerating stops it
(design §4): the stream is closed, nothing of that turn is stored, and the players' messages
are not lost. Changes made elsewhere meanwhile are respected when the turn is stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.db import models as m
from engine.facade import Engine
from engine.turns.director import step_toward
from engine.turns.pipeline import TURN_DROPPED
from engine.usecases.playthroughs import STOPPED
from tests.engine_support import (
    CHANNEL,
    GUILD,
    MOD,
    TEST_STORY,
    RecordingSink,
    catalog_of,
    eventually,
    running_engine,
)
from tests.llm_double import LLMDouble

ASH_USER = 11
WAIT = 10.0
# Far longer than WAIT: a turn that is not stopped keeps waiting on the stalled stream.
SLOW = {"deadline": 120.0, "read_timeout": 120.0}


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    return catalog_of(TEST_STORY)


def stall_first_reply(llm_server: LLMDouble, *then: str) -> None:
    """The next scene reply streams one line, then stalls for good; `then` come after it."""
    llm_server.reply("scene", "Narrator: It holds.\nMira: Wait for it.", *then)
    llm_server.fail("scene", "stall", after_chunks=3)


async def one_turn_answering(engine: Engine, sink: RecordingSink, answer: str) -> None:
    """Assert that exactly one turn was stored and shown: `answer` to "I open the letter."."""
    [result] = sink.results
    assert [p.text for p in result.posts] == [answer]
    recap = await engine.recap(CHANNEL)
    assert recap.turn_count == 1
    assert [p.text for p in recap.recent][-2:] == ["I open the letter.", answer]


async def begin(engine: Engine) -> None:
    await engine.start(GUILD, CHANNEL, "inn", MOD)
    await engine.join(CHANNEL, ASH_USER, "ash_player", character="ash")


async def writing(engine: Engine, llm_server: LLMDouble, sink: Any, text: str) -> None:
    """Start a story, send `text`, and return once the reply has begun to stream and stalled."""
    await begin(engine)
    await engine.submit_input(CHANNEL, ASH_USER, text)
    await eventually(lambda: any(sink.streamed.values()))


async def play(engine: Engine, text: str) -> None:
    await engine.submit_input(CHANNEL, ASH_USER, text)
    await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)


async def stored_turns(engine: Engine) -> int:
    async with engine.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(m.Turn)) or 0)


async def test_ending_the_story_stops_the_turn_being_written(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    stall_first_reply(llm_server)
    async with running_engine(tmp_path, llm_server.base_url, catalog, **SLOW) as (engine, sink):
        await writing(engine, llm_server, sink, "I open the letter.")
        await engine.end(CHANNEL, MOD)
        await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)
        assert sink.results == []
        assert sink.notices == [STOPPED["ended"]]
        await eventually(lambda: llm_server.streams_aborted == 1)  # the stream was closed
        assert llm_server.calls("director") == []
        assert await stored_turns(engine) == 0


async def test_a_paused_turn_is_answered_when_the_story_resumes(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    stall_first_reply(llm_server, "Narrator: It cracks.")
    async with running_engine(tmp_path, llm_server.base_url, catalog, **SLOW) as (engine, sink):
        await writing(engine, llm_server, sink, "I open the letter.")
        await engine.pause(CHANNEL, MOD)
        await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)
        assert sink.notices == [STOPPED["paused"]]
        assert sink.results == []
        await engine.resume(CHANNEL, MOD)
        await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)
        await one_turn_answering(engine, sink, "It cracks.")


async def test_retry_while_a_turn_is_written_writes_it_afresh(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    stall_first_reply(llm_server, "Narrator: It cracks.")
    async with running_engine(tmp_path, llm_server.base_url, catalog, **SLOW) as (engine, sink):
        await writing(engine, llm_server, sink, "I open the letter.")
        await asyncio.wait_for(engine.retry(CHANNEL, ASH_USER), WAIT)
        assert sink.notices == []
        await one_turn_answering(engine, sink, "It cracks.")
        assert all("I open the letter." in c.prompt for c in llm_server.calls("scene"))
        assert await stored_turns(engine) == 1


@dataclass
class ElsewhereSink(RecordingSink):
    """At the first streamed text, runs `act` (another engine on the same database, as a
    second process would be) and only then lets this engine's turn go on."""

    act: Callable[[], Awaitable[object]] | None = None

    async def text_streamed(self, channel_id: int, index: int, delta: str) -> None:
        await super().text_streamed(channel_id, index, delta)
        if self.act is not None:
            act, self.act = self.act, None
            await act()


async def test_a_turn_written_after_the_story_ended_is_not_kept_and_says_so(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    sink = ElsewhereSink()
    async with running_engine(tmp_path, llm_server.base_url, catalog, sink=sink) as (engine, _):
        await begin(engine)
        async with running_engine(tmp_path, llm_server.base_url, catalog) as (other, _):
            sink.act = lambda: other.end(CHANNEL, MOD)
            await play(engine, "I open the letter.")
        assert sink.act is None  # the story was ended mid-stream
        assert llm_server.calls("director")  # the turn was written to its end
        assert sink.results == []
        assert sink.notices == [TURN_DROPPED]
        assert await stored_turns(engine) == 0


async def test_input_answered_by_another_process_meanwhile_is_not_answered_twice(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Two processes playing one channel (say, two bot processes given the same shard): both
    # take the same waiting input; the one that finishes second must not store its turn.
    sink = ElsewhereSink()
    async with running_engine(tmp_path, llm_server.base_url, catalog, sink=sink) as (engine, _):
        await begin(engine)
        async with running_engine(tmp_path, llm_server.base_url, catalog) as (other, seen):

            async def answer_elsewhere() -> None:
                other.dispatcher.resume(CHANNEL)
                await other.wait_idle(CHANNEL)

            sink.act = answer_elsewhere
            await play(engine, "I open the letter.")
            assert len(seen.results) == 1  # the other process answered
        assert sink.act is None
        assert sink.results == []
        assert sink.notices == [TURN_DROPPED]
        assert await stored_turns(engine) == 1
        recap = await engine.recap(CHANNEL)
        assert recap.turn_count == 1
        assert [p.text for p in recap.recent].count("I open the letter.") == 1


async def test_a_moderator_edit_made_while_a_turn_is_written_is_kept(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # The director's relationship steps apply to the value as it is when the turn is stored,
    # not as it was when the turn began: here a moderator raises Mira's trust in Ash mid-turn.
    step = {"source": "mira", "target": "ash", "trust": 0.1, "reason": "he shut the door"}
    answer = {"summary": "Ash shut the door.", "relationships": [step]}
    llm_server.reply("director", json.dumps(answer))
    sink = ElsewhereSink()
    async with running_engine(tmp_path, llm_server.base_url, catalog, sink=sink) as (engine, _):
        await begin(engine)
        sink.act = lambda: engine.set_relationship(CHANNEL, MOD, "mira", "ash", trust=0.9)
        await play(engine, "I shut the door.")
        assert sink.act is None  # the edit came mid-turn
        [rel] = [r for r in await engine.relationships(CHANNEL, "Mira") if r.target_key == "ash"]
        assert rel.trust == step_toward(0.9, 0.1, "trust") > 0.9


async def test_a_moderator_flag_or_scene_edit_made_during_a_turn_wins(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # The director set flags, moods and the scene from the state the turn began with; a
    # moderator's change made meanwhile is newer, so it stays, and the rest of the turn lands.
    answer = {
        "summary": "Ash forced the door.",
        "flags": [{"name": "door_open", "value": True}],
        "scene": {"weather": "clearing"},
        "moods": [{"character": "mira", "mood": "startled"}],
    }
    llm_server.reply("director", json.dumps(answer))
    sink = ElsewhereSink()
    async with running_engine(tmp_path, llm_server.base_url, catalog, sink=sink) as (engine, _):
        await begin(engine)

        async def moderate() -> None:
            await engine.set_flag(CHANNEL, MOD, "door_open", "barred")
            await engine.set_scene(CHANNEL, MOD, weather="hail")

        sink.act = moderate
        await play(engine, "I put my shoulder to the door.")
        assert sink.act is None  # the edits came mid-turn
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["door_open"] == "barred"
        assert (await engine.scene(CHANNEL)).weather == "hail"
        moods = {c.key: c.mood for c in await engine.characters(CHANNEL)}
        assert moods["mira"] == "startled"
        [result] = sink.results
        assert "kept flag door_open: changed during the turn" in result.notes
