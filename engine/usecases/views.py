"""Read-only views of a channel's story: scene, characters, relationships, flags, arcs, recap."""

from __future__ import annotations

from sqlalchemy import select

from engine.db import models as m
from engine.results import (
    ArcView,
    CharacterView,
    EpisodeView,
    EventView,
    FlagView,
    Post,
    Recap,
    RelationshipView,
    SceneView,
)
from engine.state.snapshot import ArcProgress, CharacterState, Snapshot
from engine.turns import chapters
from engine.usecases.base import EngineCore, find_key

# Every turn since the last chapter: a chapter is written 16 turns after its end, so at most
# two chapters' worth are not in one yet.
MAX_RECAP_SUMMARIES = 2 * chapters.CHAPTER_TURNS


def character_view(state: Snapshot, c: CharacterState) -> CharacterView:
    player = next((p.user_id for p in state.players.values() if p.character_key == c.key), None)
    location = state.locations.get(c.location_key) if c.location_key else None
    return CharacterView(
        key=c.key,
        name=c.name,
        role=c.role,
        present=c.present,
        mood=c.mood,
        intent=c.intent,
        location=location.name if location else None,
        avatar_url=c.avatar_url,
        appearance=c.appearance,
        player_user_id=player,
    )


def _visible(state: Snapshot, c: CharacterState) -> bool:
    """Player characters whose player left are no longer listed."""
    return not c.is_player or c.key in state.player_character_keys()


class ViewUseCases(EngineCore):
    async def _state(self, channel_id: int) -> Snapshot:
        async with self.db.read() as session:
            pt = await self._playthrough(session, channel_id)
            return await self._snapshot(session, pt)

    async def scene(self, channel_id: int) -> SceneView:
        state = await self._state(channel_id)
        location = state.locations.get(state.scene_location or "")
        return SceneView(
            location_key=location.key if location else None,
            location_name=location.name if location else "somewhere",
            location_description=location.description if location else "",
            time_of_day=state.time_of_day,
            weather=state.weather,
            tone=state.tone,
            present=tuple(
                character_view(state, c) for c in state.present_characters() if _visible(state, c)
            ),
            turn_count=state.turn_count,
        )

    async def characters(self, channel_id: int) -> list[CharacterView]:
        state = await self._state(channel_id)
        return [character_view(state, c) for c in state.characters.values() if _visible(state, c)]

    async def relationships(
        self, channel_id: int, character: str | None = None
    ) -> list[RelationshipView]:
        """All relationships, or those of one character (either direction)."""
        state = await self._state(channel_id)
        names = {k: c.name for k, c in state.characters.items() if _visible(state, c)}
        key = find_key(character, names, "character") if character else None
        return [
            RelationshipView(
                rel.source,
                names.get(rel.source, rel.source),
                rel.target,
                names.get(rel.target, rel.target),
                rel.kind,
                rel.trust,
                rel.affection,
                rel.familiarity,
            )
            for rel in state.relationships.values()
            if key is None or key in (rel.source, rel.target)
        ]

    async def flags(self, channel_id: int) -> list[FlagView]:
        state = await self._state(channel_id)
        return [
            FlagView(name, flag.value, flag.set_by, flag.set_at_turn)
            for name, flag in sorted(state.flags.items())
        ]

    async def arcs(self, channel_id: int) -> list[ArcView]:
        state = await self._state(channel_id)
        views = []
        for arc in state.story.arcs:
            progress = state.arcs.get(arc.key)
            views.append(
                ArcView(
                    arc.key,
                    arc.title,
                    progress.status if progress else "locked",
                    tuple(
                        EpisodeView(e.key, e.title, e.goal, _episode_status(progress, e.key))
                        for e in arc.episodes
                    ),
                )
            )
        return views

    async def recap(self, channel_id: int, limit: int = 10) -> Recap:
        """The story so far (the latest chapters), a summary of every turn since the last
        chapter, and the last few posts of the transcript."""
        async with self.db.read() as session:
            pt = await self._playthrough(session, channel_id)
            found = await session.execute(chapters.latest(), {"pid": pt.id})
            story_so_far = chapters.chapters_of([tuple(row) for row in found])
            since = story_so_far[-1].last_turn if story_so_far else 0
            summaries = (
                await session.execute(
                    select(m.Memory.turn_to, m.Memory.content)
                    .where(
                        m.Memory.playthrough_id == pt.id,
                        m.Memory.kind == "summary",
                        m.Memory.turn_to > since,
                    )
                    .order_by(m.Memory.turn_to.desc())
                    .limit(MAX_RECAP_SUMMARIES)
                )
            ).all()
            rows = (
                await session.scalars(
                    select(m.Message)
                    .outerjoin(m.Turn, m.Turn.id == m.Message.turn_id)
                    .where(
                        m.Message.playthrough_id == pt.id,
                        (m.Turn.status == "done")
                        | (m.Message.kind == "narrator") & m.Message.turn_id.is_(None),
                    )
                    .order_by(m.Message.id.desc())
                    .limit(limit)
                )
            ).all()
            return Recap(
                turn_count=pt.turn_count,
                summaries=tuple(f"(turn {turn}) {text}" for turn, text in reversed(summaries)),
                recent=tuple(Post(r.speaker_name, r.content) for r in reversed(rows)),
                chapters=tuple(c.label() for c in story_so_far),
            )

    async def event_log(self, channel_id: int, limit: int = 20) -> list[EventView]:
        async with self.db.read() as session:
            pt = await self._playthrough(session, channel_id)
            rows = await session.execute(
                select(m.EventLog, m.Turn.number)
                .outerjoin(m.Turn, m.Turn.id == m.EventLog.turn_id)
                .where(m.EventLog.playthrough_id == pt.id)
                .order_by(m.EventLog.id.desc())
                .limit(limit)
            )
            return [
                EventView(e.kind, e.summary, number, (e.data or {}).get("user_id"))
                for e, number in rows
            ]


def _episode_status(progress: ArcProgress | None, episode: str) -> str:
    """An episode's status; "skipped" for one left unfinished when its arc completed (its
    goal is no longer the narrator's, and it will not complete)."""
    status = progress.episodes.get(episode, "locked") if progress else "locked"
    if progress is not None and progress.status == "completed" and status != "completed":
        return "skipped"
    return status
