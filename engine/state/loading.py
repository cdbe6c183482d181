"""Loading a playthrough's `Snapshot`: nine prepared queries in one round trip on SQLite.

A snapshot is loaded when it is not cached: a story's first turn, after a restart, after a
join or an undo. Through the ORM that took 10-20 ms of CPU, which all channels paid at once
when many started together; as prepared queries it is about a millisecond.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from engine.db import models as m
from engine.db.statements import Call, Runner, scalar
from engine.state.snapshot import (
    ArcProgress,
    CharacterState,
    FlagState,
    LocationState,
    PlayerState,
    RelationshipState,
    Snapshot,
    StoryCache,
)

_PID: Any = bindparam("pid")


def _playthrough() -> Any:
    return (
        select(
            m.Playthrough.guild_id,
            m.Playthrough.channel_id,
            m.Playthrough.status,
            m.Playthrough.turn_count,
            m.Playthrough.story_id,
            m.Story.key,
        )
        .join(m.Story, m.Story.id == m.Playthrough.story_id)
        .where(m.Playthrough.id == _PID)
    )


def _story_data() -> Any:
    return select(m.Story.data).where(m.Story.id == bindparam("story"))


def _locations() -> Any:
    c = m.Location
    return (
        select(c.id, c.key, c.name, c.description, c.parent_id)
        .where(c.playthrough_id == _PID)
        .order_by(c.id)
    )


def _characters() -> Any:
    c = m.Character
    columns: tuple[Any, ...] = (c.id, c.key, c.name, c.role, c.mood, c.intent, c.location_id)
    columns += (c.present, c.avatar_url, c.appearance, c.personality, c.traits, c.speech)
    columns += (c.backstory,)
    return select(*columns).where(c.playthrough_id == _PID).order_by(c.id)


def _relationships() -> Any:
    r = m.Relationship
    return select(r.source_id, r.target_id, r.kind, r.trust, r.affection, r.familiarity).where(
        r.playthrough_id == _PID
    )


def _flags() -> Any:
    f = m.Flag
    return select(f.name, f.value, f.set_by, f.set_at_turn).where(f.playthrough_id == _PID)


def _scene() -> Any:
    s = m.Scene
    return select(s.location_id, s.time_of_day, s.weather, s.tone).where(s.playthrough_id == _PID)


def _arcs() -> Any:
    a = m.ArcState
    return select(a.id, a.arc_key, a.status, a.started_turn, a.completed_turn).where(
        a.playthrough_id == _PID
    )


def _episodes() -> Any:
    e = m.EpisodeState
    return (
        select(e.arc_state_id, e.episode_key, e.status)
        .where(e.playthrough_id == _PID)
        .order_by(e.id)
    )


def _players() -> Any:
    p = m.Player
    return select(p.user_id, p.display_name, p.character_id).where(
        p.playthrough_id == _PID, p.left_at.is_(None)
    )


def _character(row: tuple[Any, ...], location_key: dict[int, str]) -> CharacterState:
    """A row of `_characters()`, whose columns follow CharacterState's fields."""
    location = location_key.get(row[6]) if row[6] else None
    traits = tuple(str(t) for t in row[11] or ())
    return CharacterState(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        location,
        bool(row[7]),
        row[8],
        row[9],
        row[10],
        traits,
        row[12],
        row[13],
    )


QUERIES = (
    _playthrough,
    _locations,
    _characters,
    _relationships,
    _flags,
    _scene,
    _arcs,
    _episodes,
    _players,
)


async def load_snapshot(runner: Runner, playthrough_id: int, stories: StoryCache) -> Snapshot:
    calls: list[Call] = [(query, {"pid": playthrough_id}) for query in QUERIES]
    found = await runner.all_each(calls)
    playthrough, locations, characters, relationships, flags, scene, arcs, episodes, players = found
    if not playthrough:
        raise LookupError(f"no playthrough {playthrough_id}")
    guild_id, channel_id, status, turn_count, story_id, story_key = playthrough[0]
    story = stories.known(story_id)
    if story is None:
        story = stories.get(story_id, await scalar(runner, _story_data, story=story_id))

    location_key = {row[0]: row[1] for row in locations}
    key_of = {row[0]: row[1] for row in characters}
    progress: dict[int, dict[str, str]] = {row[0]: {} for row in arcs}
    for arc_state_id, episode_key, episode_status in episodes:
        progress.setdefault(arc_state_id, {})[episode_key] = episode_status
    scene_row = scene[0] if scene else (None, "", "", "")
    return Snapshot(
        playthrough_id=playthrough_id,
        guild_id=guild_id,
        channel_id=channel_id,
        status=status,
        turn_count=turn_count,
        story_key=story_key or "",
        story=story,
        characters={row[1]: _character(row, location_key) for row in characters},
        relationships={
            (key_of[source], key_of[target]): RelationshipState(
                key_of[source], key_of[target], kind, trust, affection, familiarity
            )
            for source, target, kind, trust, affection, familiarity in relationships
        },
        flags={name: FlagState(value, set_by, turn) for name, value, set_by, turn in flags},
        locations={
            key: LocationState(
                lid, key, name, description, location_key.get(parent) if parent else None
            )
            for lid, key, name, description, parent in locations
        },
        scene_location=location_key.get(scene_row[0]) if scene_row[0] else None,
        time_of_day=scene_row[1],
        weather=scene_row[2],
        tone=scene_row[3],
        arcs={
            key: ArcProgress(key, arc_status, started, completed, progress[arc_id])
            for arc_id, key, arc_status, started, completed in arcs
        },
        players={
            user_id: PlayerState(user_id, display_name, key_of[character_id])
            for user_id, display_name, character_id in players
        },
    )
