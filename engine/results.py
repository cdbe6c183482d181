"""What the engine hands to front ends: frozen dataclasses, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FlagValue = bool | int | float | str
# Relationship values change in small steps, shown signed (+0.10); anything else, flags with
# numbers too, is shown as before -> after.
DELTA_KINDS = frozenset({"trust", "affection", "familiarity"})


@dataclass(frozen=True)
class StoryInfo:
    key: str
    title: str
    summary: str
    characters: int
    locations: int
    arcs: int
    suggested_characters: tuple[SuggestedCharacter, ...] = ()


@dataclass(frozen=True)
class SuggestedCharacter:
    key: str
    name: str
    description: str


@dataclass(frozen=True)
class PlaythroughInfo:
    id: int
    guild_id: int
    channel_id: int
    story_key: str
    story_title: str
    status: str
    turn_count: int
    opening: str = ""


@dataclass(frozen=True)
class PlayerInfo:
    user_id: int
    display_name: str
    character_key: str
    character_name: str
    description: str


@dataclass(frozen=True)
class CharacterView:
    key: str
    name: str
    role: str
    present: bool
    mood: str
    intent: str
    location: str | None
    avatar_url: str | None
    appearance: str
    player_user_id: int | None = None


@dataclass(frozen=True)
class SceneView:
    location_key: str | None
    location_name: str
    location_description: str
    time_of_day: str
    weather: str
    tone: str
    present: tuple[CharacterView, ...]
    turn_count: int


@dataclass(frozen=True)
class RelationshipView:
    source_key: str
    source_name: str
    target_key: str
    target_name: str
    kind: str
    trust: float
    affection: float
    familiarity: float

    def describe(self, arrow: str = "->") -> str:
        """`Mira -> Ash (friend): trust +0.40, affection +0.10, familiarity 0.35`."""
        return (
            f"{self.source_name} {arrow} {self.target_name} ({self.kind}): "
            f"trust {number(self.trust, signed=True)}, "
            f"affection {number(self.affection, signed=True)}, "
            f"familiarity {number(self.familiarity)}"
        )


def number(value: float, *, signed: bool = False) -> str:
    """Two decimals, or three when two would show a change or value as zero (+0.004, not
    +0.00; and never -0.00)."""
    value += 0.0  # -0.0 -> 0.0
    places = 3 if value != 0 and round(value, 2) == 0 else 2
    text = f"{value:+.{places}f}" if signed else f"{value:.{places}f}"
    return text.replace("-0.000", "+0.000" if signed else "0.000")


@dataclass(frozen=True)
class FlagView:
    name: str
    value: FlagValue
    set_by: str
    set_at_turn: int

    def describe(self) -> str:
        """`door_open = true (set by the director on turn 5)`."""
        who = _SETTERS.get(self.set_by, self.set_by)
        when = f"on turn {self.set_at_turn}" if self.set_at_turn else "before the first turn"
        return f"{self.name} = {_shown(self.value)} (set by {who} {when})"


_SETTERS = {
    "story": "the story",
    "director": "the director",
    "moderator": "a moderator",
    "player": "a player",
}


@dataclass(frozen=True)
class EpisodeView:
    key: str
    title: str
    goal: str
    status: str


@dataclass(frozen=True)
class ArcView:
    key: str
    title: str
    status: str
    episodes: tuple[EpisodeView, ...]


@dataclass(frozen=True)
class ChangeView:
    """One state change, shaped for display: `~ trust Mira -> alice +0.10: reason`."""

    kind: str
    target: str
    before: Any
    after: Any
    reason: str
    actor: str
    label: str = ""  # the target with names instead of keys, e.g. "Mira -> Alice"

    def describe(self) -> str:
        if (
            self.kind in DELTA_KINDS
            and isinstance(self.before, int | float)
            and isinstance(self.after, int | float)
        ):
            delta = float(self.after) - float(self.before)
            text = f"{self.kind} {self.label or self.target} {number(delta, signed=True)}"
        else:
            text = (
                f"{self.kind} {self.label or self.target}: "
                f"{_shown(self.before)} -> {_shown(self.after)}"
            )
        return f"{text}: {self.reason}" if self.reason else text


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as stories write them
    if isinstance(value, float):
        return f"{value:.15g}"  # 1e+15 and 2.5, not 1000000000000000.0 or 2.5000000000000004
    return "(unset)" if value is None else str(value)


@dataclass(frozen=True)
class Post:
    """One thing said in a turn: by the narrator (character_key None) or a character."""

    speaker: str
    text: str
    character_key: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True)
class TurnResult:
    channel_id: int
    turn_number: int
    posts: tuple[Post, ...]
    changes: tuple[ChangeView, ...]
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class RetryResult:
    """What `retry` did: wrote the turn again (`rewritten`) or wrote one whose attempt had
    failed or was cut off. `turn` is None when this attempt failed too; the channel was told."""

    turn_number: int
    rewritten: bool
    turn: TurnResult | None


@dataclass(frozen=True)
class EventView:
    kind: str
    summary: str
    turn_number: int | None
    user_id: int | None = None  # who did it (a moderator's edit, a player's undo)


@dataclass(frozen=True)
class Recap:
    turn_count: int
    # "(turn N) text" for each turn since the latest chapter, oldest first.
    summaries: tuple[str, ...]
    recent: tuple[Post, ...]
    # The story so far: the latest chapters, oldest first, as "(turns 1-16) text".
    chapters: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputReceipt:
    """A player's input is stored; it will be answered in the channel's next turn."""

    message_id: int
    duplicate: bool
