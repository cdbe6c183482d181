"""Every state change goes through `StateEditor`, which records it as a Change.

A change is `(kind, target, before, after)`. Each kind has a reader and a writer, so the same
writer applies a change (with `after`) and reverts it (with `before`): undo replays a turn's
changes backwards. Writing `None` removes the thing (an unset flag, a forgotten fact).

Kinds and targets (flags and arc/episode progress are stored with who and when, so that undo
restores them exactly; callers and ChangeViews see just the value or status):
- `flag` / flag name / any JSON value, None = unset
- `trust`, `affection`, `familiarity` / "source->target" (character keys) / float
- `relationship` / "source->target" / relationship kind (text), None = no relationship row
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

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.models import utcnow
from engine.results import ChangeView
from engine.state.rows import PlaythroughRows

RELATIONSHIP_FIELDS = ("trust", "affection", "familiarity")
SCENE_FIELDS = ("location", "time_of_day", "weather", "tone")


class StateEditor:
    def __init__(
        self,
        session: AsyncSession,
        playthrough: m.Playthrough,
        *,
        actor: str,
        actor_user_id: int | None = None,
        turn_id: int | None = None,
    ) -> None:
        self.session = session
        self.playthrough = playthrough
        self.actor = actor
        self.actor_user_id = actor_user_id
        self.turn_id = turn_id
        self.changes: list[ChangeView] = []
        self.rows = PlaythroughRows(session, playthrough.id)
        # Append-only rows, inserted in one statement each by `save()` (the ORM would send
        # one INSERT ... RETURNING per row on SQLite).
        self._pending: list[dict[str, Any]] = []
        self._facts: list[dict[str, Any]] = []
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

    async def set(self, kind: str, target: str, value: Any, reason: str = "") -> ChangeView | None:
        """Apply one change and record it; a change to the same value records nothing."""
        before = await self.get(kind, target)
        shown = _shown(kind, before)
        if shown == value and type(shown) is type(value):
            return None
        after = self._stored(kind, value, before)
        await self._write(kind, target, after)
        return await self._record(kind, target, before, after, shown, value, reason)

    async def witness(self, keys: list[str], fact: dict[str, Any], reason: str) -> None:
        """Every character in `keys` learns `fact`."""
        for key in keys:
            await self._write("knowledge", key, fact)
            await self._record("knowledge", key, None, fact, None, fact, reason)

    async def save(self) -> None:
        """Write the buffered facts and Change rows: one statement each, whatever the count."""
        if self._facts:
            await self.session.execute(insert(m.Knowledge), self._facts)
            self._facts = []
        if self._pending:
            await self.session.execute(insert(m.Change), self._pending)
            self._pending = []

    async def _record(
        self, kind: str, target: str, before: Any, after: Any, shown: Any, value: Any, reason: str
    ) -> ChangeView:
        self._pending.append(
            {
                "playthrough_id": self.playthrough.id,
                "turn_id": self.turn_id,
                "kind": kind,
                "target": target,
                "before": before,
                "after": after,
                "reason": reason,
                "actor": self.actor,
                "actor_user_id": self.actor_user_id,
                "reverted": False,
                "created_at": utcnow(),
            }
        )
        view = ChangeView(
            kind, target, shown, value, reason, self.actor, await self._label(kind, target)
        )
        self.changes.append(view)
        return view

    async def revert_turn(self, turn_id: int) -> int:
        """Undo every change of a turn, newest first; returns how many were reverted."""
        rows = (
            await self.session.scalars(
                select(m.Change)
                .where(m.Change.turn_id == turn_id, m.Change.reverted.is_(False))
                .order_by(m.Change.id.desc())
            )
        ).all()
        await self.save()
        for row in rows:
            if row.kind == "knowledge":
                await self._forget(row.target, row.after)
            else:
                await self._write(row.kind, row.target, row.before)
            row.reverted = True
        return len(rows)

    def _stored(self, kind: str, value: Any, before: Any) -> Any:
        """What a Change stores: flags and progress keep who/when, so undo is exact."""
        turn = self.playthrough.turn_count
        if kind == "flag" and value is not None:
            return {
                "value": value,
                "set_by": self.actor,
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
            return f"{source.name} -> {other.name}"
        if kind in ("mood", "intent", "present", "location"):
            return (await self.character(target)).name
        if kind == "knowledge":
            return (await self.character(target)).name
        return target

    # --- lookups -----------------------------------------------------------------------

    async def character(self, key: str) -> m.Character:
        return await self.rows.character(key)

    async def location_row(self, key: str) -> m.Location:
        return (await self.rows.locations())[key]

    async def _pair(self, target: str) -> tuple[m.Character, m.Character]:
        source, _, other = target.partition("->")
        return await self.character(source), await self.character(other)

    async def _relationship(self, target: str) -> m.Relationship | None:
        source, other = await self._pair(target)
        return (await self.rows.relationships()).get((source.id, other.id))

    async def _arc_row(self, key: str) -> m.ArcState:
        row = (await self.rows.arcs()).get(key)
        if row is None:
            raise LookupError(f"no arc {key!r}")
        return row

    async def _episode_row(self, target: str) -> m.EpisodeState:
        arc_key, _, episode_key = target.partition("/")
        return await self.rows.episode(arc_key, episode_key)

    # --- readers -----------------------------------------------------------------------

    async def _get_flag(self, name: str) -> Any:
        row = (await self.rows.flags()).get(name)
        if row is None:
            return None
        return {
            "value": row.value,
            "set_by": row.set_by,
            "set_by_user_id": row.set_by_user_id,
            "set_at_turn": row.set_at_turn,
        }

    def _get_relationship_value(self, name: str) -> Callable[[str], Awaitable[Any]]:
        async def read(target: str) -> Any:
            row = await self._relationship(target)
            return 0.0 if row is None else getattr(row, name)

        return read

    async def _get_relationship_kind(self, target: str) -> Any:
        row = await self._relationship(target)
        return None if row is None else row.kind

    def _get_character_field(self, name: str) -> Callable[[str], Awaitable[Any]]:
        async def read(key: str) -> Any:
            return getattr(await self.character(key), name)

        return read

    async def _get_character_location(self, key: str) -> Any:
        return await self.rows.location_key((await self.character(key)).location_id)

    async def _get_scene(self, field: str) -> Any:
        scene = await self.rows.scene()
        if field == "location":
            return await self.rows.location_key(scene.location_id)
        return getattr(scene, field)

    async def _get_arc(self, key: str) -> Any:
        return _progress(await self._arc_row(key))

    async def _get_episode(self, target: str) -> Any:
        return _progress(await self._episode_row(target))

    async def _get_knowledge(self, target: str) -> Any:
        return None  # facts are only ever added (and taken back by undo)

    async def _get_player(self, user_id: str) -> Any:
        row = await self.session.scalar(
            select(m.Player)
            .where(m.Player.playthrough_id == self.playthrough.id, m.Player.user_id == int(user_id))
            .order_by(m.Player.id.desc())
        )
        if row is None:
            return None
        return "active" if row.left_at is None else "left"

    # --- writers -----------------------------------------------------------------------

    async def _write(self, kind: str, target: str, value: Any) -> None:
        pid = self.playthrough.id
        if kind == "flag":
            flags = await self.rows.flags()
            row = flags.get(target)
            if value is None:
                if row is not None:
                    await self.session.delete(row)
                    del flags[target]
            else:
                if row is None:
                    row = flags[target] = m.Flag(playthrough_id=pid, name=target)
                    self.session.add(row)
                row.value = value["value"]
                row.set_by = value["set_by"]
                row.set_by_user_id = value["set_by_user_id"]
                row.set_at_turn = value["set_at_turn"]
        elif kind in RELATIONSHIP_FIELDS or kind == "relationship":
            rel = await self._relationship(target)
            source, other = await self._pair(target)
            relationships = await self.rows.relationships()
            if kind == "relationship" and value is None:
                if rel is not None:
                    await self.session.delete(rel)
                    del relationships[(source.id, other.id)]
                return
            if rel is None:
                rel = m.Relationship(
                    playthrough_id=pid,
                    source_id=source.id,
                    target_id=other.id,
                    kind="acquaintance",
                    trust=0.0,
                    affection=0.0,
                    familiarity=0.0,
                    history=[],
                )
                self.session.add(rel)
                relationships[(source.id, other.id)] = rel
            if kind == "relationship":
                rel.kind = value
            else:
                setattr(rel, kind, float(value))
        elif kind in ("mood", "intent", "present"):
            setattr(await self.character(target), kind, value)
        elif kind == "location":
            location = None if value is None else await self.location_row(value)
            (await self.character(target)).location_id = None if location is None else location.id
        elif kind == "scene":
            scene = await self.rows.scene()
            if target == "location":
                location = None if value is None else await self.location_row(value)
                scene.location_id = None if location is None else location.id
            else:
                setattr(scene, target, value)
        elif kind == "arc":
            await self._set_progress(await self._arc_row(target), value)
        elif kind == "episode":
            await self._set_progress(await self._episode_row(target), value)
        elif kind == "knowledge":
            await self._write_knowledge(target, value)
        elif kind == "player":
            row = await self.session.scalar(
                select(m.Player)
                .where(m.Player.playthrough_id == pid, m.Player.user_id == int(target))
                .order_by(m.Player.id.desc())
            )
            if row is not None:
                row.left_at = None if value == "active" else datetime.now(UTC)
        else:
            raise ValueError(f"unknown change kind {kind!r}")

    async def _set_progress(self, row: m.ArcState | m.EpisodeState, value: dict[str, Any]) -> None:
        row.status = value["status"]
        row.started_turn = value["started_turn"]
        row.completed_turn = value["completed_turn"]

    async def _write_knowledge(self, key: str, value: Any) -> None:
        character = await self.character(key)
        self._facts.append(
            {
                "playthrough_id": self.playthrough.id,
                "character_id": character.id,
                "fact": value["fact"],
                "source": value.get("source", "witnessed"),
                "turn_number": value.get("turn", self.playthrough.turn_count),
                "certainty": value.get("certainty", 1.0),
            }
        )

    async def _forget(self, key: str, value: dict[str, Any]) -> None:
        """Take back one fact learned by a change (identical facts are interchangeable)."""
        character = await self.character(key)
        one = (
            select(m.Knowledge.id)
            .where(
                m.Knowledge.character_id == character.id,
                m.Knowledge.fact == value["fact"],
                m.Knowledge.source == value.get("source", "witnessed"),
                m.Knowledge.turn_number == value.get("turn", self.playthrough.turn_count),
            )
            .limit(1)
            .scalar_subquery()
        )
        await self.session.execute(delete(m.Knowledge).where(m.Knowledge.id == one))


def _progress(row: m.ArcState | m.EpisodeState) -> dict[str, Any]:
    return {
        "status": row.status,
        "started_turn": row.started_turn,
        "completed_turn": row.completed_turn,
    }


def _shown(kind: str, stored: Any) -> Any:
    """The value people see in a stored change (flag value, arc status)."""
    if stored is None:
        return None
    if kind == "flag":
        return stored["value"]
    if kind in ("arc", "episode"):
        return stored["status"]
    return stored
