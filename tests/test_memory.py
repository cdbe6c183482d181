"""Recalling older turns: summaries that matter to this turn come back into the prompt."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.facade import Engine
from engine.turns.memory import search_words, word_query
from tests.engine_support import CHANNEL, GUILD, MOD, TEST_STORY, catalog_of, running_engine
from tests.llm_double import LLMDouble
from tests.llm_double.server import DEFAULT_SCENE

ASH = 11
QUIET = json.dumps({"summary": "Small talk by the fire.", "importance": 0.1})


def summary(text: str, importance: float = 0.5) -> str:
    return json.dumps({"summary": text, "importance": importance})


async def play(engine: Engine, text: str) -> None:
    await engine.submit_input(CHANNEL, ASH, text)
    await asyncio.wait_for(engine.wait_idle(CHANNEL), 10)


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    return catalog_of(TEST_STORY)


async def begin(engine: Engine) -> None:
    await engine.start(GUILD, CHANNEL, "inn", MOD)
    await engine.join(CHANNEL, ASH, "ash", character="ash")


def turns_shown(prompt: str) -> tuple[list[int], list[int]]:
    """The turns of a prompt's EARLIER summaries and those of its transcript."""
    earlier = prompt.split("EARLIER:\n", 1)[1].split("\n\n", 1)[0] if "EARLIER:" in prompt else ""
    transcript = prompt.split("RECENT TRANSCRIPT:\n", 1)[1].split("\n\n", 1)[0]
    return (
        [int(n) for n in re.findall(r"^- \(turn (\d+)\)", earlier, re.M)],
        [int(n) for n in re.findall(r"^\[turn (\d+)\]$", transcript, re.M)],
    )


async def test_summaries_of_earlier_turns_reach_the_prompt_and_the_recap(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("director", *[summary(f"Event number {n}.") for n in range(1, 25)])
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(25):
            await play(engine, f"I wait ({n}).")
        # The transcript's 40 lines hold turns 5-24 (an input and a post each); the
        # summaries of the turns before them come first.
        prompt = llm_server.calls("scene")[-1].prompt
        assert turns_shown(prompt) == ([1, 2, 3, 4], list(range(5, 25)))
        assert "EARLIER:\n- (turn 1) Event number 1.\n- (turn 2) Event number 2." in prompt
        recap = await engine.recap(CHANNEL)
        assert "(turn 10) Event number 10." in recap.summaries


async def test_no_turn_falls_between_the_summaries_and_a_shortened_transcript(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Long replies: the token budget keeps only the last few turns of the transcript.
    long_reply = "Narrator: " + "The storm throws rain against the shutters. " * 80 + "\nMira: Hm."
    llm_server.set_default("scene", long_reply)
    llm_server.set_default("director", lambda _body: summary("Rain."))
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(20):
            await play(engine, f"I wait ({n}).")
        shortened = halved = 0
        for call in llm_server.calls("scene")[1:]:
            earlier, transcript = turns_shown(call.prompt)
            # A first turn shown without its input (cut in half) has its summary too.
            header, first_line = call.prompt.split("RECENT TRANSCRIPT:\n", 1)[1].split("\n")[:2]
            if header == "[the opening]":
                assert earlier == []
                continue
            last = transcript[0] if not first_line.startswith("Ash: ") else transcript[0] - 1
            assert earlier == list(range(max(1, last - 7), last + 1))
            shortened += len(transcript) < 12  # the 40 lines hold 13 turns of three
            halved += last == transcript[0]
        assert shortened >= 8  # the budget, not the 40 lines, decided
        assert halved >= 1


async def test_an_old_turn_that_matters_is_recalled(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Mira is named in every turn; the silver key only once, long ago.
    chatter = summary("Mira poured ale and talked of the weather.", importance=0.2)
    llm_server.reply(
        "director",
        summary("Mira hid the silver key under the third floorboard."),
        summary("Bram swore an oath to the river.", importance=0.9),
        *[QUIET, chatter] * 19,
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(40):
            await play(engine, f"I wait by the fire ({n}).")
        prompt = llm_server.calls("scene")[-1].prompt
        assert "silver key" not in prompt  # turn 1 is long out of the prompt by now
        await play(engine, "Where did Mira put that silver key?")
        prompt = llm_server.calls("scene")[-1].prompt
        # Relevant to the input, and a turning point (importance 0.9) that nobody named.
        assert "(turn 1) Mira hid the silver key under the third floorboard." in prompt
        assert "(turn 2) Bram swore an oath to the river." in prompt
        recalled = prompt.split("LONG AGO", 1)[1].split("\n\n", 1)[0]
        assert "Small talk" not in recalled  # nothing in it matches
        assert recalled.count("- (turn") == 4  # the best two matches of "Mira", at most


async def test_an_input_stored_before_a_restart_recalls_the_same(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # The process that answers knows only part of the input waiting (recall's guess of its
    # words, engine.turns.memory.InputHints, is wrong): recall still reads the whole input.
    llm_server.reply(
        "director",
        summary("Mira hid the silver key under the third floorboard."),
        *[QUIET] * 30,
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(30):  # turn 1 is older than the transcript and the summaries
            await play(engine, f"I wait by the fire ({n}).")
        await engine.submit_input(CHANNEL, ASH, "Where did Mira put that key?", queue=False)
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await play(engine, "I look around.")
        prompt = llm_server.calls("scene")[-1].prompt
        assert "Where did Mira put that key?" in prompt and "I look around." in prompt
        assert "(turn 1) Mira hid the silver key under the third floorboard." in prompt


async def test_an_undone_turn_is_not_recalled(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply(
        "director",
        summary("Mira hid the silver key under the third floorboard."),
        summary("Mira pocketed the silver key herself."),
        *[QUIET] * 28,
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        await play(engine, "I watch Mira.")
        await engine.undo(CHANNEL)
        for n in range(29):
            await play(engine, f"I watch Mira ({n}).")
        await play(engine, "Where is the silver key now?")
        prompt = llm_server.calls("scene")[-1].prompt
        assert "(turn 1) Mira pocketed the silver key herself." in prompt
        assert "floorboard" not in prompt


def test_search_words_leave_out_common_words_and_cannot_inject_syntax() -> None:
    words = search_words(['Where is the "key"? NEAR(a b) OR * -- Mira, Mira!'])
    assert words == ["key", "NEAR", "Mira"]
    assert word_query(7, "key") == 'playthrough_id : 7 AND "key"'
    assert search_words(["Is it? Oh, so we do."]) == []


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), plain=st.text("abcXYZ019 ,.!?'\"()*:-", max_size=80))
def test_any_input_makes_queries_the_full_text_index_accepts(text: str, plain: str) -> None:
    with sqlite3.connect(":memory:") as connection:
        connection.execute("create virtual table f using fts5(content, playthrough_id)")
        connection.execute("insert into f values (?, 7)", (plain,))
        for word in search_words([text]):  # never a syntax error, whatever was typed
            connection.execute("select rowid from f where f match ?", (word_query(7, word),))
        for word in search_words([plain]):
            # Each word of the input is found again in it: the query means what it says.
            found = connection.execute(
                "select rowid from f where f match ?", (word_query(7, word),)
            ).fetchall()
            assert found == [(1,)]


CHAPTER = "The travellers found the silver key and swore to keep it from Vesna."


async def test_a_chapter_of_the_story_so_far_is_written_and_shown(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("director", *[summary(f"Event {n}.") for n in range(1, 40)])
    llm_server.reply("summary", CHAPTER)
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine)
        for n in range(31):
            await play(engine, f"I wait ({n}).")
        assert llm_server.calls("summary") == []
        await play(engine, "I wait (31).")  # turn 32: the chapter of turns 1-16 is due
        [call] = llm_server.calls("summary")
        assert "Events of turns 1-16:" in call.prompt
        assert "(turn 1) Event 1." in call.prompt and "(turn 16) Event 16." in call.prompt
        assert "(turn 17)" not in call.prompt
        assert call.model == "director-model"  # a chore for the cheaper model
        await engine.retry(CHANNEL)  # turn 32 again: the chapter is not written twice
        await engine.wait_idle(CHANNEL)
        await play(engine, "I look around.")
        assert len(llm_server.calls("summary")) == 1
        prompt = llm_server.calls("scene")[-1].prompt
        assert f"THE STORY SO FAR:\n- (turns 1-16) {CHAPTER}" in prompt
        log = await engine.event_log(CHANNEL)
        assert any(e.kind == "chapter" and "turns 1-16" in e.summary for e in log)
        recap = await engine.recap(CHANNEL)  # players see it too
        assert recap.chapters == (f"(turns 1-16) {CHAPTER}",)
        # ...and every turn after the chapter, numbered: none falls between the two.
        turns = [int(s.split(")")[0].removeprefix("(turn ")) for s in recap.summaries]
        assert turns == list(range(17, recap.turn_count + 1))
        assert sink.notices == []


async def test_a_chapter_that_failed_is_written_after_the_next_turn(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("summary", CHAPTER)
    llm_server.fail("summary", "500")
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine)
        for n in range(32):
            await play(engine, f"I wait ({n}).")
        assert len(llm_server.calls("summary")) == 1
        await play(engine, "I look around.")  # the story goes on, and the chapter is tried again
        assert len(llm_server.calls("summary")) == 2
        await play(engine, "I look around again.")
        assert f"(turns 1-16) {CHAPTER}" in llm_server.calls("scene")[-1].prompt
        assert sink.notices == []  # players are not bothered with it


async def test_undoing_into_a_chapter_takes_the_chapter_back(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("summary", CHAPTER)
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(32):
            await play(engine, f"I wait ({n}).")
        assert (await engine.recap(CHANNEL)).chapters == (f"(turns 1-16) {CHAPTER}",)
        for _ in range(16):  # back to turn 16: the chapter's turns are all still there
            await engine.undo(CHANNEL)
        assert (await engine.recap(CHANNEL)).chapters == (f"(turns 1-16) {CHAPTER}",)
        await engine.undo(CHANNEL)  # turn 16 taken back: the chapter goes with it
        recap = await engine.recap(CHANNEL)
        assert (recap.turn_count, recap.chapters) == (15, ())
        await play(engine, "I wait again.")
        assert CHAPTER not in llm_server.calls("scene")[-1].prompt


async def test_without_full_text_search_turning_points_are_still_recalled(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # SQLite builds without FTS5 get no index (the migration checks): recall by importance.
    llm_server.reply(
        "director",
        summary("Mira hid the silver key under the third floorboard."),
        summary("Bram swore an oath to the river.", importance=0.9),
        *[QUIET] * 38,
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        with sqlite3.connect(tmp_path / "engine.db") as connection:
            for trigger in ("insert", "delete", "update"):
                connection.execute(f"drop trigger memories_fts_{trigger}")
            connection.execute("drop table memories_fts")
        await begin(engine)
        for n in range(40):  # the chapter of turns 1-16 is written after turn 32
            await play(engine, f"I wait by the fire ({n}).")
        await play(engine, "Where did Mira put that silver key?")
        prompt = llm_server.calls("scene")[-1].prompt
        assert "(turn 2) Bram swore an oath to the river." in prompt
        assert "(turn 1)" not in prompt  # found only by its words, which needs the index


async def test_recall_brings_only_turns_the_prompt_does_not_show(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Short turns (an input and one line): the transcript holds twenty turns, and the
    # summaries reach back to the chapter of turns 1-16 (written after turn 32), so recall
    # may bring only turns of that chapter. Every turn matters (0.9).
    numbers = iter(range(1, 100))
    llm_server.set_default("director", lambda _body: summary(f"Moment {next(numbers)}.", 0.9))
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(45):
            await play(engine, f"I wait ({n}).")
    for call in llm_server.calls("scene")[34:]:
        earlier, transcript = turns_shown(call.prompt)
        long_ago = call.prompt.split("LONG AGO", 1)[1].split("\n\n", 1)[0]
        recalled = [int(n) for n in re.findall(r"^- \(turn (\d+)\)", long_ago, re.M)]
        assert recalled and max(recalled) < min(earlier or transcript)


async def test_every_turn_since_the_latest_chapter_is_in_the_prompt(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Chapters lag: after turn 46 the story so far covers turns 1-16 only (17-32 is written
    # after turn 48), so the summaries reach back to turn 17 when the budget allows.
    numbers = iter(range(1, 100))
    llm_server.set_default("director", lambda _body: summary(f"Moment {next(numbers)}."))
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine)
        for n in range(47):
            await play(engine, f"I wait ({n}).")
    prompt = llm_server.calls("scene")[-1].prompt
    earlier, transcript = turns_shown(prompt)
    assert "THE STORY SO FAR:\n- (turns 1-16)" in prompt and "(turns 17-32)" not in prompt
    assert earlier + transcript == list(range(17, 47))


async def test_a_budget_too_small_still_keeps_the_last_lines_of_the_scene(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # What is never dropped (rules, scene, characters) is over 300 tokens already.
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        engine.options = replace(engine.options, context_tokens=300)
        await begin(engine)
        for n in range(4):
            await play(engine, f"I wait ({n}).")
    prompt = llm_server.calls("scene")[-1].prompt
    transcript = prompt.split("RECENT TRANSCRIPT:\n", 1)[1].split("\n\n", 1)[0]
    assert transcript.endswith("Ash: I wait (2).\n" + DEFAULT_SCENE)
    assert transcript.count("\n") >= 4  # at least the last four lines
