"""Every state change goes through `StateEditor`, which records it as a Change.

A change is `(kind, target, before, after)`. Each kind has a reader and a writer, so the same
writer applies a change (with `after`) and reverts it (with `before`): undo replays a turn's
changes backwards. Writing `None` removes the thing (an unset flag, a forgotten fact).

Kinds and targets (flags and arc/episode progress are stored with who and when, so that undo
restores them exactly; callers and ChangeViews see just the value or status):
- `flag` / flag name / any JSON value, None = unset
- `trust`, `affection`, `familiarity` / "source->target" (character keys) / float
- `relationship` / "source->target" / relationship kind (text), None = no relationship row;
  a trust/affection/familiarity change of a pair with no row records its creation first
- `mood`, `intent` / character key / text
- `present` / character key / bool
- `location` / character key / location key or None
- `scene` / "location", "time_of_day", "weather" or "tone" / text (a location key for location)
- `arc` / arc key / status; `episode` / "arc/episode" / status
- `knowledge` / character key / {"fact", "source", "turn", "certainty"} (added; undo removes it)
- `player` / user id / "active" or "left"
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from engine.db import models as m
from engine.db.models import utcnow
from engine.db.statements import Runner
from engine.results import ChangeView
from engine.state.rows import PlaythroughRows, Record

RELATIONSHIP_FIELDS = ("trust", "affection", "familiarity")
SCENE_FIELDS = ("location", "time_of_day", "weather", "tone")
FACT_COLUMNS = ("playthrough_id", "character_id", "fact", "source", "turn_number", "certainty")
CHANGE_COLUMNS = (
    "playthrough_id",
    "turn_id",
    "kind",
    "target",
    "before",
    "after",
    "reason",
    "actor",
    "actor_user_id",
    "reverted",
    "created_at",
)


def _insert_facts() -> Any:
    return insert(m.Knowledge).values({c: bindparam(c) for c in FACT_COLUMNS})


def _insert_changes() -> Any:
    return insert(m.Change).values({c: bindparam(c) for c in CHANGE_COLUMNS})


def _turn_changes() -> Any:
    return (
        select(m.Change.id, m.Change.kind, m.Change.target, m.Change.before, m.Change.after)
        .where(m.Change.turn_id == bindparam("turn"), m.Change.reverted.is_(False))
        .order_by(m.Change.id.desc())
    )


def _mark_reverted() -> Any:
    return update(m.Change).where(m.Change.id == bindparam("change_id")).values(reverted=True)


def _forget_fact() -> Any:
    one = (
        select(m.Knowledge.id)
        .where(
            m.Knowledge.character_id == bindparam("character"),
            m.Knowledge.fact == bindparam("fact"),
            m.Knowledge.source == bindparam("source"),
            m.Knowledge.turn_number == bindparam("turn"),
        )
        .limit(1)
        .scalar_subquery()
    )
    return delete(m.Knowledge).where(m.Knowledge.id == one)


class StateEditor:
    def __init__(
        self,
        runner: Runner,
        playthrough_id: int,
        turn_count: int,
        *,
        actor: str,
        actor_user_id: int | None = None,
        turn_id: int | None = None,
    ) -> None:
        self.runner = runner
        self.playthrough_id = playthrough_id
        self.turn_count = turn_count
        self.actor = actor
        self.actor_user_id = actor_user_id
        self.turn_id = turn_id
        self.changes: list[ChangeView] = []
        self.rows = PlaythroughRows(runner, playthrough_id)
        # Append-only rows, inserted in one statement each by `save()`.
        self._pending: list[dict[str, Any]] = []
        self._facts: list[dict[str, Any]] = []
        self.facts_saved: list[dict[str, Any]] = []  # knowledge rows written, in order
        self._readers: dict[str, Callable[[str], Awaitable[Any]]] = {
            "flag": self._get_flag,
            "relationship": self._get_relationship_kind,
            "mood": self._get_character_field("mood"),
            "intent": self._get_character_field("intent"),
            "present": self._get_character_field("present"),
            "location": self._get_character_location,
            "scene": self._get_scene,
            "arc": self._get_arc,
            "episode": self._get_episode,
            "knowledge": self._get_knowledge,
            "player": self._get_player,
        }
        for name in RELATIONSHIP_FIELDS:
            self._readers[name] = self._get_relationship_value(name)

    # --- public ------------------------------------------------------------------------

    async def get(self, kind: str, target: str) -> Any:
        return await self._readers[kind](target)

    async def set(
        self, kind: str, target: str, value: Any, reason: str = "", *, actor: str | None = None
    ) -> ChangeView | None:
        """Apply one change and record it; a change to the same value records nothing.
        `actor` names who made it when that is not this editor's actor (the story, for the
        flags an episode sets when it completes)."""
        return await self._set(kind, target, await self.get(kind, target), value, reason, actor)

    async def set_if_still(
        self, kind: str, target: str, expected: Any, value: Any, reason: str = ""
    ) -> bool:
        """Like `set`, while the value is still `expected` (what the caller planned from);
        False, changing nothing, when someone else changed it meanwhile."""
        before = await self.get(kind, target)
        if not _same(_shown(kind, before), expected):
            return False
        await self._set(kind, target, before, value, reason)
        return True

    async def _set(
        self,
        kind: str,
        target: str,
        before: Any,
        value: Any,
        reason: str,
        actor: str | None = None,
    ) -> ChangeView | None:
        shown = _shown(kind, before)
        if _same(shown, value):
            return None
        actor = actor or self.actor
        if kind in RELATIONSHIP_FIELDS and await self._relationship(target) is None:
            # The pair meets here: its row is a change of its own, so undo removes it again.
            await self._set("relationship", target, None, "acquaintance", reason, actor)
        after = self._stored(kind, value, before, actor)
        await self._write(kind, target, after)
        return await self._record(kind, target, before, after, shown, value, reason, actor)

    async def witness(self, keys: list[str], fact: dict[str, Any], reason: str) -> None:
        """Every character in `keys` learns `fact`."""
        for key in keys:
            await self._write("knowledge", key, fact)
            await self._record("knowledge", key, None, fact, None, fact, reason)

    async def save(self) -> None:
        """Write the changed rows, the facts and the Change rows: a statement per kind."""
        await self.rows.flush()
        facts, self._facts = self._facts, []
        await self.runner.run_many(_insert_facts, facts)
        self.facts_saved += facts
        pending, self._pending = self._pending, []
        await self.runner.run_many(_insert_changes, pending)

    async def _record(
        self,
        kind: str,
        target: str,
        before: Any,
        after: Any,
        shown: Any,
        value: Any,
        reason: str,
        actor: str | None = None,
    ) -> ChangeView:
        actor = actor or self.actor
        self._pending.append(
            {
                "playthrough_id": self.playthrough_id,
                "turn_id": self.turn_id,
                "kind": kind,
                "target": target,
                "before": before,
                "after": after,
                "reason": reason,
                "actor": actor,
                "actor_user_id": self.actor_user_id,
                "reverted": False,
                "created_at": utcnow(),
            }
        )
        view = ChangeView(
            kind, target, shown, value, reason, actor, await self._label(kind, target)
        )
        self.changes.append(view)
        return view

    async def revert_turn(self, turn_id: int) -> list[str]:
        """Undo every change of a turn, newest first. A value changed again since (by a
        moderator, mostly) keeps its newer value, as does a relationship row that holds
        values set since; returns those kept, as "kind target"."""
        rows = await self.runner.all(_turn_changes, turn=turn_id)
        await self.save()
        kept: list[str] = []
        for _, kind, target, before, after in rows:
            if kind == "knowledge":
                await self._forget(target, after)
                continue
            now = _shown(kind, await self.get(kind, target))
            changed_since = not _still(kind, now, _shown(kind, after))
            if changed_since or (
                kind == "relationship" and before is None and await self._has_values(target)
            ):
                kept.append(f"{kind} {target}")
            else:
                await self._write(kind, target, before)
        await self.rows.flush()
        await self.runner.run_many(_mark_reverted, [{"change_id": row[0]} for row in rows])
        return kept

    async def _has_values(self, pair: str) -> bool:
        """Whether a relationship holds anything but the values it was created with."""
        return any([await self.get(field, pair) != 0.0 for field in RELATIONSHIP_FIELDS])

    def _stored(self, kind: str, value: Any, before: Any, actor: str) -> Any:
        """What a Change stores: flags and progress keep who/when, so undo is exact."""
        turn = self.turn_count
        if kind == "flag" and value is not None:
            return {
                "value": value,
                "set_by": actor,
                "set_by_user_id": self.actor_user_id,
                "set_at_turn": turn,
            }
        if kind == "knowledge" and value is not None:
            return {"source": "witnessed", "certainty": 1.0, "turn": turn, **value}
        if kind in ("arc", "episode"):
            started = before["started_turn"] if before else None
            return {
                "status": value,
                "started_turn": None if value == "locked" else (started or turn),
                "completed_turn": turn if value == "completed" else None,
            }
        return value

    async def _label(self, kind: str, target: str) -> str:
        """The target as people read it: character names instead of keys."""
        if kind in RELATIONSHIP_FIELDS or kind == "relationship":
            source, other = await self._pair(target)
            return f"{source['name']} -> {other['name']}"
        if kind in ("mood", "intent", "present", "location", "knowledge"):
            return str((await self.character(target))["name"])
        return target

    # --- lookups -----------------------------------------------------------------------

    async def character(self, key: str) -> Record:
        return await self.rows.character(key)

    async def _pair(self, target: str) -> tuple[Record, Record]:
        source, _, other = target.partition("->")
        return await self.character(source), await self.character(other)

    async def _relationship(self, target: str) -> Record | None:
        source, other = await self._pair(target)
        return (await self.rows.relationships()).get((source["id"], other["id"]))

    async def _arc_row(self, key: str) -> Record:
        row = (await self.rows.arcs()).get(key)
        if row is None:
            raise LookupError(f"no arc {key!r}")
        return row

    async def _episode_row(self, target: str) -> Record:
        arc_key, _, episode_key = target.partition("/")
        return await self.rows.episode(arc_key, episode_key)

    # --- readers -----------------------------------------------------------------------

    async def _get_flag(self, name: str) -> Any:
        row = (await self.rows.flags()).get(name)
        if row is None:
            return None
        return {
            "value": row["value"],
            "set_by": row["set_by"],
            "set_by_user_id": row["set_by_user_id"],
            "set_at_turn": row["set_at_turn"],
        }

    def _get_relationship_value(self, name: str) -> Callable[[str], Awaitable[Any]]:
        async def read(target: str) -> Any:
            row = await self._relationship(target)
            return 0.0 if row is None else row[name]

        return read

    async def _get_relationship_kind(self, target: str) -> Any:
        row = await self._relationship(target)
        return None if row is None else row["kind"]

    def _get_character_field(self, name: str) -> Callable[[str], Awaitable[Any]]:
        async def read(key: str) -> Any:
            return (await self.character(key))[name]

        return read

    async def _get_character_location(self, key: str) -> Any:
        return await self.rows.location_key((await self.character(key))["location_id"])

    async def _get_scene(self, field: str) -> Any:
        scene = await self.rows.scene()
        if field == "location":
            return await self.rows.location_key(scene["location_id"])
        return scene[field]

    async def _get_arc(self, key: str) -> Any:
        return _progress(await self._arc_row(key))

    async def _get_episode(self, target: str) -> Any:
        return _progress(await self._episode_row(target))

    async def _get_knowledge(self, target: str) -> Any:
        return None  # facts are only ever added (and taken back by undo)

    async def _get_player(self, user_id: str) -> Any:
        row = await self.rows.latest_player(int(user_id))
        if row is None:
            return None
        return "active" if row["left_at"] is None else "left"

    # --- writers -----------------------------------------------------------------------

    async def _write(self, kind: str, target: str, value: Any) -> None:
        rows = self.rows
        if kind == "flag":
            flags = await rows.flags()
            row = flags.get(target)
            if value is None:
                if row is not None:
                    await rows.delete("flags", row)
                    del flags[target]
                return
            fields = {
                "value": value["value"],
                "set_by": value["set_by"],
                "set_by_user_id": value["set_by_user_id"],
                "set_at_turn": value["set_at_turn"],
            }
            if row is None:
                new = {"playthrough_id": self.playthrough_id, "name": target, **fields}
                flags[target] = await rows.insert("flags", new)
            else:
                rows.update("flags", row, **fields)
        elif kind in RELATIONSHIP_FIELDS or kind == "relationship":
            await self._write_relationship(kind, target, value)
        elif kind in ("mood", "intent", "present"):
            rows.update("characters", await self.character(target), **{kind: value})
        elif kind == "location":
            location_id = await rows.location_id(value)
            rows.update("characters", await self.character(target), location_id=location_id)
        elif kind == "scene":
            scene = await rows.scene()
            if target == "location":
                rows.update("scenes", scene, location_id=await rows.location_id(value))
            else:
                rows.update("scenes", scene, **{target: value})
        elif kind == "arc":
            rows.update("arc_states", await self._arc_row(target), **_progress_fields(value))
        elif kind == "episode":
            row = await self._episode_row(target)
            rows.update("episode_states", row, **_progress_fields(value))
        elif kind == "knowledge":
            await self._write_knowledge(target, value)
        elif kind == "player":
            player = await rows.latest_player(int(target))
            if player is not None:
                left_at = None if value == "active" else datetime.now(UTC)
                rows.update("players", player, left_at=left_at)
        else:
            raise ValueError(f"unknown change kind {kind!r}")

    async def _write_relationship(self, kind: str, target: str, value: Any) -> None:
        rows = self.rows
        source, other = await self._pair(target)
        relationships = await rows.relationships()
        pair = (source["id"], other["id"])
        rel = relationships.get(pair)
        if kind == "relationship" and value is None:
            if rel is not None:
                await rows.delete("relationships", rel)
                del relationships[pair]
            return
        if rel is None:
            new = {
                "playthrough_id": self.playthrough_id,
                "source_id": source["id"],
                "target_id": other["id"],
                "kind": "acquaintance",
                "trust": 0.0,
                "affection": 0.0,
                "familiarity": 0.0,
                "history": [],
            }
            rel = relationships[pair] = await rows.insert("relationships", new)
        if kind == "relationship":
            rows.update("relationships", rel, kind=value)
        else:
            rows.update("relationships", rel, **{kind: float(value)})

    async def _write_knowledge(self, key: str, value: Any) -> None:
        character = await self.character(key)
        self._facts.append(
            {
                "playthrough_id": self.playthrough_id,
                "character_id": character["id"],
                "fact": value["fact"],
                "source": value.get("source", "witnessed"),
                "turn_number": value.get("turn", self.turn_count),
                "certainty": value.get("certainty", 1.0),
            }
        )

    async def _forget(self, key: str, value: dict[str, Any]) -> None:
        """Take back one fact learned by a change (identical facts are interchangeable)."""
        character = await self.character(key)
        await self.runner.run(
            _forget_fact,
            character=character["id"],
            fact=value["fact"],
            source=value.get("source", "witnessed"),
            turn=value.get("turn", self.turn_count),
        )


def _progress(row: Record) -> dict[str, Any]:
    return {
        "status": row["status"],
        "started_turn": row["started_turn"],
        "completed_turn": row["completed_turn"],
    }


def _progress_fields(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": value["status"],
        "started_turn": value["started_turn"],
        "completed_turn": value["completed_turn"],
    }


def _same(shown: Any, value: Any) -> bool:
    """Equal and of one type: a flag set to 1 is not one set to True."""
    return bool(shown == value) and type(shown) is type(value)


def _still(kind: str, current: Any, value: Any) -> bool:
    """Whether `current` is still the `value` a change left (numbers by value: JSON may
    give back 1 for 1.0)."""
    if kind in RELATIONSHIP_FIELDS and current is not None and value is not None:
        return float(current) == float(value)
    return _same(current, value)


def _shown(kind: str, stored: Any) -> Any:
    """The value people see in a stored change (flag value, arc status)."""
    if stored is None:
        return None
    if kind == "flag":
        return stored["value"]
    if kind in ("arc", "episode"):
        return stored["status"]
    return stored
