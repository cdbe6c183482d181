"""Turns end to end: engine -> real openai client -> LLM double -> stored state and output."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.db import models as m
from engine.errors import InvalidInput
from engine.facade import Engine
from tests.engine_support import (
    CHANNEL,
    GUILD,
    MOD,
    TEST_STORY,
    catalog_of,
    running_engine,
)
from tests.llm_double import LLMDouble

ASH_USER, ROWAN_USER = 11, 12
WAIT = 10.0


def director(**fields: Any) -> str:
    return json.dumps({"summary": "Something happened.", **fields})


async def begin(engine: Engine, *players: tuple[int, str]) -> None:
    await engine.start(GUILD, CHANNEL, "inn", MOD)
    for user, character in players:
        await engine.join(CHANNEL, user, f"user{user}", character=character)


async def turn(engine: Engine, user: int, text: str, channel: int = CHANNEL) -> None:
    await engine.submit_input(channel, user, text)
    await asyncio.wait_for(engine.wait_idle(channel), WAIT)


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    return catalog_of(TEST_STORY)


async def test_full_turn_from_input_to_transcript(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("scene", 'Narrator: Thunder.\nMira: "Shut that door," she snaps.')
    llm_server.reply("director", director(summary="Ash arrived soaked; Mira was curt."))
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I knock the rain off my hat.")
        [result] = sink.results
        assert [(p.speaker, p.text) for p in result.posts] == [
            ("Narrator", "Thunder."),
            ("Mira", '"Shut that door," she snaps.'),
        ]
        assert result.posts[1].avatar_url == "https://example.invalid/mira.png"
        assert sink.streamed[(CHANNEL, 1)] == '"Shut that door," she snaps.'
        recap = await engine.recap(CHANNEL)
        assert [p.speaker for p in recap.recent] == ["Narrator", "Ash", "Narrator", "Mira"]
        assert recap.recent[1].text == "I knock the rain off my hat."
        assert recap.turn_count == 1
        prompt = llm_server.calls("scene")[0].prompt
        assert "Ash: I knock the rain off my hat." in prompt
        assert "The cellar door key hangs behind the bar." in prompt  # Mira's own knowledge
        assert "Something moves in the floodwater." not in prompt  # Bram is not here


async def test_three_characters_speak_and_one_arrives(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply(
        "scene",
        "Narrator: The trapdoor bangs open.\nBram: Water's rising.\nMira: Get up here.\n"
        "**Vesna:** How convenient.",
    )
    llm_server.reply(
        "director", director(presence=[{"character": "Bram", "present": True, "reason": "came up"}])
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I listen at the trapdoor.")
        speakers = [p.speaker for p in sink.results[0].posts]
        assert speakers == ["Narrator", "Bram", "Mira", "Vesna"]
        scene = await engine.scene(CHANNEL)
        assert {c.name for c in scene.present} == {"Mira", "Vesna", "Bram", "Ash"}


async def test_a_character_who_speaks_in_the_scene_is_in_it(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Bram is down in the cellar; the model has him speak in the hall anyway.
    llm_server.reply("scene", "Bram: I heard every word.\nMira: Bram!")
    llm_server.reply("director", director(summary="Bram came up from the cellar."))
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I whisper the password.")
        assert "present Bram: false -> true: spoke in the scene" in [
            c.describe() for c in sink.results[0].changes
        ]
        scene = await engine.scene(CHANNEL)
        assert "Bram" in {c.name for c in scene.present}
        await turn(engine, ASH_USER, "I nod to Bram.")
        prompt = llm_server.calls("scene")[-1].prompt
        assert "Bram came up from the cellar." in prompt.split("What Bram saw:")[1]


async def test_two_players_in_one_turn(tmp_path: Path, llm_server: LLMDouble, catalog: Any) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog, collect_window=0.3) as (
        engine,
        sink,
    ):
        await begin(engine, (ASH_USER, "ash"), (ROWAN_USER, "rowan"))
        await engine.submit_input(CHANNEL, ASH_USER, "I bar the door.")
        await engine.submit_input(CHANNEL, ROWAN_USER, "I pray aloud.", action=True)
        await asyncio.wait_for(engine.wait_idle(CHANNEL), WAIT)
        assert len(sink.results) == 1
        [call] = llm_server.calls("scene")
        assert "Ash: I bar the door." in call.prompt
        assert "Rowan: *I pray aloud.*" in call.prompt


async def test_absent_character_does_not_learn(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("director", director(summary="Ash showed Mira the sealed letter."))
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I show Mira the letter.")
        await engine.character_enter(CHANNEL, MOD, "Bram")
        await turn(engine, ASH_USER, "I wave Bram over.")
        prompt = llm_server.calls("scene")[1].prompt
        mira_part = prompt.split("What Mira saw:")[1].split("\n\n")[0]
        assert "Ash showed Mira the sealed letter." in mira_part
        bram_part = prompt.split("What Bram alone knows")[1].split("\n\n")[0]
        assert "Something moves in the floodwater." in bram_part
        assert "sealed letter" not in bram_part
        # The transcript still holds turn 1 (the narrator's record): its turns are numbered
        # as what each character saw is, and the rules say it is not shared memory.
        transcript = prompt.split("RECENT TRANSCRIPT:")[1]
        assert transcript.index("[the opening]\nNarrator: Rain hammers") < transcript.index(
            "[turn 1]\nAsh: I show Mira the letter."
        )
        assert "(turn 1) Ash showed Mira the sealed letter." in mira_part
        assert "a character knows of a turn only if they saw it" in prompt
        async with engine.db.read() as session:
            facts = (
                await session.execute(
                    select(m.Character.key, m.Knowledge.fact).join(
                        m.Character, m.Character.id == m.Knowledge.character_id
                    )
                )
            ).all()
        letter = {key for key, fact in facts if "sealed letter" in fact}
        assert letter == {"mira", "vesna"}


async def test_flag_from_the_director_opens_episodes(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply(
        "director",
        director(flags=[{"name": "door_open", "value": True, "reason": "Mira unlocked it"}]),
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        before = {a.key: a for a in await engine.arcs(CHANNEL)}
        assert before["escape"].episodes[0].status == "active"
        assert before["bond"].status == "locked"
        await turn(engine, ASH_USER, "I ask Mira for the key.")
        arcs = {a.key: a for a in await engine.arcs(CHANNEL)}
        assert [e.status for e in arcs["escape"].episodes] == ["completed", "active"]
        assert arcs["bond"].status == "active"
        assert arcs["bond"].episodes[0].status == "active"
        kinds = {(c.kind, c.target, c.after) for c in sink.results[0].changes}
        assert ("flag", "door_open", True) in kinds
        assert ("episode", "escape/the_door", "completed") in kinds
        # The next scene prompt carries the newly active goals.
        await turn(engine, ASH_USER, "Onward.")
        assert "Go down into the cellar." in llm_server.calls("scene")[1].prompt


async def test_a_flag_written_as_text_keeps_the_kind_the_story_gave_it(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Models write "false" for false; as text it would count as true and open the episode.
    llm_server.reply(
        "director",
        director(flags=[{"name": "door_open", "value": "false"}]),
        director(flags=[{"name": "door_open", "value": "maybe"}]),
        director(flags=[{"name": "door_open", "value": "TRUE"}]),
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I try the door.")
        await turn(engine, ASH_USER, "I try it again.")
        arcs = {a.key: a for a in await engine.arcs(CHANNEL)}
        assert arcs["escape"].episodes[0].status == "active"
        assert arcs["bond"].status == "locked"
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["door_open"] is False
        await turn(engine, ASH_USER, "I push hard.")
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["door_open"] is True
        arcs = {a.key: a for a in await engine.arcs(CHANNEL)}
        assert arcs["escape"].episodes[0].status == "completed"


async def _full_state(engine: Engine) -> dict[str, Any]:
    async with engine.db.read() as session:
        out: dict[str, Any] = {}
        for model in (m.Character, m.Relationship, m.Flag, m.Scene, m.ArcState, m.EpisodeState):
            rows = (await session.scalars(select(model).order_by(model.id))).all()
            out[model.__tablename__] = [
                {c.key: getattr(r, c.key) for c in model.__table__.columns} for r in rows
            ]
        out["knowledge"] = sorted(
            (await session.execute(select(m.Knowledge.character_id, m.Knowledge.fact))).all()
        )
        out["turn_count"] = (await session.scalars(select(m.Playthrough.turn_count))).all()
    return out


# "sqlalchemy": the hot-path statements through SQLAlchemy, as on databases other than SQLite.
@pytest.mark.parametrize("driver_statements", [True, False], ids=["driver", "sqlalchemy"])
async def test_undo_restores_every_value_exactly(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any, driver_statements: bool
) -> None:
    llm_server.reply(
        "director",
        director(summary="Ash arrived."),
        director(
            relationships=[
                {"source": "mira", "target": "ash", "trust": 0.1, "affection": -0.1},
                {"source": "vesna", "target": "ash", "familiarity": 0.2},  # they meet here
            ],
            flags=[{"name": "door_open", "value": True}, {"name": "storm_worse", "value": 2}],
            learned=[{"character": "vesna", "fact": "Ash carries a royal seal."}],
            presence=[{"character": "bram", "present": True}],
            moods=[{"character": "mira", "mood": "furious", "intent": "throw Vesna out"}],
            scene={"weather": "hail", "tone": "grim"},
        ),
    )
    async with running_engine(
        tmp_path, llm_server.base_url, catalog, driver_statements=driver_statements
    ) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I slam the seal on the table.")
        await engine.set_flag(CHANNEL, MOD, "moderator_mark", "kept")
        before = await _full_state(engine)
        await turn(engine, ASH_USER, "I demand a room.")
        assert len(sink.results[1].changes) >= 8
        assert await _full_state(engine) != before
        assert await engine.undo(CHANNEL) == 2
        assert await _full_state(engine) == before
        assert [p.text for p in (await engine.recap(CHANNEL)).recent][-1] != "I demand a room."


async def test_undo_keeps_what_a_moderator_changed_after_the_turn(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply(
        "director",
        director(
            relationships=[
                {"source": "mira", "target": "ash", "trust": 0.1},
                {"source": "vesna", "target": "ash", "familiarity": 0.2},  # they meet here
            ],
            flags=[{"name": "storm_worse", "value": 2}, {"name": "door_open", "value": True}],
            scene={"weather": "hail"},
        ),
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I tell the storm to get worse.")
        await engine.set_flag(CHANNEL, MOD, "storm_worse", 5)
        await engine.set_relationship(CHANNEL, MOD, "mira", "ash", trust=0.9)
        await engine.set_relationship(CHANNEL, MOD, "vesna", "ash", trust=0.8)
        await engine.set_scene(CHANNEL, MOD, weather="calm")
        assert await engine.undo(CHANNEL) == 1
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["storm_worse"] == 5  # the moderator's, not deleted with the turn's
        assert flags["door_open"] is False  # the turn's own change is undone
        rels = {(r.source_key, r.target_key): r for r in await engine.relationships(CHANNEL)}
        assert rels["mira", "ash"].trust == 0.9
        assert (rels["vesna", "ash"].trust, rels["vesna", "ash"].familiarity) == (0.8, 0.0)
        assert (await engine.scene(CHANNEL)).weather == "calm"
        log = [e.summary for e in await engine.event_log(CHANNEL)]
        assert any(s.startswith("undo kept newer values: ") for s in log)


async def test_retry_replaces_the_last_turn(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("scene", "Narrator: First telling.", "Narrator: Second telling.")
    llm_server.reply(
        "director",
        director(flags=[{"name": "door_open", "value": True}]),
        director(summary="Quiet."),
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I look around.")
        await engine.retry(CHANNEL)
        recap = await engine.recap(CHANNEL)
        texts = [p.text for p in recap.recent]
        assert texts[-2:] == ["I look around.", "Second telling."]
        assert "First telling." not in texts
        assert recap.turn_count == 1
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["door_open"] is False  # the first telling's flag was taken back
        assert "I look around." in llm_server.calls("scene")[1].prompt


@pytest.mark.parametrize("fault", ["malformed", "empty"])
async def test_unusable_director_output_changes_nothing(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any, fault: str
) -> None:
    llm_server.fail("director", fault)
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        rels = await engine.relationships(CHANNEL)
        flags = await engine.flags(CHANNEL)
        await turn(engine, ASH_USER, "I sit by the fire.")
        assert sink.results[0].posts  # the story goes on
        assert sink.results[0].changes == ()
        assert await engine.relationships(CHANNEL) == rels
        assert await engine.flags(CHANNEL) == flags
        log = await engine.event_log(CHANNEL)
        assert log[0].kind == "ai_decision"


@pytest.mark.parametrize(
    ("fault", "options", "message"),
    [
        ("500", {"times": 3}, "HTTP 500"),
        ("429", {"times": 3}, "rate-limited"),
        ("stall", {"after_chunks": 1}, "too long"),
    ],
)
async def test_llm_failures_notify_keep_input_and_retry_works(
    tmp_path: Path,
    llm_server: LLMDouble,
    catalog: Any,
    fault: str,
    options: dict[str, Any],
    message: str,
) -> None:
    llm_server.fail("scene", fault, **options)
    async with running_engine(
        tmp_path, llm_server.base_url, catalog, deadline=1.0, max_retries=0
    ) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I open the letter.")
        assert sink.results == []
        assert len(sink.notices) == 1
        assert message in sink.notices[0]
        assert "kept" in sink.notices[0]
        llm_server.faults.clear()
        llm_server.reply("scene", "Narrator: The seal cracks.")
        await engine.retry(CHANNEL)
        assert [p.text for p in sink.results[0].posts] == ["The seal cracks."]
        assert "Ash: I open the letter." in llm_server.calls("scene")[-1].prompt
        assert (await engine.recap(CHANNEL)).turn_count == 1


async def test_undo_after_a_failed_turn_takes_back_that_turn(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply("scene", "Narrator: One.", "Narrator: One again.")
    async with running_engine(tmp_path, llm_server.base_url, catalog, max_retries=0) as (
        engine,
        sink,
    ):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "First.")
        llm_server.fail("scene", "500")
        await turn(engine, ASH_USER, "Second.")
        assert len(sink.notices) == 1
        # The failed turn 2 is what is taken back, with its input; turn 1 stays.
        assert await engine.undo(CHANNEL) == 2
        recap = await engine.recap(CHANNEL)
        assert [p.text for p in recap.recent][-2:] == ["First.", "One."]
        # Nothing waits now: a retry writes turn 1 again, without "Second.".
        retried = await engine.retry(CHANNEL)
        assert (retried.turn_number, retried.rewritten) == (1, True)
        assert "Second." not in llm_server.calls("scene")[-1].prompt
        recent = [p.text for p in (await engine.recap(CHANNEL)).recent]
        assert recent[-2:] == ["First.", "One again."]


async def test_lines_for_a_player_character_are_never_posted(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply(
        "scene",
        "Narrator: Lightning.\nAsh: I draw my knife and grin.\nuser11: Me too.\nMira: Easy.",
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I watch Vesna.")
        posts = sink.results[0].posts
        assert [p.speaker for p in posts] == ["Narrator", "Mira"]
        assert all("knife" not in p.text for p in posts)
        assert any("Ash: I draw my knife" in n for n in sink.results[0].notes)


async def test_two_channels_run_in_parallel_and_each_stays_in_order(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.latency = 0.2
    llm_server.set_default(
        "scene", lambda body: "Narrator: " + body["messages"][-1]["content"][-40:]
    )
    other = CHANNEL + 1
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, _sink):
        await begin(engine, (ASH_USER, "ash"))
        await engine.start(GUILD, other, "inn", MOD)
        await engine.join(other, ROWAN_USER, "rowan", character="rowan")
        for n in range(3):
            await engine.submit_input(CHANNEL, ASH_USER, f"ash move {n}")
            await engine.submit_input(other, ROWAN_USER, f"rowan move {n}")
            await asyncio.wait_for(engine.wait_idle(), WAIT)
        assert llm_server.max_in_flight >= 2
        for channel, who in ((CHANNEL, "ash"), (other, "rowan")):
            recap = await engine.recap(channel, limit=20)
            inputs = [p.text for p in recap.recent if p.speaker != "Narrator"]
            assert inputs == [f"{who} move {n}" for n in range(3)]


async def test_bad_input_is_refused_and_never_sent(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        with pytest.raises(InvalidInput, match="empty"):
            await engine.submit_input(CHANNEL, ASH_USER, "   ")
        with pytest.raises(InvalidInput, match="empty"):  # zero-width spaces only
            await engine.submit_input(CHANNEL, ASH_USER, "\u200b\u200b \u200b")
        with pytest.raises(InvalidInput, match="keep one input to at most 2000"):
            await engine.submit_input(CHANNEL, ASH_USER, "x" * 2001)
        await asyncio.wait_for(engine.wait_idle(), WAIT)
        assert llm_server.calls() == []
        assert sink.results == []


async def test_model_output_mentions_are_kept_as_text(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.fail("scene", "everyone")
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "Hello?")
        assert "@everyone" in " ".join(p.text for p in sink.results[0].posts)


@pytest.mark.parametrize(
    "reply",
    [
        '{"relationships": "lots", "flags": {"door_open": [true]}}',
        "[1, 2, 3]",
        '{"flags": [{"name": 5, "value": [1]}], "presence": [{"character": null}]}',
        '{"relationships": [{"source": "mira", "target": "ash", "trust": "NaN"}]}',
        '{"scene": {"location": {"nested": true}}, "importance": "very"}',
        '{"summary": ' + '"x' * 3000 + '"}',
        "I think the door opens? {not json at all",
    ],
)
async def test_model_output_of_any_shape_never_corrupts_state(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any, reply: str
) -> None:
    llm_server.reply("director", reply)
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        rels = await engine.relationships(CHANNEL)
        flags = await engine.flags(CHANNEL)
        await turn(engine, ASH_USER, "I try the door.")
        assert len(sink.results) == 1  # the story went on
        assert await engine.relationships(CHANNEL) == rels
        assert await engine.flags(CHANNEL) == flags
        # And the next turn still works.
        await turn(engine, ASH_USER, "Again.")
        assert len(sink.results) == 2


async def test_a_partly_malformed_answer_keeps_its_good_parts(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    # Near-misses of the asked-for shape, as small models in json_object mode write them:
    # maps instead of lists, an entry without its target, a wrongly typed field.
    llm_server.reply(
        "director",
        json.dumps(
            {
                "summary": "Mira unlocked the door.",
                "flags": {"door_open": True},
                "relationships": [
                    {"source": "mira", "target": "ash", "trust": 0.1, "reason": "helped"},
                    {"source": "mira", "trust": 0.1},
                ],
                "moods": {"mira": "relieved", "vesna": {"mood": "sly", "intent": 7}},
                "importance": "high",
            }
        ),
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I help Mira with the lock.")
        flags = {f.name: f.value for f in await engine.flags(CHANNEL)}
        assert flags["door_open"] is True
        [rel] = [r for r in await engine.relationships(CHANNEL, "ash") if r.source_key == "mira"]
        assert rel.trust > 0.1  # from the story's 0.1, damped
        moods = {c.key: c.mood for c in await engine.characters(CHANNEL)}
        assert moods["mira"] == "relieved" and moods["vesna"] == "sly"
        notes = sink.results[0].notes
        assert "dropped a relationships entry: target missing or of the wrong type" in notes
        assert "ignored intent of a moods entry: wrong type" in notes
        assert "ignored importance: wrong type" in notes


async def test_the_director_moves_the_scene_with_everyone_it_takes_along(
    tmp_path: Path, llm_server: LLMDouble, catalog: Any
) -> None:
    llm_server.reply(
        "director",
        director(scene={"location": "cellar", "reason": "down the ladder"}, moods=[]),
    )
    async with running_engine(tmp_path, llm_server.base_url, catalog) as (engine, sink):
        await begin(engine, (ASH_USER, "ash"))
        await turn(engine, ASH_USER, "I climb down into the cellar.")
        scene = await engine.scene(CHANNEL)
        assert scene.location_name == "Flooded Cellar"
        # The player comes along, Bram was already down there; Mira and Vesna stay upstairs.
        assert {c.name for c in scene.present} == {"Ash", "Bram"}
        assert not [n for n in sink.results[0].notes if n.startswith("kept")]
