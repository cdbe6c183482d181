"""The story file format (TOML), as pydantic models.

Field-level rules live here (types, ranges, required fields, unknown fields rejected so typos
surface). Rules that look across entries (references between locations, characters, arcs,
conditions) live in `engine.stories.checks`. The format is documented in `docs/stories.md`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=48)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4_000)]
FlagValue = bool | int | float | Annotated[str, StringConstraints(max_length=200)]

NPC_ROLES = ("main", "support", "antagonist", "cameo", "npc")
Role = Literal["main", "support", "antagonist", "cameo", "npc"]

TRUST_RANGE = (-1.0, 1.0)
AFFECTION_RANGE = (-1.0, 1.0)
FAMILIARITY_RANGE = (0.0, 1.0)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoryMeta(_Entry):
    key: Key | None = None
    title: ShortText
    summary: LongText = ""
    opening: LongText = ""
    start_location: Key
    time_of_day: ShortText = "morning"
    weather: ShortText = "clear"
    tone: ShortText = "adventurous"
    content_notes: LongText = ""


class Location(_Entry):
    key: Key
    name: ShortText
    description: LongText = ""
    parent: Key | None = None


class Character(_Entry):
    key: Key
    name: ShortText
    role: Role = "npc"
    avatar: Annotated[str, StringConstraints(max_length=500)] | None = None
    appearance: LongText = ""
    personality: LongText = ""
    traits: list[ShortText] = Field(default_factory=list, max_length=20)
    speech: LongText = ""
    backstory: LongText = ""
    location: Key | None = None
    mood: ShortText = "calm"
    intent: LongText = ""
    knows: list[LongText] = Field(default_factory=list, max_length=50)

    @field_validator("avatar")
    @classmethod
    def _avatar_is_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value):
            raise ValueError("must be an http(s) URL")
        return value


class PlayerCharacter(_Entry):
    """A suggested player character; players may also bring their own."""

    key: Key
    name: ShortText
    description: LongText = ""
    appearance: LongText = ""


class Relationship(_Entry):
    source: Key
    target: Key
    kind: ShortText = "acquaintance"
    trust: float = Field(default=0.0, ge=TRUST_RANGE[0], le=TRUST_RANGE[1])
    affection: float = Field(default=0.0, ge=AFFECTION_RANGE[0], le=AFFECTION_RANGE[1])
    familiarity: float = Field(default=0.0, ge=FAMILIARITY_RANGE[0], le=FAMILIARITY_RANGE[1])
    note: LongText = ""
    mutual: bool = False


class Episode(_Entry):
    key: Key
    title: ShortText
    goal: LongText
    starts_when: LongText | None = None
    completes_when: LongText
    sets_flags: dict[Key, FlagValue] = Field(default_factory=dict)


class Arc(_Entry):
    key: Key
    title: ShortText
    summary: LongText = ""
    starts_when: LongText | None = None
    completes_when: LongText | None = None
    episodes: list[Episode] = Field(min_length=1, max_length=50)


class LoreEntry(_Entry):
    key: Key
    keys: list[ShortText] = Field(min_length=1, max_length=20)
    content: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4_000)
    ]
    location: Key | None = None


class StoryFile(_Entry):
    story: StoryMeta
    locations: list[Location] = Field(min_length=1, max_length=200)
    characters: list[Character] = Field(min_length=1, max_length=100)
    player_characters: list[PlayerCharacter] = Field(default_factory=list, max_length=50)
    relationships: list[Relationship] = Field(default_factory=list, max_length=2_000)
    flags: dict[Key, FlagValue] = Field(default_factory=dict)
    arcs: list[Arc] = Field(default_factory=list, max_length=50)
    lore: list[LoreEntry] = Field(default_factory=list, max_length=500)
