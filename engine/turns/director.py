"""The director's JSON, validated and clamped into edits.

After the scene, the director call returns JSON (`DirectorOutput`, parsed tolerantly by
`engine.turns.director_output`: a bad entry costs only that entry). `plan_changes` turns it
into `Edit`s in the change kinds of `engine.state.editor`, plus one note per thing dropped,
clamped or trimmed (parsing's notes first). It never raises and every number it yields is
finite. The documented rules and ranges:

- Names: characters and locations by key or display name, case-insensitive (a key wins over
  another entry's name). Unknown names are dropped with a note.
- Relationships: only a non-player source (a player character's feelings belong to its
  player); the target is any other known character. Deltas for one pair are added up; NaN or
  infinite ones are dropped. Each is capped to ±MAX_STEP per turn, then damped when it moves
  away from the middle: `step *= 1 - 0.75 * |current - middle| / half-range`, and clamped to
  the range: trust and affection in [-1, 1], familiarity in [0, 1] (middle 0.5). The edit
  holds the new absolute value rounded to 3 decimals; none when the value does not change.
- Flags: names match KEY_PATTERN (≤ 48 characters); string values ≤ 200 characters, numbers
  finite and within ±2**53; otherwise dropped. A flag the story declares (in `flags` or
  an episode's `sets_flags`) keeps its kind: "false"/"no"/"0" and 0 become false for a
  true/false flag ("true"/"yes"/"1" and 1 true), "3" becomes 3 for a number; any other
  value of the wrong kind is dropped. A flag the story does not declare takes any value, but
  the text "true" or "false" (any case) becomes true or false, since the text "false" would
  count as true in conditions. No edit for an unchanged value (same value and type: 1 is not
  True).
- Learned: only a character in the scene learns (present when the turn started, or brought in
  by this answer): knowledge with source "told", the fact trimmed to 500 characters.
- Presence (non-player characters only; the last entry per character wins): entering sets
  present and moves the character to the scene's location after this turn's scene change;
  leaving clears present and the character stays where it was. A character who is not
  present but speaks in the scene enters it ("spoke in the scene"), unless the director
  says they left: the model put them there, and they witness the turn.
- Moods and intents (non-player characters only): trimmed to 100 and 300 characters; an
  empty text means no change.
- Scene: the location must be known. When the scene moves, present player characters move
  along, present non-player characters not listed here as present=true are left behind
  (present=false, old location kept), and non-player characters already at the new location
  join the scene unless listed as present=false. Time of day, weather and tone: ≤ 100
  characters.
- Importance is clamped to [0, 1] (0.5 if not finite); the summary is trimmed to 500
  characters. Texts lose control characters, lone surrogates and runs of whitespace.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.state.snapshot import CharacterState, Snapshot
from engine.stories.schema import (
    AFFECTION_RANGE,
    FAMILIARITY_RANGE,
    KEY_PATTERN,
    TRUST_RANGE,
    FlagValue,
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

MAX_STEP = {"trust": 0.15, "affection": 0.15, "familiarity": 0.10}
RANGES = {"trust": TRUST_RANGE, "affection": AFFECTION_RANGE, "familiarity": FAMILIARITY_RANGE}
NEAR_BOUND_DAMPING = 0.75
MAX_FLAG_NAME, MAX_FLAG_TEXT, MAX_FLAG_INT = 48, 200, 2**53  # 2**53: exact in any JSON reader
MAX_FACT, MAX_MOOD, MAX_INTENT = 500, 100, 300
MAX_SCENE_TEXT, MAX_SUMMARY, MAX_REASON = 100, 500, 200

_FLAG_NAME = re.compile(KEY_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Edit:
    kind: str  # a change kind of engine.state.editor
    target: str
    value: Any
    reason: str
    # For relationship fields: the step asked for. The value is applied as a step from the
    # row as it is when the turn is written (`value` is that step from the turn's start),
    # so a moderator's edit made while the turn was written is not overwritten.
    delta: float | None = None


@dataclass(frozen=True)
class DirectorPlan:
    edits: tuple[Edit, ...]
    notes: tuple[str, ...]
    summary: str
    importance: float


def one_line(text: str) -> str:
    """One line of text: no lone surrogates, control characters or runs of whitespace."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return " ".join(_CONTROL.sub(" ", text).split())


def step_toward(current: float, delta: float, field: str) -> float:
    """The new value of a relationship field after `delta`, capped, damped and clamped."""
    low, high = RANGES[field]
    middle, half = (low + high) / 2, (high - low) / 2
    if not math.isfinite(current):
        current = middle
    current = min(max(current, low), high)
    cap = MAX_STEP[field]
    step = min(max(delta, -cap), cap)
    if step * (current - middle) > 0:
        step *= 1 - NEAR_BOUND_DAMPING * abs(current - middle) / half
    return round(min(max(current + step, low), high), 3)


class _Planner:
    def __init__(self, state: Snapshot) -> None:
        self.state = state
        self.edits: list[Edit] = []
        self.notes: list[str] = []
        self._characters = _lookup({c.key: c.name for c in state.characters.values()})
        self._locations = _lookup({loc.key: loc.name for loc in state.locations.values()})
        self.location = state.scene_location
        self.entering: set[str] = set()
        self._declared: dict[str, FlagValue] | None = None

    def edit(
        self, kind: str, target: str, value: Any, reason: str, delta: float | None = None
    ) -> None:
        self.edits.append(Edit(kind, target, value, one_line(reason)[:MAX_REASON], delta))

    def character(self, name: str, what: str, *, npc_only: bool = False) -> CharacterState | None:
        key = self._characters.get(one_line(name).lower())
        if key is None:
            self.notes.append(f'dropped {what}: unknown character "{one_line(name)[:60]}"')
            return None
        character = self.state.characters[key]
        if npc_only and character.is_player:
            self.notes.append(f"dropped {what}: {character.name} is a player character")
            return None
        return character

    def text(self, raw: str, limit: int, what: str) -> str:
        text = one_line(raw)
        if len(text) > limit:
            self.notes.append(f"trimmed {what} to {limit} characters")
            text = text[:limit].rstrip()
        return text

    def scene(self, change: SceneChange | None) -> None:
        if change is None:
            return
        where = one_line(change.location or "")
        if where:
            key = self._locations.get(where.lower())
            if key is None:
                self.notes.append(f'dropped scene move: unknown location "{where[:60]}"')
            elif key != self.state.scene_location:
                self.location = key
                self.edit("scene", "location", key, change.reason)
        for field in ("time_of_day", "weather", "tone"):
            raw = getattr(change, field)
            if raw is None:
                continue
            value = self.text(raw, MAX_SCENE_TEXT, f"scene {field}")
            if value and value != getattr(self.state, field):
                self.edit("scene", field, value, change.reason)

    def presence(self, changes: list[PresenceChange], speakers: Iterable[str] = ()) -> None:
        wanted: dict[str, tuple[bool, str]] = {}
        for key in speakers:
            character = self.state.characters.get(key)
            if character is not None and not character.present and not character.is_player:
                wanted[key] = (True, "spoke in the scene")
        for change in changes:
            character = self.character(change.character, "presence change", npc_only=True)
            if character is not None:
                wanted.pop(character.key, None)
                wanted[character.key] = (change.present, change.reason)
        moved = self.location != self.state.scene_location and self.location is not None
        if moved:
            for c in self.state.characters.values():
                if c.present and c.is_player and c.location_key != self.location:
                    self.edit("location", c.key, self.location, "moved with the scene")
                elif c.present and not c.is_player and not wanted.get(c.key, (False, ""))[0]:
                    reason = wanted.get(c.key, (False, "stayed behind"))[1] or "stayed behind"
                    wanted[c.key] = (False, reason)
                elif not c.present and not c.is_player and c.location_key == self.location:
                    # Whoever is where the scene moves to is in it, unless said otherwise.
                    wanted.setdefault(c.key, (True, "was already there"))
        for key, (present, reason) in wanted.items():
            character = self.state.characters[key]
            if present:
                self.entering.add(key)
                if not character.present:
                    self.edit("present", key, True, reason)
                if self.location is not None and character.location_key != self.location:
                    self.edit("location", key, self.location, reason)
            elif character.present:
                self.edit("present", key, False, reason)

    def relationships(self, deltas: list[RelationshipDelta]) -> None:
        totals: dict[tuple[str, str], dict[str, float]] = {}
        reasons: dict[tuple[str, str], list[str]] = {}
        for delta in deltas:
            source = self.character(delta.source, "relationship", npc_only=True)
            target = None if source is None else self.character(delta.target, "relationship")
            if source is None or target is None:
                continue
            if target.key == source.key:
                self.notes.append(f"dropped relationship: {source.name} towards themselves")
                continue
            pair = (source.key, target.key)
            sums = totals.setdefault(pair, dict.fromkeys(MAX_STEP, 0.0))
            for field in MAX_STEP:
                value = getattr(delta, field)
                if not math.isfinite(value):
                    self.notes.append(f"dropped {field} {pair[0]}->{pair[1]}: not a finite number")
                    continue
                sums[field] += value
            if delta.reason.strip():
                reasons.setdefault(pair, []).append(one_line(delta.reason))
        for pair, sums in totals.items():
            label = f"{pair[0]}->{pair[1]}"
            reason = "; ".join(dict.fromkeys(reasons.get(pair, [])))
            for field, delta_sum in sums.items():
                if delta_sum == 0:
                    continue
                if not math.isfinite(delta_sum):
                    self.notes.append(f"dropped {field} {label}: not a finite number")
                    continue
                current = getattr(self.state, field)(*pair)
                new = step_toward(current, delta_sum, field)
                applied = new - current if math.isfinite(current) else delta_sum
                if abs(applied - delta_sum) > 0.0005:
                    asked = f"{delta_sum:+.2f}" if abs(delta_sum) < 1e6 else f"{delta_sum:+.3g}"
                    self.notes.append(f"clamped {field} {label} {asked} to {applied:+.2f}")
                if new != current:
                    self.edit(field, label, new, reason, delta_sum)

    @property
    def declared(self) -> dict[str, FlagValue]:
        """The flags the story declares (its own and those its episodes set), by the value
        that gives their kind; a flag declared as two kinds is left out."""
        if self._declared is None:
            story = self.state.story
            found: dict[str, FlagValue] = {}
            mixed: set[str] = set()
            sets = [episode.sets_flags for arc in story.arcs for episode in arc.episodes]
            for flags in (story.flags, *sets):
                for name, value in flags.items():
                    if name in found and _flag_kind(found[name]) != _flag_kind(value):
                        mixed.add(name)
                    found.setdefault(name, value)
            self._declared = {k: v for k, v in found.items() if k not in mixed}
        return self._declared

    def flags(self, changes: list[FlagChange]) -> None:
        wanted: dict[str, tuple[bool | int | float | str, str]] = {}
        for change in changes:
            name, value = change.name.strip(), change.value
            if len(name) > MAX_FLAG_NAME or not _FLAG_NAME.fullmatch(name):
                self.notes.append(f'dropped flag "{one_line(name)[:60]}": not a valid flag name')
                continue
            if isinstance(value, str):
                value = value.encode("utf-8", "replace").decode("utf-8")
            problem = flag_value_problem(value)
            if problem:
                self.notes.append(f'dropped flag "{name}": {problem}')
                continue
            fitted = _as_declared(value, self.declared.get(name))
            if fitted is None:
                kind = _KIND_NAMES[_flag_kind(self.declared[name])]
                shown = one_line(json.dumps(value))[:40]
                why = f"must be {kind} (as the story has it), not {shown}"
                self.notes.append(f'dropped flag "{name}": {why}')
                continue
            wanted.pop(name, None)
            wanted[name] = (fitted, change.reason)
        for name, (value, reason) in wanted.items():
            before = self.state.flag(name)
            if before == value and type(before) is type(value):
                continue
            self.edit("flag", name, value, reason)

    def learned(self, facts: list[Learned]) -> None:
        seen: set[tuple[str, str]] = set()
        for item in facts:
            character = self.character(item.character, "learned fact")
            if character is None:
                continue
            if not character.present and character.key not in self.entering:
                self.notes.append(f"dropped learned fact: {character.name} is not in the scene")
                continue
            fact = self.text(item.fact, MAX_FACT, f"fact learned by {character.key}")
            if not fact:
                self.notes.append(f"dropped learned fact: empty fact for {character.name}")
                continue
            if (character.key, fact) in seen:
                continue
            seen.add((character.key, fact))
            value = {"fact": fact, "source": "told", "certainty": 1.0}
            self.edit("knowledge", character.key, value, "learned")

    def moods(self, changes: list[MoodChange]) -> None:
        for change in changes:
            character = self.character(change.character, "mood", npc_only=True)
            if character is None:
                continue
            for field, limit in (("mood", MAX_MOOD), ("intent", MAX_INTENT)):
                text = self.text(getattr(change, field), limit, f"{field} of {character.key}")
                if text and text != getattr(character, field):
                    self.edit(field, character.key, text, "")


def _lookup(names: dict[str, str]) -> dict[str, str]:
    """Lower-cased display names and keys to keys; a key wins over a display name."""
    table = {one_line(name).lower(): key for key, name in names.items()}
    table.update({key.lower(): key for key in names})
    table.pop("", None)
    return table


def plan_changes(
    output: DirectorOutput, state: Snapshot, speakers: Iterable[str] = ()
) -> DirectorPlan:
    """The safe edits for a director's answer, in the order they should be applied.
    `speakers` are the keys of the characters who spoke in the scene."""
    planner = _Planner(state)
    planner.notes.extend(output.parse_notes)
    planner.scene(output.scene)
    planner.presence(output.presence, speakers)
    planner.relationships(output.relationships)
    planner.flags(output.flags)
    planner.moods(output.moods)
    planner.learned(output.learned)
    importance = output.importance
    if not math.isfinite(importance):
        planner.notes.append("importance was not a finite number; using 0.5")
        importance = 0.5
    elif not 0 <= importance <= 1:
        planner.notes.append(f"clamped importance {importance:g} to [0, 1]")
        importance = min(max(importance, 0.0), 1.0)
    summary = planner.text(output.summary, MAX_SUMMARY, "summary")
    return DirectorPlan(tuple(planner.edits), tuple(planner.notes), summary, importance)


def director_instructions() -> str:
    """What the director is asked to return; the names and current values follow it."""
    return _INSTRUCTIONS


_INSTRUCTIONS = f"""You are the director of a group roleplay. From the players' input and \
the scene that followed, report how the story's state changed, as one JSON object:
{{"summary": "one or two sentences: what happened", "importance": 0.5,
 "relationships": [{{"source": "", "target": "", "trust": 0, "affection": 0, "familiarity": 0, \
"reason": ""}}],
 "flags": [{{"name": "snake_case", "value": true, "reason": ""}}],
 "learned": [{{"character": "", "fact": ""}}],
 "presence": [{{"character": "", "present": true, "reason": ""}}],
 "moods": [{{"character": "", "mood": "", "intent": ""}}],
 "scene": {{"location": null, "time_of_day": null, "weather": null, "tone": null, "reason": ""}}}}
Rules: name characters and locations by the keys below. Report only what the scene shows; \
leave lists empty and scene fields null when nothing changed.
- relationships: how a non-player character's feelings towards another character changed, as \
small deltas: trust and affection at most ±{MAX_STEP["trust"]} (range -1 to 1), familiarity at \
most ±{MAX_STEP["familiarity"]} (range 0 to 1); smaller near the ends of a range. Never a \
player character's own feelings.
- flags: story facts, snake_case names, true/false, a number or a short text.
- learned: a specific fact a character present was told or found out (≤ {MAX_FACT} characters).
- presence: a non-player character entering (true) or leaving (false). When the scene moves \
to another location, player characters come along, non-player characters stay behind \
unless listed here as present, and those already there join unless listed as absent.
- moods: a non-player character's new mood (a few words) and intent (one sentence).
- importance: 0 (small talk) to 1 (a turning point)."""


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0", ""}
_KIND_NAMES = {bool: "true or false", float: "a number", str: "text"}


def flag_value_problem(value: FlagValue) -> str | None:
    """Why a flag cannot hold `value` (None when it can), for the director's edits and a
    moderator's alike: numbers finite and within ±2**53, text up to MAX_FLAG_TEXT."""
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, int | float) and abs(value) > MAX_FLAG_INT:
        return "number too large"
    if isinstance(value, str) and len(value) > MAX_FLAG_TEXT:
        return f"text over {MAX_FLAG_TEXT} characters"
    return None


def _flag_kind(value: FlagValue) -> type:
    if isinstance(value, bool):
        return bool
    return float if isinstance(value, int | float) else str


def _as_declared(value: FlagValue, declared: FlagValue | None) -> FlagValue | None:
    """`value` as the kind of flag the story declared (a model writes "false" for false, or
    "3" for 3: the text "false" would count as true in conditions); None when it cannot be.
    Flags the story does not declare take any value, the words true and false as such."""
    if declared is None:
        word = value.strip().lower() if isinstance(value, str) else None
        return True if word == "true" else False if word == "false" else value
    kind = _flag_kind(declared)
    if kind is bool:
        if isinstance(value, str):
            word = value.strip().lower()
            return True if word in _TRUE else False if word in _FALSE else None
        return bool(value) if value in (0, 1) else None
    if kind is float:
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                return None
            if not math.isfinite(value) or abs(value) > MAX_FLAG_INT:
                return None
        if isinstance(declared, int) and float(value).is_integer():
            return int(value)
        return value
    return value if isinstance(value, str) else None
