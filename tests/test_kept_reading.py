"""The recent transcript kept between turns (engine/turns/kept.py) gives every turn the
same prompt as reading it afresh would, whatever happens between turns."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.facade import Engine
from engine.turns.kept import KeptReading, KeptReadings
from tests.engine_support import (
    CHANNEL,
    GUILD,
    MOD,
    TEST_STORY,
    catalog_of,
    eventually,
    running_engine,
)
from tests.llm_double import LLMDouble

ASH, ROWAN = 11, 12
WAIT = 10.0


class NeverKept(KeptReadings):
    def get(self, playthrough_id: int, version: int, turn_count: int) -> KeptReading | None:
        return None


class CountingKept(KeptReadings):
    used = 0

    def get(self, playthrough_id: int, version: int, turn_count: int) -> KeptReading | None:
        kept = super().get(playthrough_id, version, turn_count)
        self.used += kept is not None
        return kept


async def turn(engine: Engine, user: int, text: str) -> None:
    await engine.submit_input(CHANNEL, user, text)
    await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)


async def play(engine: Engine, llm: LLMDouble) -> None:
    """Turns with everything that can happen between them."""
    await engine.start(GUILD, CHANNEL, "inn", MOD)
    await engine.join(CHANNEL, ASH, "ash", character="ash")
    await engine.join(CHANNEL, ROWAN, "rowan", character="rowan")
    for n in range(4):  # past the window of recent lines
        await turn(engine, ASH if n % 2 else ROWAN, f"Move {n}.")
    # Input written while a turn is with the model goes into the next turn; its message id
    # is older than the posts of the turn before it.
    llm.latency = 0.3
    scene_calls = len(llm.calls("scene"))
    await engine.submit_input(CHANNEL, ASH, "I open the shutters.")
    await eventually(lambda: len(llm.calls("scene")) > scene_calls)
    await engine.submit_input(CHANNEL, ROWAN, "I hold the lamp up.")
    await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)
    llm.latency = 0.0
    await turn(engine, ASH, "After the wait.")
    await engine.set_flag(CHANNEL, MOD, "door_open", True)  # a moderator between turns
    await turn(engine, ROWAN, "After the flag.")
    await engine.undo(CHANNEL, MOD)
    await turn(engine, ASH, "After the undo.")
    await engine.retry(CHANNEL, MOD)
    await turn(engine, ROWAN, "After the retry.")
    llm.fail("scene", "500")
    await turn(engine, ASH, "This one fails.")
    await turn(engine, ROWAN, "And this one is answered with it.")
    await engine.undo(CHANNEL, MOD)  # the last turn, kept transcript and all
    await turn(engine, ASH, "After the second undo.")
    llm.fail("scene", "500")
    await turn(engine, ASH, "Fails again.")
    await engine.undo(CHANNEL, MOD)  # sets the failed input aside
    for n in range(3):
        await turn(engine, ASH if n % 2 else ROWAN, f"Closing move {n}.")


def numbered_directions(counter: itertools.count[int]) -> Any:
    """Mira is told two facts a turn (past the ten learned facts the prompt shows); Bram
    comes in at the third answer, Vesna leaves at the sixth and is back at the ninth."""

    def direct(_body: dict[str, Any]) -> str:
        n = next(counter)
        presence = {3: {"bram": True}, 6: {"vesna": False}, 9: {"vesna": True}}.get(n, {})
        learned = [{"character": "mira", "fact": f"Secret {n}{part}."} for part in "ab"]
        learned.append({"character": "bram", "fact": f"Bram's clue {n}."})
        return json.dumps(
            {
                "summary": f"Moment {n}.",
                "learned": learned,
                "presence": [{"character": c, "present": p} for c, p in presence.items()],
            }
        )

    return direct


def numbered_scenes(counter: itertools.count[int]) -> Any:
    def scene(_body: dict[str, Any]) -> str:
        n = next(counter)
        return f"Narrator: Scene {n} unfolds.\nMira: Line {n}, says Mira."

    return scene


async def prompts(tmp_path: Path, llm: LLMDouble, kept: KeptReadings, name: str) -> list[str]:
    llm.reset()
    llm.set_default("scene", numbered_scenes(itertools.count(1)))
    llm.set_default("director", numbered_directions(itertools.count(1)))
    async with running_engine(tmp_path, llm.base_url, catalog_of(TEST_STORY), db_name=name) as (
        engine,
        _sink,
    ):
        engine.options = replace(engine.options, recent_messages=6)
        engine.kept_readings = kept
        await play(engine, llm)
    return [call.prompt for call in llm.calls("scene")]


async def test_every_prompt_is_the_same_as_with_the_transcript_read_afresh(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    kept = CountingKept()
    with_kept = await prompts(tmp_path, llm_server, kept, "kept.db")
    afresh = await prompts(tmp_path, llm_server, NeverKept(), "afresh.db")
    assert kept.used >= 8  # most turns read only what was new
    assert len(with_kept) == len(afresh) == 18
    for number, (mine, theirs) in enumerate(zip(with_kept, afresh, strict=True), 1):
        assert mine == theirs, f"scene call {number} differs"
        # Each turn's lines together, also when input came while the turn before was written.
        headers = re.findall(r"^\[turn (\d+)\]$", mine, re.M)
        assert headers == sorted(set(headers), key=int), f"scene call {number}: {headers}"
    last = with_kept[-1]
    # The window's six lines, grouped under the turn numbers players know (two turns were
    # undone and two failed before), which are also those of what Mira saw.
    assert (
        "RECENT TRANSCRIPT:\n[turn 11]\nRowan: Closing move 0.\nNarrator: Scene 14 unfolds.\n"
        "Mira: Line 14, says Mira.\n[turn 12]\nAsh: Closing move 1.\n"
        "Narrator: Scene 15 unfolds.\nMira: Line 15, says Mira.\n\n"
        "THE PLAYERS NOW:\nRowan: Closing move 2."
    ) in last
    # Told two facts a turn, Mira's prompt has the ten newest, in order.
    assert (
        "What Mira learned:\n- (turn 8) Secret 10a.\n- (turn 8) Secret 10b.\n"
        "- (turn 9) Secret 11a.\n"
    ) in last
    assert "- (turn 12) Secret 15b.\nWhat Mira saw:" in last
    assert "What Mira saw:\n- (turn 7) Moment 7.\n- (turn 8) Moment 10." in last
    assert "What Bram saw:\n- (turn 7) Moment 7." in last  # came in at turn 3
