"""Cross-reference checks of a story that already passed the schema.

Each problem is `(entry, message)`, e.g. `('characters[2] (key "bram")', 'location: "cellar"
is not a location of this story')`. All problems are collected, not just the first.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.rules.conditions import ConditionError, parse_condition
from engine.stories.schema import Arc, Episode, StoryFile

Problem = tuple[str, str]


def _label(section: str, index: int, key: str) -> str:
    return f'{section}[{index}] (key "{key}")'


def _duplicates(section: str, keys: Iterable[str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            problems.append(
                (_label(section, index, key), f"key: {key!r} is already used by entry {seen[key]}")
            )
        else:
            seen[key] = index
    return problems


def _check_locations(story: StoryFile) -> list[Problem]:
    problems = _duplicates("locations", (loc.key for loc in story.locations))
    parents = {loc.key: loc.parent for loc in story.locations}
    if story.story.start_location not in parents:
        problems.append(
            ("story", f'start_location: "{story.story.start_location}" is not a location')
        )
    for index, loc in enumerate(story.locations):
        if loc.parent is None:
            continue
        where = _label("locations", index, loc.key)
        if loc.parent not in parents:
            problems.append((where, f'parent: "{loc.parent}" is not a location of this story'))
            continue
        # Walk up the hierarchy; coming back to this location means a cycle.
        seen = {loc.key}
        current: str | None = loc.parent
        while current is not None and current in parents:
            if current in seen:
                problems.append((where, "parent: the location hierarchy has a cycle"))
                break
            seen.add(current)
            current = parents[current]
    return problems


def _check_characters(story: StoryFile) -> list[Problem]:
    problems = _duplicates("characters", (c.key for c in story.characters))
    taken = {c.key for c in story.characters}
    for index, pc in enumerate(story.player_characters):
        if pc.key in taken:
            problems.append(
                (
                    _label("player_characters", index, pc.key),
                    f"key: {pc.key!r} is already used by a character",
                )
            )
    problems += _duplicates("player_characters", (p.key for p in story.player_characters))
    locations = {loc.key for loc in story.locations}
    for index, character in enumerate(story.characters):
        if character.location is not None and character.location not in locations:
            problems.append(
                (
                    _label("characters", index, character.key),
                    f'location: "{character.location}" is not a location of this story',
                )
            )
    return problems


def _check_relationships(story: StoryFile) -> list[Problem]:
    people = {c.key for c in story.characters} | {p.key for p in story.player_characters}
    problems: list[Problem] = []
    pairs: dict[tuple[str, str], int] = {}
    for index, rel in enumerate(story.relationships):
        where = f"relationships[{index}] ({rel.source} -> {rel.target})"
        for field in ("source", "target"):
            value = getattr(rel, field)
            if value not in people:
                problems.append((where, f'{field}: "{value}" is not a character of this story'))
        if rel.source == rel.target:
            problems.append((where, "target: a character cannot have a relationship to itself"))
        directions = [(rel.source, rel.target)]
        if rel.mutual:
            directions.append((rel.target, rel.source))
        for pair in directions:
            if pair in pairs:
                problems.append(
                    (
                        where,
                        f"{pair[0]} -> {pair[1]} is already given by relationships[{pairs[pair]}]",
                    )
                )
            pairs[pair] = index
    return problems


def _check_condition(
    where: str, field: str, text: str | None, story: StoryFile, flags: set[str]
) -> list[Problem]:
    if text is None:
        return []
    try:
        condition = parse_condition(text)
    except ConditionError as error:
        return [(where, f"{field}: {error}")]
    people = {c.key for c in story.characters} | {p.key for p in story.player_characters}
    locations = {loc.key for loc in story.locations}
    problems: list[Problem] = []
    for name in sorted(condition.flags - flags):
        problems.append(
            (where, f'{field}: flag "{name}" is not declared in [flags] nor set by any episode')
        )
    for name in sorted(condition.characters - people):
        problems.append((where, f'{field}: "{name}" is not a character of this story'))
    for name in sorted(condition.locations - locations):
        problems.append((where, f'{field}: "{name}" is not a location of this story'))
    return problems


def _check_arcs(story: StoryFile) -> list[Problem]:
    problems = _duplicates("arcs", (arc.key for arc in story.arcs))
    flags = set(story.flags)
    for arc in story.arcs:
        for episode in arc.episodes:
            flags.update(episode.sets_flags)
    for index, arc in enumerate(story.arcs):
        where = _label("arcs", index, arc.key)
        problems += _check_arc(where, arc, story, flags)
    return problems


def _check_arc(where: str, arc: Arc, story: StoryFile, flags: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for field in ("starts_when", "completes_when"):
        problems += _check_condition(where, field, getattr(arc, field), story, flags)
    problems += [
        (f"{where}: {entry}", message)
        for entry, message in _duplicates("episodes", (e.key for e in arc.episodes))
    ]
    for index, episode in enumerate(arc.episodes):
        problems += _check_episode(
            f"{where}: {_label('episodes', index, episode.key)}", episode, story, flags
        )
    return problems


def _check_episode(
    where: str, episode: Episode, story: StoryFile, flags: set[str]
) -> list[Problem]:
    problems: list[Problem] = []
    for field in ("starts_when", "completes_when"):
        problems += _check_condition(where, field, getattr(episode, field), story, flags)
    return problems


def _check_lore(story: StoryFile) -> list[Problem]:
    problems = _duplicates("lore", (entry.key for entry in story.lore))
    locations = {loc.key for loc in story.locations}
    for index, entry in enumerate(story.lore):
        where = _label("lore", index, entry.key)
        if entry.location is not None and entry.location not in locations:
            problems.append(
                (where, f'location: "{entry.location}" is not a location of this story')
            )
    return problems


def check_story(story: StoryFile) -> list[Problem]:
    """Every cross-reference problem of a schema-valid story, in file order."""
    return (
        _check_locations(story)
        + _check_characters(story)
        + _check_relationships(story)
        + _check_arcs(story)
        + _check_lore(story)
    )
