"""A playthrough's mutable rows as plain records, each kind loaded once per unit of work.

A turn changes a dozen values; reading each one with its own query cost more than the rest
of the turn. `PlaythroughRows` loads a whole kind (all flags, all relationships...) with one
prepared query the first time it is needed. Changes to loaded rows are collected and written
by `flush()`, one statement per table and set of columns; new rows and deletions are written
at once (they are rare: moderator edits and undo).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update

from engine.db import models as m
from engine.db.statements import Query, Runner

Record = dict[str, Any]

_COLUMNS: dict[str, tuple[str, ...]] = {
    "characters": ("id", "key", "name", "mood", "intent", "present", "location_id"),
    "locations": ("id", "key"),
    "relationships": (
        "id",
        "source_id",
        "target_id",
        "kind",
        "trust",
        "affection",
        "familiarity",
    ),
    "flags": ("id", "name", "value", "set_by", "set_by_user_id", "set_at_turn"),
    "scenes": ("id", "location_id", "time_of_day", "weather", "tone"),
    "arc_states": ("id", "arc_key", "status", "started_turn", "completed_turn"),
    "episode_states": (
        "id",
        "arc_state_id",
        "episode_key",
        "status",
        "started_turn",
        "completed_turn",
    ),
}


# Columns a change can touch, per loaded kind (see `update`).
_MUTABLE = {name: columns[1:] for name, columns in _COLUMNS.items()}
_MUTABLE["characters"] = ("mood", "intent", "present", "location_id")
_MUTABLE["relationships"] = ("kind", "trust", "affection", "familiarity")
_MUTABLE["flags"] = ("value", "set_by", "set_by_user_id", "set_at_turn")


def _table(name: str) -> Table:
    table = m.Base.metadata.tables[name]
    assert isinstance(table, Table)
    return table


@functools.cache
def select_all(table_name: str) -> Query:
    table = _table(table_name)
    columns = [table.c[name] for name in _COLUMNS[table_name]]
    return lambda: select(*columns).where(table.c.playthrough_id == bindparam("pid"))


@functools.cache
def update_columns(table_name: str, names: tuple[str, ...]) -> Query:
    table = _table(table_name)
    return lambda: (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({name: bindparam(name) for name in names})
    )


@functools.cache
def insert_row(table_name: str, names: tuple[str, ...]) -> Query:
    table = _table(table_name)
    return lambda: (
        insert(table).values({name: bindparam(name) for name in names}).returning(table.c.id)
    )


@functools.cache
def delete_row(table_name: str) -> Query:
    table = _table(table_name)
    return lambda: delete(table).where(table.c.id == bindparam("row_id"))


def _latest_player() -> Any:
    return (
        select(m.Player.id, m.Player.left_at)
        .where(m.Player.playthrough_id == bindparam("pid"), m.Player.user_id == bindparam("user"))
        .order_by(m.Player.id.desc())
        .limit(1)
    )


class PlaythroughRows:
    def __init__(self, runner: Runner, playthrough_id: int) -> None:
        self.runner = runner
        self.pid = playthrough_id
        self._loaded: dict[str, list[Record]] = {}
        self._characters: dict[str, Record] | None = None
        self._relationships: dict[tuple[int, int], Record] | None = None
        self._flags: dict[str, Record] | None = None
        self._arcs: dict[str, Record] | None = None
        self._episodes: dict[tuple[str, str], Record] | None = None
        self._dirty: dict[tuple[str, int], tuple[Record, set[str]]] = {}

    async def _all(self, table_name: str) -> list[Record]:
        if table_name not in self._loaded:
            self.preload(table_name, await self.runner.all(select_all(table_name), pid=self.pid))
        return self._loaded[table_name]

    def preload(self, table_name: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows of `select_all(table_name)` read by the caller (in a shared round trip)."""
        names = _COLUMNS[table_name]
        self._loaded[table_name] = [dict(zip(names, row, strict=True)) for row in rows]

    # --- reading -----------------------------------------------------------------------

    async def characters(self) -> dict[str, Record]:
        if self._characters is None:
            self._characters = {row["key"]: row for row in await self._all("characters")}
        return self._characters

    async def character(self, key: str) -> Record:
        return (await self.characters())[key]

    async def location_id(self, key: str | None) -> int | None:
        if key is None:
            return None
        for row in await self._all("locations"):
            if row["key"] == key:
                return int(row["id"])
        raise KeyError(key)

    async def location_key(self, location_id: int | None) -> str | None:
        if location_id is None:
            return None
        rows = await self._all("locations")
        return next((row["key"] for row in rows if row["id"] == location_id), None)

    async def relationships(self) -> dict[tuple[int, int], Record]:
        if self._relationships is None:
            self._relationships = {
                (row["source_id"], row["target_id"]): row
                for row in await self._all("relationships")
            }
        return self._relationships

    async def flags(self) -> dict[str, Record]:
        if self._flags is None:
            self._flags = {row["name"]: row for row in await self._all("flags")}
        return self._flags

    async def scene(self) -> Record:
        scenes = await self._all("scenes")
        if not scenes:
            raise LookupError("playthrough has no scene")
        return scenes[0]

    async def arcs(self) -> dict[str, Record]:
        if self._arcs is None:
            self._arcs = {row["arc_key"]: row for row in await self._all("arc_states")}
        return self._arcs

    async def episode(self, arc_key: str, episode_key: str) -> Record:
        if self._episodes is None:
            by_id = {row["id"]: key for key, row in (await self.arcs()).items()}
            self._episodes = {
                (by_id[row["arc_state_id"]], row["episode_key"]): row
                for row in await self._all("episode_states")
            }
        row = self._episodes.get((arc_key, episode_key))
        if row is None:
            raise LookupError(f"no episode {arc_key}/{episode_key}")
        return row

    async def latest_player(self, user_id: int) -> Record | None:
        found = await self.runner.all(_latest_player, pid=self.pid, user=user_id)
        if not found:
            return None
        row_id, left_at = found[0]
        return {"id": row_id, "left_at": left_at}

    # --- writing -----------------------------------------------------------------------

    def update(self, table_name: str, row: Record, **values: Any) -> None:
        """Change a loaded row; written by `flush()`."""
        row.update(values)
        _, names = self._dirty.setdefault((table_name, row["id"]), (row, set()))
        # A loaded kind writes all its mutable columns, so a table takes one statement.
        names.update(_MUTABLE.get(table_name, values))

    async def insert(self, table_name: str, row: Record) -> Record:
        """Write a new row now; `row` gets its id and is returned."""
        names = tuple(sorted(k for k in row if k != "id"))
        found = await self.runner.all(insert_row(table_name, names), **row)
        row["id"] = found[0][0]
        self._loaded.setdefault(table_name, []).append(row)
        return row

    async def delete(self, table_name: str, row: Record) -> None:
        """Delete a row now (and forget its pending changes)."""
        self._dirty.pop((table_name, row["id"]), None)
        await self.runner.run(delete_row(table_name), row_id=row["id"])
        if table_name in self._loaded:
            self._loaded[table_name] = [r for r in self._loaded[table_name] if r is not row]

    async def flush(self) -> None:
        batches: dict[tuple[str, tuple[str, ...]], list[Record]] = {}
        for (table_name, row_id), (row, names) in self._dirty.items():
            columns = tuple(sorted(names))
            params = {name: row[name] for name in columns}
            params["row_id"] = row_id
            batches.setdefault((table_name, columns), []).append(params)
        self._dirty.clear()
        for (table_name, columns), rows in batches.items():
            await self.runner.run_many(update_columns(table_name, columns), rows)
