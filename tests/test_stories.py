"""Story files: every bundled story is valid; broken files are reported by file, entry, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.stories import StoryError, load_catalog, load_story, parse_story

STORIES = Path(__file__).resolve().parents[1] / "stories"

MINIMAL = """
[story]
title = "The Mill"
start_location = "yard"

[[locations]]
key = "yard"
name = "Mill yard"

[[locations]]
key = "loft"
name = "Grain loft"
parent = "yard"

[[characters]]
key = "bram"
name = "Bram"
location = "yard"

[[characters]]
key = "ida"
name = "Ida"
location = "loft"

[[relationships]]
source = "bram"
target = "ida"
trust = 0.4
mutual = true

[flags]
wheel_fixed = false

[[arcs]]
key = "repair"
title = "Repair the wheel"

[[arcs.episodes]]
key = "find_parts"
title = "Find the parts"
goal = "The players look for a new axle."
completes_when = 'flag.wheel_fixed and trust("bram", "ida") > 0.5'

[[lore]]
key = "wheel"
keys = ["wheel", "axle"]
content = "The wheel has turned since the founding of the village."
"""


def problems_of(text: str, name: str = "stories/test.toml") -> list[str]:
    with pytest.raises(StoryError) as caught:
        parse_story(text.encode(), name)
    return caught.value.problems


def test_bundled_stories_all_load() -> None:
    catalog = load_catalog(STORIES)
    assert catalog.problems == []
    assert len(catalog.stories) >= 2


@pytest.mark.parametrize("path", sorted(STORIES.glob("*.toml")), ids=lambda p: p.name)
def test_each_bundled_story_is_valid(path: Path) -> None:
    loaded = load_story(path)
    assert loaded.story.characters
    assert loaded.summary().startswith(str(path))


def test_bundled_stories_include_a_short_and_a_rich_one() -> None:
    stories = list(load_catalog(STORIES).stories.values())
    rich = [
        s
        for s in stories
        if len(s.story.characters) >= 6
        and any(c.role == "antagonist" for c in s.story.characters)
        and len(s.story.locations) >= 5
        and any(loc.parent for loc in s.story.locations)
        and len(s.story.arcs) >= 3
        and s.story.lore
        and s.story.player_characters
        and s.story.relationships
    ]
    short = [s for s in stories if len(s.story.characters) <= 4 and len(s.story.arcs) >= 1]
    assert rich, "a rich story: 6+ characters with an antagonist, 5+ locations, 3+ arcs"
    assert short, "a short story to try things out"


def test_minimal_story_loads_with_key_from_file_name() -> None:
    loaded = parse_story(MINIMAL.encode(), "stories/old_mill.toml")
    assert loaded.key == "old_mill"
    assert [c.key for c in loaded.story.characters] == ["bram", "ida"]


def test_toml_syntax_error_gives_the_line() -> None:
    broken = MINIMAL.replace('name = "Bram"', 'name = "Bram')
    [problem] = problems_of(broken)
    assert problem.startswith("stories/test.toml: TOML syntax error")
    line = MINIMAL.splitlines().index('name = "Bram"') + 1
    assert f"line {line}," in problem


def test_unknown_location_names_file_entry_and_field() -> None:
    problems = problems_of(MINIMAL.replace('location = "loft"', 'location = "cellar"'))
    assert problems == [
        'stories/test.toml: characters[1] (key "ida"): location: '
        '"cellar" is not a location of this story'
    ]


def test_several_errors_are_reported_together() -> None:
    broken = MINIMAL.replace("trust = 0.4", 'trust = "high"').replace(
        'name = "Ida"', 'name = "Ida"\nheight = 3'
    )
    problems = problems_of(broken)
    assert len(problems) == 2
    assert any("relationships[0]: trust: Input should be a valid number" in p for p in problems)
    assert any('characters[1] (key "ida"): height: is not a known field' in p for p in problems)


def test_missing_section_and_missing_field() -> None:
    no_story = MINIMAL.replace('[story]\ntitle = "The Mill"\nstart_location = "yard"\n', "")
    assert problems_of(no_story) == ["stories/test.toml: story: is required but missing"]
    no_title = MINIMAL.replace('title = "The Mill"\n', "")
    assert problems_of(no_title) == ["stories/test.toml: story: title: is required but missing"]


def test_out_of_range_relationship_value() -> None:
    [problem] = problems_of(MINIMAL.replace("trust = 0.4", "trust = 1.5"))
    assert "relationships[0]: trust: Input should be less than or equal to 1" in problem


def test_relationship_to_unknown_character_and_to_itself() -> None:
    problems = problems_of(MINIMAL.replace('target = "ida"', 'target = "bram"'))
    assert any("cannot have a relationship to itself" in p for p in problems)
    problems = problems_of(MINIMAL.replace('target = "ida"', 'target = "odo"'))
    assert any('target: "odo" is not a character of this story' in p for p in problems)


def test_condition_naming_unknown_flag_character_and_location() -> None:
    bad = MINIMAL.replace(
        'completes_when = \'flag.wheel_fixed and trust("bram", "ida") > 0.5\'',
        'completes_when = \'flag.wheel_fxed and present("odo") and location == "attic"\'',
    )
    problems = problems_of(bad)
    where = 'stories/test.toml: arcs[0] (key "repair"): episodes[0] (key "find_parts")'
    assert problems == [
        f'{where}: completes_when: flag "wheel_fxed" is not declared in [flags] nor set by '
        "any episode",
        f'{where}: completes_when: "odo" is not a character of this story',
        f'{where}: completes_when: "attic" is not a location of this story',
    ]


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('true')",
        "flag.wheel_fixed.__class__",
        "lambda: 1",
        "(" * 5000 + "turn > 1" + ")" * 5000,
        "turn >",
        "",
    ],
)
def test_hostile_or_broken_condition_is_a_clear_error(condition: str) -> None:
    escaped = condition.replace("\\", "\\\\").replace('"', '\\"')
    bad = MINIMAL.replace(
        'completes_when = \'flag.wheel_fixed and trust("bram", "ida") > 0.5\'',
        f'completes_when = "{escaped}"',
    )
    problems = problems_of(bad)
    assert len(problems) == 1
    assert 'episodes[0] (key "find_parts"): completes_when: ' in problems[0]


def test_flag_set_by_an_episode_may_be_used_in_a_condition() -> None:
    story = MINIMAL.replace(
        "completes_when = 'flag.wheel_fixed",
        "sets_flags = { miller_paid = true }\ncompletes_when = 'flag.miller_paid",
    )
    assert parse_story(story.encode(), "s.toml").story.arcs[0].episodes[0].sets_flags


def test_location_cycle_and_duplicate_keys() -> None:
    cyclic = MINIMAL.replace('name = "Mill yard"', 'name = "Mill yard"\nparent = "loft"')
    assert any("hierarchy has a cycle" in p for p in problems_of(cyclic))
    duplicate = MINIMAL.replace('key = "ida"', 'key = "bram"')
    assert any("'bram' is already used" in p for p in problems_of(duplicate))


def test_catalog_reports_broken_files_and_keeps_good_ones(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(MINIMAL)
    (tmp_path / "bad.toml").write_text("[story\n")
    catalog = load_catalog(tmp_path)
    assert list(catalog.stories) == ["good"]
    assert len(catalog.problems) == 1
    assert catalog.problems[0].startswith(f"{tmp_path / 'bad.toml'}: TOML syntax error")
