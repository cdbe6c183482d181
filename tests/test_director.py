"""The director's answer, validated and clamped into edits."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state.snapshot import (
    CharacterState,
    FlagState,
    LocationState,
    RelationshipState,
    Snapshot,
)
from engine.stories.schema import StoryFile
from engine.turns.director import (
    MAX_STEP,
    DirectorPlan,
    Edit,
    director_instructions,
    plan_changes,
)
from engine.turns.director_output import (
    DirectorOutput,
    FlagChange,
    Learned,
    MoodChange,
    PresenceChange,
    RelationshipDelta,
    SceneChange,
)

RANGES = {"trust": (-1.0, 1.0), "affection": (-1.0, 1.0), "familiarity": (0.0, 1.0)}


def character(
    key: str, name: str, *, role: str = "npc", present: bool = True, location: str = "inn"
) -> CharacterState:
    return CharacterState(
        id=hash(key) % 1000,
        key=key,
        name=name,
        role=role,
        mood="calm",
        intent="",
        location_key=location,
        present=present,
        avatar_url=None,
        appearance="",
        personality="",
        traits=(),
        speech="",
        backstory="",
    )


def make_state() -> Snapshot:
    story = StoryFile.model_validate(
        {
            "story": {"title": "Test", "start_location": "inn"},
            "locations": [{"key": "inn", "name": "The Inn"}],
            "characters": [{"key": "mira", "name": "Mira"}],
        }
    )
    characters = [
        character("mira", "Mira"),
        character("bram", "Bram"),
        character("zora", "Zora", present=False, location="docks"),
        character("alice", "Alice", role="player"),
    ]
    relationships = {
        ("mira", "alice"): RelationshipState("mira", "alice", "friend", 0.95, -0.95, 0.9),
        ("bram", "alice"): RelationshipState("bram", "alice", "rival", 0.0, 0.0, 0.5),
    }
    return Snapshot(
        playthrough_id=1,
        guild_id=1,
        channel_id=1,
        status="active",
        turn_count=3,
        story_key="test",
        story=story,
        characters={c.key: c for c in characters},
        relationships=relationships,
        flags={"door_open": FlagState(True, "story", 0), "count": FlagState(1, "story", 0)},
        locations={
            "inn": LocationState(1, "inn", "The Inn", "", None),
            "docks": LocationState(2, "docks", "The Docks", "", None),
        },
        scene_location="inn",
        time_of_day="evening",
        weather="rain",
        tone="tense",
        arcs={},
        players={},
    )


def plan(**fields: Any) -> DirectorPlan:
    return plan_changes(DirectorOutput(**fields), make_state())


def edits_of(result: DirectorPlan, kind: str) -> dict[str, Any]:
    return {e.target: e.value for e in result.edits if e.kind == kind}


def test_parsing_is_tolerant() -> None:
    output = DirectorOutput.model_validate_json(
        '{"summary": "x", "relationships": null, "scene": {"weather": "fog", "extra": 1},'
        ' "flags": [{"name": "a", "value": 2}], "mystery": []}'
    )
    assert output.relationships == []
    assert output.scene == SceneChange(weather="fog")
    assert output.flags == [FlagChange(name="a", value=2)]
    assert DirectorOutput.model_validate({}) == DirectorOutput()


def test_near_misses_of_the_shape_are_read_and_bad_entries_dropped_alone() -> None:
    output = DirectorOutput.model_validate(
        {
            "flags": {"door_open": True, "count": 2},
            "presence": {"bram": True},
            "learned": {"mira": "Ash carries a letter."},
            "relationships": {"source": "mira", "target": "ash", "trust": 0.1},
            "moods": ["wary", {"character": "mira", "mood": "calm", "intent": ["x"]}],
            "scene": {"location": ["hall"], "weather": "fog"},
            "summary": 12,
        }
    )
    assert output.flags == [
        FlagChange(name="door_open", value=True),
        FlagChange(name="count", value=2),
    ]
    assert output.presence == [PresenceChange(character="bram", present=True)]
    assert output.learned == [Learned(character="mira", fact="Ash carries a letter.")]
    assert output.relationships == [RelationshipDelta(source="mira", target="ash", trust=0.1)]
    assert output.moods == [MoodChange(character="mira", mood="calm")]
    assert output.scene == SceneChange(weather="fog")
    assert output.summary == ""
    assert output.parse_notes == (
        "dropped a moods entry: not an object",
        "ignored intent of a moods entry: wrong type",
        "ignored location of the scene change: wrong type",
        "ignored summary: wrong type",
    )
    # The notes reach the plan, so the event log says what was left out.
    assert plan_changes(output, make_state()).notes[:4] == output.parse_notes


def test_runaway_lists_are_cut() -> None:
    output = DirectorOutput.model_validate(
        {"flags": [{"name": f"f{i}", "value": i} for i in range(500)]}
    )
    assert len(output.flags) == 100
    assert output.parse_notes == ("dropped flags entries over the first 100",)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["summary", "relationships", "flags", "learned", "presence", "moods", "scene", "importance"]
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(FIELDS | st.text(max_size=8), JSON, max_size=8))
def test_any_json_object_parses(data: dict[str, Any]) -> None:
    output = DirectorOutput.model_validate(data)
    plan_changes(output, make_state())  # and plans without raising


def test_an_empty_answer_changes_nothing() -> None:
    assert plan_changes(DirectorOutput(), make_state()) == DirectorPlan((), (), "", 0.5)


def test_a_delta_is_capped_per_turn() -> None:
    result = plan(
        relationships=[RelationshipDelta(source="Bram", target="alice", trust=0.4, reason="saved")]
    )
    assert result.edits == (Edit("trust", "bram->alice", 0.15, "saved", delta=0.4),)
    assert result.notes == ("clamped trust bram->alice +0.40 to +0.15",)
    huge = plan(relationships=[RelationshipDelta(source="Bram", target="alice", trust=1e300)])
    assert huge.notes == ("clamped trust bram->alice +1e+300 to +0.15",)  # not 300 digits


def test_steps_are_smaller_near_the_bounds_and_stay_in_range() -> None:
    result = plan(
        relationships=[
            RelationshipDelta(source="mira", target="ALICE", trust=0.15, affection=-0.15),
            RelationshipDelta(source="mira", target="alice", familiarity=0.1),
        ]
    )
    trust = edits_of(result, "trust")["mira->alice"]
    affection = edits_of(result, "affection")["mira->alice"]
    familiarity = edits_of(result, "familiarity")["mira->alice"]
    assert 0.95 < trust <= 1.0 and trust - 0.95 < 0.15
    assert -1.0 <= affection < -0.95 and -0.95 - affection < 0.15
    # familiarity's middle is 0.5: 0.9 is 80% of the way to the top.
    assert familiarity == pytest.approx(0.9 + 0.1 * (1 - 0.75 * 0.8))
    assert trust == round(trust, 3)


def test_steps_toward_the_middle_are_not_damped() -> None:
    result = plan(relationships=[RelationshipDelta(source="mira", target="alice", trust=-0.1)])
    assert edits_of(result, "trust") == {"mira->alice": 0.85}
    assert result.notes == ()


def test_deltas_for_one_pair_add_up_under_one_cap() -> None:
    result = plan(
        relationships=[
            RelationshipDelta(source="bram", target="alice", affection=0.1, reason="a"),
            RelationshipDelta(source="bram", target="alice", affection=0.1, reason="b"),
        ]
    )
    assert result.edits == (Edit("affection", "bram->alice", 0.15, "a; b", delta=0.2),)


def test_unknown_names_and_player_sources_are_dropped_with_notes() -> None:
    result = plan(
        relationships=[
            RelationshipDelta(source="Zed", target="alice", trust=0.1),
            RelationshipDelta(source="mira", target="Zed", trust=0.1),
            RelationshipDelta(source="alice", target="mira", trust=0.1),
            RelationshipDelta(source="mira", target="mira", trust=0.1),
            RelationshipDelta(source="bram", target="mira", trust=math.nan, affection=0.05),
        ],
        moods=[MoodChange(character="Alice", mood="angry"), MoodChange(character="Zed", mood="x")],
        presence=[PresenceChange(character="alice", present=False)],
    )
    assert result.edits == (Edit("affection", "bram->mira", 0.05, "", delta=0.05),)
    assert result.notes == (
        "dropped presence change: Alice is a player character",
        'dropped relationship: unknown character "Zed"',
        'dropped relationship: unknown character "Zed"',
        "dropped relationship: Alice is a player character",
        "dropped relationship: Mira towards themselves",
        "dropped trust bram->mira: not a finite number",
        "dropped mood: Alice is a player character",
        'dropped mood: unknown character "Zed"',
    )


def test_only_characters_in_the_scene_learn() -> None:
    result = plan(
        learned=[
            Learned(character="Mira", fact="  The key is under the mat. "),
            Learned(character="zora", fact="The key is under the mat."),
            Learned(character="nobody", fact="x"),
        ]
    )
    assert result.edits == (
        Edit(
            "knowledge",
            "mira",
            {"fact": "The key is under the mat.", "source": "told", "certainty": 1.0},
            "learned",
        ),
    )
    assert "dropped learned fact: Zora is not in the scene" in result.notes
    assert 'dropped learned fact: unknown character "nobody"' in result.notes


def test_a_character_entering_can_learn_and_joins_the_scene() -> None:
    result = plan(
        presence=[PresenceChange(character="Zora", present=True, reason="arrives")],
        learned=[Learned(character="zora", fact="Mira lied.")],
    )
    assert result.edits[:2] == (
        Edit("present", "zora", True, "arrives"),
        Edit("location", "zora", "inn", "arrives"),
    )
    assert result.edits[2].kind == "knowledge"


def test_leaving_and_mood_changes() -> None:
    result = plan(
        presence=[PresenceChange(character="bram", present=False, reason="storms out")],
        moods=[
            MoodChange(character="bram", mood="  furious ", intent="x" * 400),
            MoodChange(character="mira", mood="calm", intent=""),
        ],
    )
    assert result.edits == (
        Edit("present", "bram", False, "storms out"),
        Edit("mood", "bram", "furious", ""),
        Edit("intent", "bram", "x" * 300, ""),
    )
    assert result.notes == ("trimmed intent of bram to 300 characters",)


def test_scene_move_takes_players_and_leaves_unlisted_npcs_behind() -> None:
    result = plan(
        scene=SceneChange(location="The Docks", weather=" fog ", tone="tense", reason="they run"),
        presence=[PresenceChange(character="mira", present=True, reason="follows")],
    )
    assert result.edits == (
        Edit("scene", "location", "docks", "they run"),
        Edit("scene", "weather", "fog", "they run"),
        Edit("location", "alice", "docks", "moved with the scene"),
        Edit("location", "mira", "docks", "follows"),
        Edit("present", "bram", False, "stayed behind"),
        # Zora was already at the docks: the scene arriving there puts her in it.
        Edit("present", "zora", True, "was already there"),
    )
    assert result.notes == ()


def test_unknown_location_does_not_move_the_scene() -> None:
    result = plan(scene=SceneChange(location="Atlantis", time_of_day="night"))
    assert result.edits == (Edit("scene", "time_of_day", "night", ""),)
    assert result.notes == ('dropped scene move: unknown location "Atlantis"',)


def test_flags_are_validated() -> None:
    result = plan(
        flags=[
            FlagChange(name="door_open", value=True),
            FlagChange(name="count", value=True),
            FlagChange(name="met_mira", value="yes", reason="introduced"),
            FlagChange(name="Bad Name", value=1),
            FlagChange(name="a" * 49, value=1),
            FlagChange(name="long_text", value="x" * 201),
            FlagChange(name="gold", value=math.inf),
            FlagChange(name="huge", value=10**400),
            FlagChange(name="huge_float", value=1e300),  # as large, written as a float
        ]
    )
    assert result.edits == (
        Edit("flag", "count", True, ""),
        Edit("flag", "met_mira", "yes", "introduced"),
    )
    assert len(result.notes) == 6
    assert all(n.startswith("dropped flag") for n in result.notes)


def test_flags_the_story_declares_keep_their_kind() -> None:
    state = make_state()
    state.story = state.story.model_copy(
        update={"flags": {"door_open": False, "gold": 0, "fate": "unknown"}}
    )
    result = plan_changes(
        DirectorOutput(
            flags=[
                FlagChange(name="door_open", value="no"),
                FlagChange(name="gold", value="12"),
                FlagChange(name="fate", value=True),
                FlagChange(name="invented", value="FALSE"),  # not the story's: a boolean word
                FlagChange(name="mood", value="no"),  # ...but other text stays text
            ]
        ),
        state,
    )
    assert edits_of(result, "flag") == {
        "door_open": False,
        "gold": 12,
        "invented": False,
        "mood": "no",
    }
    assert result.notes == ('dropped flag "fate": must be text (as the story has it), not true',)
    wrong = plan_changes(DirectorOutput(flags=[FlagChange(name="door_open", value="maybe")]), state)
    assert wrong.edits == () and "must be true or false" in wrong.notes[0]


def test_importance_and_summary_are_clamped() -> None:
    result = plan(summary="  " + "word " * 200, importance=7)
    assert 490 < len(result.summary) <= 500 and result.summary == result.summary.strip()
    assert "trimmed summary to 500 characters" in result.notes
    assert result.importance == 1.0
    assert plan(importance=math.nan).importance == 0.5
    assert plan(importance=-2).importance == 0.0


def test_instructions_name_the_fields_and_ranges() -> None:
    text = director_instructions()
    for word in ("relationships", "flags", "learned", "presence", "moods", "scene", "importance"):
        assert f'"{word}"' in text
    assert str(MAX_STEP["trust"]) in text and str(MAX_STEP["familiarity"]) in text


NAMES = st.sampled_from(
    ["mira", "Mira", "BRAM", "zora", "alice", "Alice", "Zed", "inn", "The Docks", "", " mira "]
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=30) | st.sampled_from(["x" * 600, "\x00\ud800 a\nb"])
OUTPUTS = st.builds(
    DirectorOutput,
    summary=TEXT,
    relationships=st.lists(
        st.builds(
            RelationshipDelta,
            source=NAMES,
            target=NAMES,
            trust=FLOATS,
            affection=FLOATS,
            familiarity=FLOATS,
            reason=TEXT,
        ),
        max_size=5,
    ),
    flags=st.lists(
        st.builds(
            FlagChange,
            name=NAMES | st.sampled_from(["door_open", "count", "new_flag"]) | TEXT,
            value=st.booleans() | st.integers() | FLOATS | TEXT,
            reason=TEXT,
        ),
        max_size=4,
    ),
    learned=st.lists(st.builds(Learned, character=NAMES, fact=TEXT), max_size=3),
    presence=st.lists(
        st.builds(PresenceChange, character=NAMES, present=st.booleans(), reason=TEXT), max_size=3
    ),
    moods=st.lists(st.builds(MoodChange, character=NAMES, mood=TEXT, intent=TEXT), max_size=3),
    scene=st.none()
    | st.builds(
        SceneChange,
        location=st.none() | NAMES,
        time_of_day=st.none() | TEXT,
        weather=st.none() | TEXT,
        tone=st.none() | TEXT,
        reason=TEXT,
    ),
    importance=FLOATS,
)


def finite_numbers(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    return True


@settings(max_examples=200, deadline=None)
@given(output=OUTPUTS)
def test_any_answer_gives_safe_edits(output: DirectorOutput) -> None:
    state = make_state()
    result = plan_changes(output, state)
    assert 0.0 <= result.importance <= 1.0
    assert len(result.summary) <= 500
    players = {k for k, c in state.characters.items() if c.is_player}
    for edit in result.edits:
        assert finite_numbers(edit.value)
        assert edit.kind in {
            "trust",
            "affection",
            "familiarity",
            "flag",
            "knowledge",
            "present",
            "location",
            "mood",
            "intent",
            "scene",
        }
        if edit.kind in RANGES:
            low, high = RANGES[edit.kind]
            assert low <= edit.value <= high
            source, _, target = edit.target.partition("->")
            assert source in state.characters and target in state.characters
            assert source != target and source not in players
            before = getattr(state, edit.kind)(source, target)
            assert abs(edit.value - before) <= MAX_STEP[edit.kind] + 0.0005  # rounding
            assert edit.value != before
        elif edit.kind in ("present", "mood", "intent"):
            assert edit.target in state.characters and edit.target not in players
        elif edit.kind == "location":
            assert edit.value in state.locations
        elif edit.kind == "knowledge":
            entering = {e.target for e in result.edits if e.kind == "present" and e.value}
            assert state.characters[edit.target].present or edit.target in entering
            assert 0 < len(edit.value["fact"]) <= 500
        elif edit.kind == "flag":
            assert len(edit.target) <= 48
            assert not isinstance(edit.value, str) or len(edit.value) <= 200
        for text in (edit.reason, *(v for v in [edit.value] if isinstance(v, str))):
            text.encode("utf-8")  # no lone surrogates reach the database
