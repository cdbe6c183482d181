"""A read-only picture of one playthrough's state (loaded by `engine.state.loading`).

The turn pipeline builds its prompt from it, conditions are evaluated against it, and views
are made from it. It holds plain values, so it can outlive the session that loaded it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from engine.results import ChangeView
from engine.stories.schema import StoryFile


@dataclass(frozen=True)
class CharacterState:
    id: int
    key: str
    name: str
    role: str
    mood: str
    intent: str
    location_key: str | None
    present: bool
    avatar_url: str | None
    appearance: str
    personality: str
    traits: tuple[str, ...]
    speech: str
    backstory: str

    @property
    def is_player(self) -> bool:
        return self.role == "player"


@dataclass(frozen=True)
class RelationshipState:
    source: str
    target: str
    kind: str
    trust: float
    affection: float
    familiarity: float


@dataclass(frozen=True)
class FlagState:
    value: Any
    set_by: str
    set_at_turn: int


@dataclass(frozen=True)
class LocationState:
    id: int
    key: str
    name: str
    description: str
    parent_key: str | None


@dataclass(frozen=True)
class PlayerState:
    user_id: int
    display_name: str
    character_key: str


@dataclass(frozen=True)
class ArcProgress:
    key: str
    status: str
    started_turn: int | None
    completed_turn: int | None
    episodes: dict[str, str] = field(default_factory=dict)


@dataclass
class Snapshot:
    playthrough_id: int
    guild_id: int
    channel_id: int
    status: str
    turn_count: int
    story_key: str
    story: StoryFile
    characters: dict[str, CharacterState]
    relationships: dict[tuple[str, str], RelationshipState]
    flags: dict[str, FlagState]
    locations: dict[str, LocationState]
    scene_location: str | None
    time_of_day: str
    weather: str
    tone: str
    arcs: dict[str, ArcProgress]
    players: dict[int, PlayerState]

    # ConditionState (engine.rules.conditions)
    def flag(self, name: str) -> Any:
        state = self.flags.get(name)
        return None if state is None else state.value

    def _relationship(self, source: str, target: str) -> RelationshipState | None:
        return self.relationships.get((source, target))

    def trust(self, source: str, target: str) -> float:
        rel = self._relationship(source, target)
        return 0.0 if rel is None else rel.trust

    def affection(self, source: str, target: str) -> float:
        rel = self._relationship(source, target)
        return 0.0 if rel is None else rel.affection

    def familiarity(self, source: str, target: str) -> float:
        rel = self._relationship(source, target)
        return 0.0 if rel is None else rel.familiarity

    def present(self, character: str) -> bool:
        state = self.characters.get(character)
        return state is not None and state.present

    @property
    def location(self) -> str:
        return self.scene_location or ""

    @property
    def turn(self) -> int:
        return self.turn_count

    def value_of(self, kind: str, target: str) -> Any:
        """The value a flag, character or scene change of `kind` would change, as shown."""
        if kind == "flag":
            return self.flag(target)
        if kind == "scene":
            return self.scene_location if target == "location" else getattr(self, target, None)
        character = self.characters.get(target)
        if character is None:
            return None
        return getattr(character, "location_key" if kind == "location" else kind, None)

    def apply(self, change: ChangeView) -> None:
        """Follow a change made in the database, so conditions see it without a reload."""
        kind, target, value = change.kind, change.target, change.after
        if kind == "flag":
            if value is None:
                self.flags.pop(target, None)
            else:
                self.flags[target] = FlagState(value, change.actor, self.turn_count)
        elif kind in ("trust", "affection", "familiarity", "relationship"):
            source, _, other = target.partition("->")
            rel = self.relationships.get((source, other)) or RelationshipState(
                source, other, "acquaintance", 0.0, 0.0, 0.0
            )
            field_name = "kind" if kind == "relationship" else kind
            self.relationships[(source, other)] = replace(rel, **{field_name: value})
        elif kind in ("mood", "intent", "present", "location") and target in self.characters:
            field_name = "location_key" if kind == "location" else kind
            self.characters[target] = replace(self.characters[target], **{field_name: value})
        elif kind == "scene":
            setattr(self, "scene_location" if target == "location" else target, value)
        elif kind == "arc" and target in self.arcs:
            self.arcs[target] = replace(self.arcs[target], status=value)
        elif kind == "episode":
            arc_key, _, episode_key = target.partition("/")
            if arc_key in self.arcs:
                self.arcs[arc_key].episodes[episode_key] = value

    # Helpers
    def present_characters(self) -> list[CharacterState]:
        return [c for c in self.characters.values() if c.present]

    def player_character_keys(self) -> set[str]:
        return {p.character_key for p in self.players.values()}


def copy_snapshot(state: Snapshot) -> Snapshot:
    """A copy whose containers can be changed without touching the original."""
    return replace(
        state,
        characters=dict(state.characters),
        relationships=dict(state.relationships),
        flags=dict(state.flags),
        arcs={key: replace(arc, episodes=dict(arc.episodes)) for key, arc in state.arcs.items()},
        players=dict(state.players),
    )


class StateCache:
    """Snapshots of live playthroughs kept between turns, so a turn does not reload them.

    Correct only while this process is the one writer of its playthroughs (one process per
    shard of channels, design §9). Every write path either hands back the snapshot it
    changed (`put`, refused if anything else wrote since it was read) or `invalidate`s it.
    """

    def __init__(self) -> None:
        self._states: dict[int, Snapshot] = {}
        self._versions: dict[int, int] = {}

    def get(self, playthrough_id: int) -> tuple[Snapshot | None, int]:
        version = self._versions.get(playthrough_id, 0)
        state = self._states.get(playthrough_id)
        return (copy_snapshot(state) if state is not None else None), version

    def put(self, state: Snapshot, read_at: int) -> int | None:
        """Keep `state`, read at version `read_at`; its new version, or None when something
        else was put since (then neither is kept)."""
        pid = state.playthrough_id
        version = self._versions.get(pid, 0)
        self._versions[pid] = version + 1
        if version == read_at:
            self._states[pid] = copy_snapshot(state)
            return version + 1
        self._states.pop(pid, None)
        return None

    def invalidate(self, playthrough_id: int) -> None:
        self._versions[playthrough_id] = self._versions.get(playthrough_id, 0) + 1
        self._states.pop(playthrough_id, None)


class StoryCache:
    """Parsed story files by database id; parsing a large story per turn would be wasteful."""

    def __init__(self) -> None:
        self._stories: dict[int, StoryFile] = {}

    def get(self, story_id: int, data: dict[str, Any]) -> StoryFile:
        story = self._stories.get(story_id)
        if story is None:
            story = StoryFile.model_validate(data)
            self._stories[story_id] = story
        return story

    def known(self, story_id: int) -> StoryFile | None:
        return self._stories.get(story_id)
