"""Small context budgets (small local models): the scene prompt still fits, and keeps what
the reply needs most."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.db import models as m
from engine.llm.tokens import LINE_KEPT, estimate_tokens, fit_lines
from engine.state.snapshot import (
    ArcProgress,
    CharacterState,
    FlagState,
    LocationState,
    RelationshipState,
    Snapshot,
)
from engine.stories.loader import load_story
from engine.stories.schema import StoryFile
from engine.turns import chapters
from engine.turns.context import build_scene_context
from engine.turns.pipeline import INPUT_CUT
from engine.turns.prompt_parts import ContextParts, KnownFact, Line, Summary
from engine.turns.prompts import director_messages
from engine.turns.script import ScriptPost, Speaker
from tests.engine_support import CHANNEL, GUILD, MOD, TEST_STORY, catalog_of, running_engine
from tests.llm_double import LLMDouble

STORIES = sorted((Path(__file__).parent.parent / "stories").glob("*.toml"))
PLAYERS = ("Ash", "Bryn", "Cato", "Dell")
SMALL_BUDGET_STEPS = {
    "absent_names",
    "flags",
    "relationships",
    "looks",
    "player_descriptions",
    "story_summary",
    "told",
    "voices",
    "secrets",
    "goals",
    "input_characters",
}


def opening_scene(story: StoryFile) -> Snapshot:
    """The story's opening state, made more crowded than a real start (engine/state/setup.py
    leaves characters with no location out of the scene; here they are in it), with four
    players in the scene and its first arc under way."""
    start = story.story.start_location
    characters = {
        c.key: CharacterState(
            id=n,
            key=c.key,
            name=c.name,
            role=c.role,
            mood=c.mood,
            intent=c.intent,
            location_key=c.location or start,
            present=(c.location or start) == start,
            avatar_url=None,
            appearance=c.appearance,
            personality=c.personality,
            traits=tuple(c.traits),
            speech=c.speech,
            backstory=c.backstory,
        )
        for n, c in enumerate(story.characters, start=1)
    }
    for n, name in enumerate(PLAYERS, start=100):
        characters[name.lower()] = CharacterState(
            n, name.lower(), name, "player", "", "", start, True, None, "",
            f"{name} is a traveller with a long memory and a short temper.", (), "", "",
        )  # fmt: skip
    arcs = {
        arc.key: ArcProgress(arc.key, "active", 0, None, {arc.episodes[0].key: "active"})
        for arc in story.arcs[:1]
    }
    return Snapshot(
        playthrough_id=1,
        guild_id=GUILD,
        channel_id=CHANNEL,
        status="active",
        turn_count=60,
        story_key="story",
        story=story,
        characters=characters,
        relationships={
            (r.source, r.target): RelationshipState(
                r.source, r.target, r.kind, r.trust, r.affection, r.familiarity
            )
            for r in story.relationships
        },
        flags={key: FlagState(value, "story", 0) for key, value in story.flags.items()},
        locations={
            loc.key: LocationState(n, loc.key, loc.name, loc.description, loc.parent)
            for n, loc in enumerate(story.locations, start=1)
        },
        scene_location=start,
        time_of_day=story.story.time_of_day,
        weather=story.story.weather,
        tone=story.story.tone,
        arcs=arcs,
        players={},
    )


def parts_for(state: Snapshot, inputs: list[str]) -> ContextParts:
    present = [c for c in state.present_characters() if not c.is_player]
    story = {c.key: c for c in state.story.characters}
    knowledge = [KnownFact(c.key, fact, "story", 0) for c in present for fact in story[c.key].knows]
    knowledge += [
        KnownFact(c.key, f"Turn {t}: Ash said the ferry leaves at dawn.", "told", t)
        for c in present
        for t in (40, 50)
    ]
    transcript = [
        Line(PLAYERS[t % 4] if n == 0 else present[n % len(present)].name, f"Line {n}.", t)
        for t in range(50, 60)
        for n in range(3)
    ]
    summaries = [Summary(t, f"Turn {t}: the rain kept on.") for t in range(30, 60)]
    lines = [Line(PLAYERS[n % 4], text) for n, text in enumerate(inputs)]
    return ContextParts(state, transcript, lines, knowledge, summaries)


@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("budget", [1_000, 1_500, 2_500, 4_000])
def test_every_bundled_story_fits_a_small_budget(path: Path, budget: int) -> None:
    state = opening_scene(load_story(path).story)
    # Four players each sending the longest message allowed.
    inputs = [f"{name} acts. " + "I search the room slowly. " * 80 for name in PLAYERS]
    built = build_scene_context(parts_for(state, inputs), budget)
    system, user = (m["content"] for m in built.messages)
    assert built.tokens <= budget
    assert estimate_tokens(system) + estimate_tokens(user) <= budget
    # Still there: the rules, the scene, who is present, the players, each one's words.
    assert system.startswith("You are the narrator")
    assert f"SCENE: {state.locations[state.story.story.start_location].name}" in system
    for c in state.present_characters():
        assert c.name in system
    for text in inputs:
        assert text[:40] in user


@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
def test_a_usual_budget_keeps_the_whole_state(path: Path) -> None:
    state = opening_scene(load_story(path).story)
    built = build_scene_context(parts_for(state, ["I look around."]), 8_000)
    assert not SMALL_BUDGET_STEPS & set(built.dropped)
    system = built.messages[0]["content"]
    assert "RELATIONSHIPS" in system and "FLAGS:" in system and "Looks:" in system


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    budget=st.integers(1_000, 8_000),
    inputs=st.lists(st.text(min_size=1, max_size=2_000), min_size=1, max_size=4),
    story=st.sampled_from(STORIES),
)
def test_any_input_fits_any_budget_the_settings_allow(
    budget: int, inputs: list[str], story: Path
) -> None:
    state = opening_scene(load_story(story).story)
    built = build_scene_context(parts_for(state, inputs), budget)
    assert built.tokens <= budget
    user = built.messages[1]["content"]
    for text in inputs:
        assert text[:8].strip() in user  # each player's words, at least their start
    # Cut only when the budget demanded it, and then marked as cut.
    if "input_characters" not in built.dropped:
        assert all(text.strip() in user for text in inputs if text.strip())


async def test_a_long_message_on_a_small_budget_is_cut_for_the_model_and_kept_whole(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    catalog: Any = catalog_of(TEST_STORY)
    # Two players each send a message of the longest length allowed (2,000 characters).
    message = "I tell the whole story of the crossing. " * 50
    other = "I keep watch by the door and count the lanterns on the water. " * 32
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        engine.options = replace(engine.options, context_tokens=1_000)
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, 11, "ash", character="ash")
        await engine.join(CHANNEL, 12, "rowan", character="rowan")
        await engine.submit_input(CHANNEL, 11, message)
        await engine.submit_input(CHANNEL, 12, other)
        await asyncio.wait_for(engine.wait_idle(CHANNEL), 10)
        async with engine.db.read() as session:
            stored = (
                await session.scalars(
                    select(m.Message.content).where(m.Message.author_user_id == 11)
                )
            ).all()
    prompt = llm_server.calls("scene")[-1].prompt
    assert estimate_tokens(prompt) <= 1_000
    assert estimate_tokens(llm_server.calls("director")[-1].prompt) <= 1_000
    assert "I tell the whole story" in prompt and "I keep watch" in prompt
    assert "[...]" in prompt
    assert INPUT_CUT in sink.notices
    assert stored == [message.strip()]  # stored whole


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.text(min_size=1, max_size=1_500), min_size=1, max_size=8),
    room=st.integers(300, 3_000),
)
def test_director_lines_share_the_room_fairly(lines: list[str], room: int) -> None:
    fitted = fit_lines(lines, room)
    assert len(fitted) == len(lines)
    if sum(estimate_tokens(line) + 1 for line in lines) <= room:
        assert fitted == lines
        return
    if room >= LINE_KEPT * len(lines):
        assert sum(estimate_tokens(line) + 1 for line in fitted) <= room
    share = room // len(lines)
    for before, after in zip(lines, fitted, strict=True):
        if estimate_tokens(before) + 1 <= min(share, LINE_KEPT):
            assert after == before  # short lines are never cut
        assert after == before or (after.endswith(" [...]") and before.startswith(after[:-6]))


@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
def test_the_director_prompt_fits_a_small_budget_and_keeps_the_names(path: Path) -> None:
    state = opening_scene(load_story(path).story)
    inputs = "\n".join(f"{name}: " + "I search the room slowly. " * 80 for name in PLAYERS)
    present = [c for c in state.present_characters() if not c.is_player]
    posts = [
        ScriptPost(Speaker(c.name, c.key), "She looks up from the fire and says nothing. " * 20)
        for c in present
    ]
    full = director_messages(state, posts, inputs)
    assert "RELATIONSHIPS NOW" in full[0]["content"]
    small = director_messages(state, posts, inputs, 1_500)
    system, user = (m["content"] for m in small)
    assert estimate_tokens(system) + estimate_tokens(user) <= 1_500
    for c in present:
        assert f"- {c.key} = {c.name}" in system
    assert f"- {state.scene_location} = " in system
    assert all(f"{name}: I search" in user for name in PLAYERS)


def test_a_chapter_request_fits_a_small_budget_and_keeps_every_turn() -> None:
    summaries = [
        (t, f"Turn {t}: " + "the crew argued about the tide tables. " * 8) for t in range(1, 17)
    ]
    whole = chapters.messages("The Last Map", (1, 16), summaries)
    assert sum(estimate_tokens(m["content"]) for m in whole) > 1_000
    fitted = chapters.messages("The Last Map", (1, 16), summaries, 1_000)
    assert sum(estimate_tokens(m["content"]) for m in fitted) <= 1_000
    assert all(f"- (turn {t}) Turn {t}: the crew" in fitted[1]["content"] for t in range(1, 17))


def test_the_transcript_loses_no_more_lines_than_the_budget_needs() -> None:
    # Dropping the oldest line moves the summaries shown on by a turn, and a long one
    # leaves: one line is enough (as at ac966f0); the lines' own sizes said eleven.
    state = opening_scene(load_story(STORIES[0]).story)
    npc = next(c for c in state.present_characters() if not c.is_player).name
    transcript = []
    for t in range(10, 20):
        transcript.append(Line("Ash", f"I do thing {t}.", t))
        transcript += [Line(npc, f"Line {t}-{n}: the rain drums on the roof.", t) for n in range(2)]
    summaries = [Summary(2, "The long night: " + "the storm took the lights one by one. " * 40)]
    summaries += [Summary(t, f"Turn {t} passed.") for t in range(3, 20)]
    parts = ContextParts(state, transcript, [Line("Ash", "I wait.")], [], summaries)
    whole = build_scene_context(parts, 100_000)
    built = build_scene_context(parts, whole.tokens - 150)
    assert built.dropped == {"transcript_lines": 1}
    assert "[turn 10]" in built.messages[1]["content"]


def test_a_step_is_counted_only_for_what_it_drops() -> None:
    # Six summaries before a short transcript, no witnessed facts, no backstories: the
    # budget's steps may not count more summaries than there are, nor steps that drop
    # nothing.
    state = opening_scene(load_story(STORIES[0]).story)
    state.characters = {k: replace(c, backstory="") for k, c in state.characters.items()}
    npc = next(c for c in state.present_characters() if not c.is_player).name
    transcript = [Line("Ash", "I wait by the door.", 7), Line(npc, "Nothing happens.", 7)]
    summaries = [Summary(t, f"Turn {t}: " + "the rain kept on and on. " * 5) for t in range(1, 7)]
    parts = ContextParts(state, transcript, [Line("Ash", "I wait.")], [], summaries)
    for budget in (1_000, 1_200):
        built = build_scene_context(parts, budget)
        assert built.tokens <= budget
        assert built.dropped["summaries"] == 6
        assert "witnessed" not in built.dropped and "backstories" not in built.dropped
