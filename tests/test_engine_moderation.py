"""Starting, joining, views and moderator actions: what players and moderators see."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ChannelBusy, InvalidInput, NoPlaythrough, NotFound, StoryPaused
from engine.state.snapshot import StateCache
from tests.engine_support import CHANNEL, GUILD, MOD, TEST_STORY, catalog_of, running_engine
from tests.llm_double import LLMDouble

ASH, ROWAN = 11, 12


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    return catalog_of(TEST_STORY)


async def test_one_story_per_channel_and_joining_rules(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        with pytest.raises(NoPlaythrough):
            await engine.scene(CHANNEL)
        with pytest.raises(NotFound, match="Stories: inn"):
            await engine.start(GUILD, CHANNEL, "nowhere", MOD)
        info = await engine.start(GUILD, CHANNEL, "inn", MOD)
        assert info.opening.startswith("Rain hammers")
        with pytest.raises(ChannelBusy):
            await engine.start(GUILD, CHANNEL, "inn", MOD)
        ash = await engine.join(CHANNEL, ASH, "ashley", character="Ash")
        assert ash.character_key == "ash"
        with pytest.raises(InvalidInput, match="already played by ashley"):
            await engine.join(CHANNEL, ROWAN, "rowan", character="ash")
        with pytest.raises(InvalidInput, match="already playing Ash"):
            await engine.join(CHANNEL, ASH, "ashley", character="rowan")
        with pytest.raises(InvalidInput, match="character of the story"):
            await engine.join(CHANNEL, ROWAN, "rowan", character="Mira")
        with pytest.raises(InvalidInput, match="Narrator is the story's own voice"):
            await engine.join(CHANNEL, ROWAN, "narrator")  # would post as the narration
        custom = await engine.join(
            CHANNEL, ROWAN, "rowan", character="Tilde", description="A ferrywoman."
        )
        assert (custom.character_name, custom.description) == ("Tilde", "A ferrywoman.")
        present = {c.name for c in (await engine.scene(CHANNEL)).present}
        assert present == {"Mira", "Vesna", "Ash", "Tilde"}
        # The authored relationship to the suggested character came alive when Ash joined.
        rels = {(r.source_key, r.target_key) for r in await engine.relationships(CHANNEL, "Ash")}
        assert rels == {("mira", "ash")}
        await engine.leave(CHANNEL, ROWAN)
        assert "Tilde" not in {c.name for c in (await engine.scene(CHANNEL)).present}
        await engine.end(CHANNEL, MOD)
        await engine.start(GUILD, CHANNEL, "inn", MOD)  # a new story may start after the end


async def test_a_character_name_belongs_to_one_character(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    """The model's lines are routed by name, so two characters may not share one: a custom
    character may not take a story character's key or another player's character's name."""
    dana = 13
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        with pytest.raises(InvalidInput, match="Mira is a character of the story"):
            await engine.join(CHANNEL, ASH, "ashley", character="MIRA")  # her key, any case
        await engine.join(CHANNEL, ASH, "ashley", character="Tilde", description="A ferrywoman.")
        # Lookalikes too: a zero-width space inside, fullwidth letters.
        with pytest.raises(InvalidInput, match="Mira is a character of the story"):
            await engine.join(CHANNEL, ROWAN, "rowan", character="Mi\u200bra")
        # ...and invisible marks: a variation selector, a grapheme joiner, a blank letter.
        for hidden in ("Mira\ufe0f", "Mi\u034fra", "Mira\u3164"):
            with pytest.raises(InvalidInput, match="Mira is a character of the story"):
                await engine.join(CHANNEL, ROWAN, "rowan", character=hidden)
        for lookalike in ("tilde", "\uff34\uff49\uff4c\uff44\uff45", "Tilde\ufe0f"):
            with pytest.raises(InvalidInput, match="Tilde is already played by ashley"):
                await engine.join(CHANNEL, ROWAN, "rowan", character=lookalike)
        # "Élise" typed with a combining accent is the same name as the one-letter "É" form.
        await engine.join(CHANNEL, ROWAN, "rowan", character="E\u0301lise")
        with pytest.raises(InvalidInput, match="Élise is already played by rowan"):
            await engine.join(CHANNEL, dana, "dana", character="\u00c9lise")
        for blank in ("\u3164", "\u2800\u2800", "\u200b"):
            with pytest.raises(InvalidInput, match="needs 1 to 40 characters"):
                await engine.join(CHANNEL, dana, "dana", character=blank)
        # The name is kept as the model will write it, so its lines are known as a player's.
        hilda = await engine.join(CHANNEL, dana, "dana", character="\u210cilda\u200b")
        assert hilda.character_name == "Hilda"
        await engine.leave(CHANNEL, dana)
        # A character nobody plays any more is taken up again, not doubled.
        await engine.leave(CHANNEL, ASH)
        again = await engine.join(CHANNEL, dana, "dana", character="Tilde")
        assert (again.character_key, again.description) == ("tilde", "A ferrywoman.")
        names = [c.name for c in await engine.characters(CHANNEL)]
        assert names.count("Tilde") == 1


async def test_an_arc_that_completes_early_skips_its_open_episodes(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    story = TEST_STORY.replace(
        'title = "Escape the Storm"\n', 'title = "Escape the Storm"\ncompletes_when = "flag.calm"\n'
    ).replace("door_open = false\n", "door_open = false\ncalm = false\n")
    assert story != TEST_STORY
    async with running_engine(tmp_path, llm_server.base_url, catalog_of(story)) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.set_flag(CHANNEL, MOD, "calm", True)
        [escape] = [a for a in await engine.arcs(CHANNEL) if a.key == "escape"]
        assert escape.status == "completed"
        assert [e.status for e in escape.episodes] == ["skipped", "skipped"]
        flags = {f.name for f in await engine.flags(CHANNEL)}
        assert "cellar_reached" not in flags  # the skipped episode's flags are not set


def _three_episodes(story: str = TEST_STORY) -> str:
    """The story with a third episode in its arc "escape"."""
    longer = story.replace(
        "completes_when = 'location == \"cellar\"'\n",
        'completes_when = \'location == "cellar"\'\n\n[[arcs.episodes]]\nkey = "lantern"\n'
        'title = "The Signal Lantern"\ngoal = "Light the lantern."\n'
        'completes_when = "flag.lantern_lit"\n',
    ).replace("door_open = false\n", "door_open = false\nlantern_lit = false\n")
    assert longer.count("[[arcs.episodes]]") == story.count("[[arcs.episodes]]") + 1
    return longer


async def _escape(engine: Any) -> list[str]:
    """The statuses of the episodes of the arc "escape", as /gm arc status shows them."""
    [escape] = [a for a in await engine.arcs(CHANNEL) if a.key == "escape"]
    return [e.status for e in escape.episodes]


async def test_reopening_an_episode_takes_its_arc_back_to_it(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog_of(_three_episodes())) as (
        engine,
        _,
    ):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.set_flag(CHANNEL, MOD, "door_open", True)
        await engine.complete_episode(CHANNEL, MOD, "escape", "below")
        assert await _escape(engine) == ["completed", "completed", "active"]
        await engine.unset_flag(CHANNEL, MOD, "door_open")  # its goal no longer holds
        changes = await engine.reopen_episode(CHANNEL, MOD, "escape", "the_door")
        # The door is the arc's one active episode; the later ones are to come again.
        assert await _escape(engine) == ["active", "locked", "locked"]
        lines = [c.describe() for c in changes]
        assert (
            "episode Escape the Storm / The Cellar Door: completed -> active: by a moderator"
            in lines
        )
        assert (
            "episode Escape the Storm / The Signal Lantern: active -> locked: "
            "the arc went back to The Cellar Door"
        ) in lines
        # Completing it again opens the next episode, not a second one beside the lantern.
        await engine.complete_episode(CHANNEL, MOD, "escape", "the_door")
        assert await _escape(engine) == ["completed", "active", "locked"]


async def test_episodes_edited_out_of_order_never_leave_two_active(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog_of(_three_episodes())) as (
        engine,
        _,
    ):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        assert await _escape(engine) == ["active", "locked", "locked"]
        with pytest.raises(
            InvalidInput,
            match=re.escape(
                "Reopening The Signal Lantern would leave Escape the Storm with two active "
                "episodes, The Cellar Door and The Signal Lantern; an arc runs one episode at "
                "a time. Complete The Cellar Door first, or reopen the episode the arc should "
                "be at (the ones after it go back to locked)."
            ),
        ):
            await engine.reopen_episode(CHANNEL, MOD, "escape", "lantern")
        with pytest.raises(  # completing Below would open the lantern beside the door
            InvalidInput,
            match="Completing Below would leave Escape the Storm with two active episodes, "
            "The Cellar Door and The Signal Lantern",
        ):
            await engine.complete_episode(CHANNEL, MOD, "escape", "below")
        assert await _escape(engine) == ["active", "locked", "locked"]
        # The last episode opens nothing: it may be marked done while the door is played.
        await engine.complete_episode(CHANNEL, MOD, "escape", "lantern")
        assert await _escape(engine) == ["active", "locked", "completed"]


async def test_reopening_an_episode_whose_goal_still_holds_says_why_not(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    story = TEST_STORY.replace(
        'title = "Escape the Storm"\n', 'title = "Escape the Storm"\ncompletes_when = "flag.calm"\n'
    ).replace("door_open = false\n", "door_open = false\ncalm = false\n")
    async with running_engine(tmp_path, llm_server.base_url, catalog_of(story)) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.set_flag(CHANNEL, MOD, "door_open", True)
        await engine.set_flag(CHANNEL, MOD, "cellar_reached", True)
        log_size = len(await engine.event_log(CHANNEL, limit=100))
        # Reopened, it would complete again at once and set cellar_reached back to false.
        with pytest.raises(InvalidInput) as refused:
            await engine.reopen_episode(CHANNEL, MOD, "escape", "the_door")
        assert str(refused.value) == (
            "Escape the Storm / The Cellar Door would be completed again at once: its goal "
            "`flag.door_open` still holds: door_open = true (set by a moderator before the "
            "first turn). Change that first, then reopen it."
        )
        assert await _escape(engine) == ["completed", "active"]
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["cellar_reached"] is True
        assert len(await engine.event_log(CHANNEL, limit=100)) == log_size  # nothing done
        # The same for an arc whose own condition completed it.
        await engine.set_flag(CHANNEL, MOD, "calm", True)
        with pytest.raises(
            InvalidInput,
            match=re.escape(
                "Escape the Storm would be completed again at once: its condition `flag.calm` "
                "still holds: calm = true (set by a moderator"
            ),
        ):
            await engine.reopen_episode(CHANNEL, MOD, "escape", "below")
        await engine.unset_flag(CHANNEL, MOD, "calm")
        await engine.reopen_episode(CHANNEL, MOD, "escape", "below")  # the arc goes on
        [escape] = [a for a in await engine.arcs(CHANNEL) if a.key == "escape"]
        assert (escape.status, await _escape(engine)) == ("active", ["completed", "active"])


async def test_setting_the_scene_where_it_is_brings_nobody_back(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.character_leave(CHANNEL, MOD, "vesna")
        changes = await engine.set_scene(CHANNEL, MOD, location="hall", weather="rain")
        assert [c.describe() for c in changes] == [
            "scene weather: storm -> rain: set by a moderator"
        ]
        assert "Vesna" not in {c.name for c in (await engine.scene(CHANNEL)).present}


async def test_moderator_values_are_checked_like_the_directors(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        with pytest.raises(InvalidInput, match="finite"):
            await engine.set_flag(CHANNEL, MOD, "odds", float("nan"))
        with pytest.raises(InvalidInput, match="1 to 200 characters"):
            await engine.set_flag(CHANNEL, MOD, "note", "x" * 201)
        with pytest.raises(InvalidInput, match="trust must be between"):
            await engine.set_relationship(CHANNEL, MOD, "mira", "vesna", trust=True)
        await engine.set_flag(CHANNEL, MOD, "  spaced  ", "a\x1b[31m red\nnote")
        assert {f.name: f.value for f in await engine.flags(CHANNEL)}["spaced"] == "a[31m red note"
        await engine.unset_flag(CHANNEL, MOD, " spaced ")  # trimmed as set_flag trims
        await engine.set_scene(CHANNEL, MOD, tone="dark\n\x1b[31mred")
        assert (await engine.scene(CHANNEL)).tone == "dark [31mred"
        await engine.set_flag(CHANNEL, MOD, "door_open", True)  # completes The Cellar Door
        await engine.set_flag(CHANNEL, MOD, "cellar_reached", True)
        with pytest.raises(InvalidInput, match="The Cellar Door is already completed"):
            await engine.complete_episode(CHANNEL, MOD, "escape", "the_door")
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["cellar_reached"] is True  # not set back by completing it again
        log_size = len(await engine.event_log(CHANNEL, limit=100))
        with pytest.raises(InvalidInput, match="Nothing to change"):
            await engine.set_flag(CHANNEL, MOD, "cellar_reached", True)
        with pytest.raises(InvalidInput, match="Nothing to change"):
            await engine.set_scene(CHANNEL, MOD, location="hall")
        assert len(await engine.event_log(CHANNEL, limit=100)) == log_size  # nothing logged


async def test_moderator_actions_are_changes_with_the_moderator_in_the_log(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        changes = await engine.set_flag(CHANNEL, MOD, "door_open", True)
        kinds = [(c.kind, c.target, c.after) for c in changes]
        assert ("flag", "door_open", True) in kinds
        assert ("episode", "escape/the_door", "completed") in kinds  # it opened the next
        assert "episode Escape the Storm / The Cellar Door: active -> completed" in [
            c.describe().split(": after")[0] for c in changes
        ]
        flags = {f.name: f for f in await engine.flags(CHANNEL)}
        assert (flags["door_open"].value, flags["door_open"].set_by) == (True, "moderator")
        # The flag the completed episode sets is the story's doing.
        assert flags["cellar_reached"].describe() == (
            "cellar_reached = false (set by the story before the first turn)"
        )
        await engine.set_relationship(CHANNEL, MOD, "mira", "Ash", trust=0.9)
        [rel] = [r for r in await engine.relationships(CHANNEL, "ash") if r.source_key == "mira"]
        assert rel.trust == 0.9
        arcs = {a.key: a for a in await engine.arcs(CHANNEL)}
        assert arcs["bond"].episodes[0].status == "completed"  # trust >= 0.3 completed it
        moved = await engine.set_scene(CHANNEL, MOD, location="cellar", weather="hail")
        # Every front end shows the story's names, not its keys.
        lines = [c.describe() for c in moved]
        assert "scene location: Common Hall -> Flooded Cellar: moved by a moderator" in lines
        assert any(
            line.startswith("location Mira: Common Hall -> Flooded Cellar") for line in lines
        )
        scene = await engine.scene(CHANNEL)
        assert (scene.location_name, scene.weather) == ("Flooded Cellar", "hail")
        # Everyone present came along, and Bram, who was down there, is in the scene now.
        assert {c.name for c in scene.present} == {"Mira", "Vesna", "Ash", "Bram"}
        await engine.character_leave(CHANNEL, MOD, "bram")
        await engine.character_enter(CHANNEL, MOD, "bram")
        assert "Bram" in {c.name for c in (await engine.scene(CHANNEL)).present}
        await engine.character_leave(CHANNEL, MOD, "Vesna")
        assert "Vesna" not in {c.name for c in (await engine.scene(CHANNEL)).present}
        in_cellar = re.escape("""goal `location == "cellar"` still holds. Change that first""")
        with pytest.raises(InvalidInput, match=in_cellar):
            await engine.reopen_episode(CHANNEL, MOD, "escape", "below")  # in the cellar
        await engine.unset_flag(CHANNEL, MOD, "door_open")
        assert "door_open" not in {f.name for f in await engine.flags(CHANNEL)}
        await engine.remove_player(CHANNEL, ASH, MOD)
        assert await engine.players(CHANNEL) == []
        log = await engine.event_log(CHANNEL, limit=50)
        edits = {e.summary: e.user_id for e in log if e.kind == "edit"}
        assert edits["moderator removed ashley"] == MOD  # who did it, for the moderators' log
        # Each edit logs its changes by the story's names, not what the moderator typed.
        [flag_edit] = [s for s in edits if s.startswith("flag door_open: false -> true")]
        assert "episode Escape the Storm / The Cellar Door: active -> completed" in flag_edit
        assert edits[flag_edit] == MOD


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.set_relationship(CHANNEL, MOD, "mira", "Zed", trust=0.1), "called 'Zed'"),
        (lambda e: e.set_relationship(CHANNEL, MOD, "mira", "ash", trust=2.0), "between -1"),
        (lambda e: e.set_scene(CHANNEL, MOD, location="attic"), "no location called 'attic'"),
        (lambda e: e.character_enter(CHANNEL, MOD, "mira"), "already in the scene"),
        (lambda e: e.unset_flag(CHANNEL, MOD, "nope"), "no flag 'nope'"),
        (lambda e: e.set_flag(CHANNEL, MOD, "Bad Name", 1), "lowercase letters"),
        (lambda e: e.complete_episode(CHANNEL, MOD, "escape", "roof"), "no episode called"),
        (lambda e: e.remove_player(CHANNEL, 999, MOD), "not playing"),
        (lambda e: e.relationships(CHANNEL, "Nobody"), "Known: "),
    ],
)
async def test_unknown_names_and_bad_values_are_named(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any, call: Any, message: str
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        with pytest.raises((NotFound, InvalidInput), match=message):
            await call(engine)


async def test_paused_story_takes_no_input_until_resumed(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        await engine.pause(CHANNEL, MOD)
        with pytest.raises(StoryPaused):
            await engine.submit_input(CHANNEL, ASH, "Hello?")
        await engine.resume(CHANNEL, MOD)
        await engine.submit_input(CHANNEL, ASH, "Hello?")
        await engine.wait_idle(CHANNEL)
        assert len(sink.results) == 1


async def test_a_story_ended_and_started_again_elsewhere_begins_afresh(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # The engine remembers each channel's playthrough and state between turns. Here another
    # engine on the same database (a second process, as a moderator tool would be) ends the
    # story and starts a new one, so this engine's memory is stale and must not be trusted:
    # the new story's first turn is turn 1 with none of the old story's transcript.
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.join(CHANNEL, ASH, "ashley", character="ash")
        for text in ("I knock.", "I knock again."):
            await engine.submit_input(CHANNEL, ASH, text)
            await engine.wait_idle(CHANNEL)
        async with running_engine(tmp_path, llm_server.base_url, catalog) as (other, _):
            await other.end(CHANNEL, MOD)
            await other.start(GUILD, CHANNEL, "inn", MOD)
            await other.join(CHANNEL, ASH, "ashley", character="ash")
        await engine.submit_input(CHANNEL, ASH, "I walk in from the storm.")
        await engine.wait_idle(CHANNEL)
        assert [r.turn_number for r in sink.results] == [1, 2, 1]
        prompt = llm_server.calls("scene")[-1].prompt
        assert "Ash: I walk in from the storm." in prompt
        assert "I knock" not in prompt


def _chain_story(length: int) -> str:
    """TEST_STORY with an arc "chain" whose episodes each set the flag the next completes on."""
    episodes = "".join(
        f'\n[[arcs.episodes]]\nkey = "step{n}"\ntitle = "Step {n}"\ngoal = "Go on."\n'
        f'completes_when = "flag.step{n}"\nsets_flags = {{ step{n + 1} = true }}\n'
        for n in range(1, length + 1)
    )
    flags = "".join(f"step{n} = false\n" for n in range(1, length + 2))
    story = TEST_STORY.replace("door_open = false\n", f"door_open = false\n{flags}")
    return f'{story}\n[[arcs]]\nkey = "chain"\ntitle = "The Chain"\n{episodes}'


async def test_a_chain_of_episodes_is_followed_to_its_end_and_shown_as_stored(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog_of(_chain_story(8))) as (
        engine,
        _,
    ):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.set_flag(CHANNEL, MOD, "step1", True)  # each step opens the next
        shown = [(a.status, [e.status for e in a.episodes]) for a in await engine.arcs(CHANNEL)]
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        engine.states = StateCache()  # read everything again from the database
        stored = [(a.status, [e.status for e in a.episodes]) for a in await engine.arcs(CHANNEL)]
        assert shown == stored
        assert flags == {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert stored[-1] == ("completed", ["completed"] * 8)  # followed to its end


async def test_reopening_in_an_arc_not_open_yet_whose_condition_holds_is_refused(
    tmp_path: Path, llm_server: LLMDouble
) -> None:
    story = TEST_STORY.replace(
        'title = "A Bond"\n', 'title = "A Bond"\ncompletes_when = "flag.calm"\n'
    ).replace("door_open = false\n", "door_open = false\ncalm = false\n")
    async with running_engine(tmp_path, llm_server.base_url, catalog_of(story)) as (engine, _):
        await engine.start(GUILD, CHANNEL, "inn", MOD)
        await engine.set_flag(CHANNEL, MOD, "calm", True)  # the arc "bond" is still locked
        with pytest.raises(InvalidInput, match=r"^A Bond would be completed again at once"):
            await engine.reopen_episode(CHANNEL, MOD, "bond", "trust_ash")
        [bond] = [a for a in await engine.arcs(CHANNEL) if a.key == "bond"]
        assert (bond.status, [e.status for e in bond.episodes]) == ("locked", ["locked"])
