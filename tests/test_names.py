"""Character names across scripts: a lookalike of a taken name is refused at join, a name in
another script that looks like nothing taken is welcome."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidInput
from tests.engine_support import CHANNEL, GUILD, MOD, TEST_STORY, catalog_of, running_engine
from tests.llm_double import LLMDouble

ASH, ROWAN, DANA, TOM = 11, 12, 13, 14
LAST_MAP = Path(__file__).resolve().parents[1] / "stories" / "last_map.toml"


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    return catalog_of(TEST_STORY)


async def _names(engine: Any) -> list[str]:
    return sorted(c.name for c in await engine.characters(CHANNEL))


async def test_a_word_mixing_scripts_is_refused(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        before = await _names(engine)
        # "Mirа" with a Cyrillic а, "Bram" with a Greek alpha: each reads as the story's own.
        with pytest.raises(InvalidInput, match="Mir\u0430 mixes Latin and Cyrillic letters"):
            await engine.join(CHANNEL, ASH, "ashley", character="Mir\u0430")
        with pytest.raises(InvalidInput, match="Br\u03b1m mixes Latin and Greek letters"):
            await engine.join(CHANNEL, ASH, "ashley", character="Br\u03b1m")
        # Not only lookalikes of a taken name: any word, also a display name used as the name.
        with pytest.raises(InvalidInput, match="T\u0435ss mixes Latin and Cyrillic letters"):
            await engine.join(CHANNEL, ASH, "T\u0435ss")
        assert await _names(engine) == before  # nobody joined


async def test_a_lookalike_in_one_other_script_is_the_name_it_looks_like(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        await engine.join(CHANNEL, ROWAN, "rowan", character="Oscar")
        await engine.join(CHANNEL, TOM, "tom", character="Tina")
        before = await _names(engine)
        # All Cyrillic, every letter a lookalike: М і г а reads "Mira".
        with pytest.raises(InvalidInput, match="Mira is a character of the story"):
            await engine.join(CHANNEL, DANA, "dana", character="\u041c\u0456\u0433\u0430")
        # О ѕ с а г reads "Oscar"; capitals А Ѕ Н read "ASH".
        with pytest.raises(InvalidInput, match="Oscar is already played by rowan"):
            await engine.join(CHANNEL, DANA, "dana", character="\u041e\u0455\u0441\u0430\u0433")
        with pytest.raises(InvalidInput, match="Ash is already played by ashley"):
            await engine.join(CHANNEL, DANA, "dana", character="\u0410\u0405\u041d")
        # Greek capitals Τ Ι Ν Α read "TINA".
        with pytest.raises(InvalidInput, match="Tina is already played by tom"):
            await engine.join(CHANNEL, DANA, "dana", character="\u03a4\u0399\u039d\u0391")
        assert await _names(engine) == before
        await engine.leave(CHANNEL, ROWAN)
        # A lookalike of a character nobody plays now is that character, not a second one.
        again = await engine.join(CHANNEL, DANA, "dana", character="\u041e\u0455\u0441\u0430\u0433")
        assert (again.character_key, again.character_name) == ("oscar", "Oscar")


async def test_names_in_other_scripts_are_welcome(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    names = [
        "\u041c\u0438\u0440\u043e\u0441\u043b\u0430\u0432\u0430",  # Мирослава
        "\u1f08\u03bb\u03ad\u03be\u03b1\u03bd\u03b4\u03c1\u03bf\u03c2",  # Ἀλέξανδρος
        "\u5c71\u7530\u3055\u304f\u3089",  # 山田さくら: Han and Hiragana are written together
        "\uae40\ubbfc\uc900",  # 김민준
        "Mira \u041f\u0435\u0442\u0440\u043e\u0432\u0430",  # Mira Петрова: a script per word
    ]
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        for user, name in enumerate(names, start=100):
            player = await engine.join(CHANNEL, user, f"user{user}", character=name)
            assert player.character_name == name
        assert set(names) <= set(await _names(engine))


async def test_a_suggested_character_keeps_the_story_description(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        refused = "Ash is one of the story's suggested characters and keeps its own description"
        # By name, key or lookalike, as a character of one's own with a description: refused.
        for name in ("Ash", "ash", "\u0410\u0405\u041d"):
            with pytest.raises(InvalidInput, match=refused):
                await engine.join(CHANNEL, ASH, "ashley", character=name, description="dup char")
        # The same without a description (or with the story's own) is that character.
        ash = await engine.join(
            CHANNEL, ASH, "ashley", character="ash", description="A courier with a sealed letter."
        )
        assert (ash.character_key, ash.description) == (
            "ash",
            "A courier with a sealed letter.",
        )
        await engine.leave(CHANNEL, ASH)
        with pytest.raises(InvalidInput, match=refused):
            await engine.join(CHANNEL, DANA, "dana", character="Ash", description="a liar")
        again = await engine.join(CHANNEL, DANA, "dana", character="Ash")
        assert again.description == "A courier with a sealed letter."
        # A display name that is a suggested character's name (no character given) takes it,
        # as it is.
        with pytest.raises(InvalidInput, match="Rowan is one of the story's suggested"):
            await engine.join(CHANNEL, TOM, "Rowan", description="a liar")
        rowan = await engine.join(CHANNEL, ROWAN, "Rowan")
        assert (rowan.character_key, rowan.description) == ("rowan", "A hedge-priest.")
        assert [p.description for p in await engine.players(CHANNEL)] == [
            "A courier with a sealed letter.",
            "A hedge-priest.",
        ]


async def test_a_word_of_a_story_characters_name_is_not_a_name_of_ones_own(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    """The model calls Corvin Hale `Corvin`: a player's character of that name would take his
    lines (as a player's, dropped). A name with more in it is fine."""
    catalog = catalog_of(LAST_MAP)
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "last_map", MOD)
        before = await _names(engine)
        refused = {
            "Corvin": "Corvin (Corvin Hale)",
            "hale": "hale (Corvin Hale)",
            "\uff23\uff4f\uff52\uff56\uff49\uff4e": "Corvin (Corvin Hale)",  # fullwidth
            "Amos": "Amos (Dr Amos Pell)",
        }
        for name, who in refused.items():
            with pytest.raises(InvalidInput, match=rf"^{re.escape(who)} is a character of the"):
                await engine.join(CHANNEL, ASH, "ashley", character=name, description="x")
        # Also a display name joining as itself.
        with pytest.raises(InvalidInput, match=r"^Sedge \(Mother Sedge\) is a character of the"):
            await engine.join(CHANNEL, ASH, "Sedge")
        assert await _names(engine) == before
        corvina = await engine.join(CHANNEL, ASH, "ashley", character="Corvina")
        hale = await engine.join(CHANNEL, ROWAN, "rowan", character="Tam Hale")
        assert (corvina.character_name, hale.character_name) == ("Corvina", "Tam Hale")
