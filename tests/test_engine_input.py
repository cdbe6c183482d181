"""Storing a player's input: one statement when all is well, and a clear refusal otherwise,
also for a channel whose earlier input was accepted (the refusal is read only then)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.db import models as m
from engine.errors import InvalidInput, NoPlaythrough, NotPlaying, StoryPaused
from engine.text import clean_name, without_controls
from tests.engine_support import CHANNEL, GUILD, MOD, TEST_STORY, catalog_of, running_engine
from tests.llm_double import LLMDouble

ASH, ROWAN = 11, 12


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    return catalog_of(TEST_STORY)


async def _inputs(engine: Any) -> list[tuple[str, str]]:
    async with engine.db.read() as session:
        rows = await session.execute(
            select(m.Message.speaker_name, m.Message.content)
            .where(m.Message.kind == "player")
            .order_by(m.Message.id)
        )
        return [tuple(row) for row in rows]


async def test_refusals_after_accepted_input_name_the_reason_and_store_nothing(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        await engine.submit_input(CHANNEL, ASH, "I knock.", queue=False)
        # Blank to the eye: spaces, zero-width spaces, Hangul fillers, blank braille.
        for blank in (" \n ", "\u200b\u200d", "\u3164", "\u2800 \u2800", "\uffa0"):
            with pytest.raises(InvalidInput, match="nothing to say"):
                await engine.submit_input(CHANNEL, ASH, blank)
        # Control characters are not stored (a terminal would run `\x1b[2J`: clear the screen).
        await engine.submit_input(CHANNEL, ASH, "I ring\x07 the bell\x1b[2J.", queue=False)
        with pytest.raises(NotPlaying, match="/join"):
            await engine.submit_input(CHANNEL, ROWAN, "I am not in this story.")
        await engine.pause(CHANNEL, MOD)
        with pytest.raises(StoryPaused):
            await engine.submit_input(CHANNEL, ASH, "Still there?")
        await engine.resume(CHANNEL, MOD)
        await engine.leave(CHANNEL, ASH)
        with pytest.raises(NotPlaying):
            await engine.submit_input(CHANNEL, ASH, "I come back in.")
        await engine.end(CHANNEL, MOD)
        with pytest.raises(NoPlaythrough):
            await engine.submit_input(CHANNEL, ASH, "Hello?")
        assert await _inputs(engine) == [("Ash", "I knock."), ("Ash", "I ring the bell[2J.")]


async def test_the_same_discord_message_is_stored_once_as_its_character(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        first = await engine.submit_input(
            CHANNEL, ASH, "I wave.", action=True, discord_message_id=555, queue=False
        )
        again = await engine.submit_input(
            CHANNEL, ASH, "I wave.", action=True, discord_message_id=555, queue=False
        )
        assert not first.duplicate
        assert again.duplicate and again.message_id == first.message_id
        assert await _inputs(engine) == [("Ash", "*I wave.*")]


def test_without_controls_replaces_lone_surrogates() -> None:
    # What a stream read with `surrogateescape` makes of a byte that is not UTF-8 (\xff):
    # the database cannot encode it, so it becomes U+FFFD, as a decoder with `replace` does.
    assert without_controls("bad \udcff bytes") == "bad \ufffd bytes"
    assert without_controls("\ud800\udc00 pair\x07") == "\ufffd\ufffd pair"
    assert without_controls("fine \U0001f600") == "fine \U0001f600"
    assert clean_name("Mi\udcffra") == "Mi\ufffdra"


async def test_lone_surrogates_are_stored_as_replacement_characters(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ash\udcffley", character="Ti\udcffna")
        await engine.submit_input(CHANNEL, ASH, "bad \udcff bytes", queue=False)
        await engine.submit_input(CHANNEL, ASH, "and more after", queue=False)
        assert await _inputs(engine) == [
            ("Ti\ufffdna", "bad \ufffd bytes"),
            ("Ti\ufffdna", "and more after"),
        ]
        (player,) = await engine.players(CHANNEL)
        assert player.display_name == "ash\ufffdley"
