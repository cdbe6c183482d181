"""A playthrough's mutable rows, each kind loaded once per unit of work.

A turn changes a dozen values; reading each one with its own query cost more than the rest
of the turn. `PlaythroughRows` loads a whole kind (all flags, all relationships...) in one
query the first time it is needed and keeps the ORM objects, which the session tracks, so
writes are plain attribute changes flushed at commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m


class PlaythroughRows:
    def __init__(self, session: AsyncSession, playthrough_id: int) -> None:
        self.session = session
        self.pid = playthrough_id
        self._characters: dict[str, m.Character] | None = None
        self._locations: dict[str, m.Location] | None = None
        self._relationships: dict[tuple[int, int], m.Relationship] | None = None
        self._flags: dict[str, m.Flag] | None = None
        self._scene: m.Scene | None = None
        self._arcs: dict[str, m.ArcState] | None = None
        self._episodes: dict[tuple[str, str], m.EpisodeState] | None = None

    async def _all(self, model: Any) -> list[Any]:
        return list(
            await self.session.scalars(select(model).where(model.playthrough_id == self.pid))
        )

    async def characters(self) -> dict[str, m.Character]:
        if self._characters is None:
            self._characters = {row.key: row for row in await self._all(m.Character)}
        return self._characters

    async def character(self, key: str) -> m.Character:
        return (await self.characters())[key]

    async def locations(self) -> dict[str, m.Location]:
        if self._locations is None:
            self._locations = {row.key: row for row in await self._all(m.Location)}
        return self._locations

    async def location_key(self, location_id: int | None) -> str | None:
        if location_id is None:
            return None
        return next(
            (k for k, row in (await self.locations()).items() if row.id == location_id), None
        )

    async def relationships(self) -> dict[tuple[int, int], m.Relationship]:
        if self._relationships is None:
            self._relationships = {
                (row.source_id, row.target_id): row for row in await self._all(m.Relationship)
            }
        return self._relationships

    async def flags(self) -> dict[str, m.Flag]:
        if self._flags is None:
            self._flags = {row.name: row for row in await self._all(m.Flag)}
        return self._flags

    async def scene(self) -> m.Scene:
        if self._scene is None:
            scene = await self.session.scalar(
                select(m.Scene).where(m.Scene.playthrough_id == self.pid)
            )
            if scene is None:
                raise LookupError("playthrough has no scene")
            self._scene = scene
        return self._scene

    async def arcs(self) -> dict[str, m.ArcState]:
        if self._arcs is None:
            self._arcs = {row.arc_key: row for row in await self._all(m.ArcState)}
        return self._arcs

    async def episode(self, arc_key: str, episode_key: str) -> m.EpisodeState:
        if self._episodes is None:
            by_id = {row.id: key for key, row in (await self.arcs()).items()}
            self._episodes = {
                (by_id[row.arc_state_id], row.episode_key): row
                for row in await self._all(m.EpisodeState)
            }
        row = self._episodes.get((arc_key, episode_key))
        if row is None:
            raise LookupError(f"no episode {arc_key}/{episode_key}")
        return row
