"""Starting, ending, pausing and resuming a story in a channel; the story list."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.db import models as m
from engine.db.models import utcnow
from engine.errors import ChannelBusy, NotFound
from engine.results import PlaythroughInfo, StoryInfo, SuggestedCharacter
from engine.state.arcs import advance_arcs
from engine.state.setup import populate_playthrough
from engine.stories import LoadedStory
from engine.usecases.base import EngineCore

# Told to the channel when ending or pausing stops the turn being written.
STOPPED = {
    "ended": "The story was ended, so the turn being written was stopped and not kept.",
    "paused": (
        "The story was paused, so the turn being written was stopped. The messages it was "
        "answering are kept and get their answer when the story resumes."
    ),
}


def _story_info(loaded: LoadedStory) -> StoryInfo:
    story = loaded.story
    return StoryInfo(
        key=loaded.key,
        title=story.story.title,
        summary=story.story.summary,
        characters=len(story.characters),
        locations=len(story.locations),
        arcs=len(story.arcs),
        suggested_characters=tuple(
            SuggestedCharacter(pc.key, pc.name, pc.description) for pc in story.player_characters
        ),
    )


def _info(row: m.Playthrough, story: m.Story, opening: str = "") -> PlaythroughInfo:
    return PlaythroughInfo(
        id=row.id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        story_key=story.key,
        story_title=story.title,
        status=row.status,
        turn_count=row.turn_count,
        opening=opening,
    )


class PlaythroughUseCases(EngineCore):
    def list_stories(self) -> list[StoryInfo]:
        return [_story_info(s) for s in sorted(self.catalog.stories.values(), key=lambda s: s.key)]

    def story(self, key: str) -> StoryInfo:
        return _story_info(self._loaded_story(key))

    def _loaded_story(self, key: str) -> LoadedStory:
        loaded = self.catalog.stories.get(key.strip())
        if loaded is None:
            known = ", ".join(sorted(self.catalog.stories)) or "none"
            raise NotFound(f"There is no story {key!r}. Stories: {known}.")
        return loaded

    async def start(
        self, guild_id: int, channel_id: int, story_key: str, user_id: int | None = None
    ) -> PlaythroughInfo:
        """Start a story in a channel that has none running."""
        loaded = self._loaded_story(story_key)
        try:
            async with self.db.write() as session:
                existing = await session.scalar(
                    select(m.Playthrough.id).where(
                        m.Playthrough.channel_id == channel_id, m.Playthrough.status != "ended"
                    )
                )
                if existing is not None:
                    raise ChannelBusy(
                        "A story is already running in this channel; a moderator can end it first."
                    )
                story_row = await session.scalar(
                    select(m.Story).where(m.Story.content_hash == loaded.content_hash)
                )
                if story_row is None:
                    story_row = m.Story(
                        key=loaded.key,
                        title=loaded.story.story.title,
                        content_hash=loaded.content_hash,
                        source_path=loaded.path,
                        data=loaded.story.model_dump(mode="json"),
                    )
                    session.add(story_row)
                    await session.flush()
                self.stories.get(story_row.id, story_row.data)
                row = m.Playthrough(
                    story_id=story_row.id,
                    guild_id=guild_id,
                    channel_id=channel_id,
                    status="active",
                    started_by=user_id,
                    turn_count=0,
                    settings={},
                )
                session.add(row)
                await session.flush()
                await populate_playthrough(session, row, loaded.story)
                editor = self._editor(session, row, actor="story")
                await advance_arcs(editor, await self._snapshot(session, row), "story start")
                await editor.save()
                opening = loaded.story.story.opening
                if opening:
                    session.add(
                        m.Message(
                            playthrough_id=row.id,
                            kind="narrator",
                            speaker_name="Narrator",
                            content=opening,
                        )
                    )
                self._log_event(
                    session, row, "edit", f"story {loaded.key!r} started", {"user_id": user_id}
                )
                info = _info(row, story_row, opening)
        except IntegrityError:
            raise ChannelBusy("A story was just started in this channel.") from None
        self.states.invalidate(info.id)  # arcs opened at the start are not in the cached copy
        return info

    async def end(self, channel_id: int, user_id: int | None = None) -> PlaythroughInfo:
        return await self._set_status(channel_id, "ended", user_id)

    async def pause(self, channel_id: int, user_id: int | None = None) -> PlaythroughInfo:
        return await self._set_status(channel_id, "paused", user_id)

    async def resume(self, channel_id: int, user_id: int | None = None) -> PlaythroughInfo:
        return await self._set_status(channel_id, "active", user_id)

    async def playthrough(self, channel_id: int) -> PlaythroughInfo:
        async with self.db.read() as session:
            row = await self._playthrough(session, channel_id)
            story = await session.get_one(m.Story, row.story_id)
            return _info(row, story)

    async def _set_status(
        self, channel_id: int, status: str, user_id: int | None
    ) -> PlaythroughInfo:
        async with self.db.write() as session:
            row = await self._playthrough(session, channel_id)
            if row.status == status:
                word = {"active": "running", "paused": "paused"}[status]
                raise ChannelBusy(f"The story in this channel is already {word}.")
            before = row.status
            row.status = status
            if status == "ended":
                row.ended_at = utcnow()
            session.add(
                m.Change(
                    playthrough_id=row.id,
                    kind="status",
                    target="playthrough",
                    before=before,
                    after=status,
                    reason="",
                    actor="moderator",
                    actor_user_id=user_id,
                )
            )
            self._log_event(session, row, "edit", f"story {status}", {"user_id": user_id})
            story = await session.get_one(m.Story, row.story_id)
            info = _info(row, story)
        self.states.invalidate(info.id)
        if status == "active":
            self.dispatcher.resume(channel_id)  # answer input left waiting by the pause
        else:
            self.stop_generating(channel_id, STOPPED[status])
        return info
