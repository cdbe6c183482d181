"""What every group of use cases shares: the database, stories, LLM, dispatcher and sink."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import Database
from engine.db import models as m
from engine.dispatcher import ChannelDispatcher
from engine.errors import NoPlaythrough, NotFound, StoryPaused
from engine.llm import LLMGateway
from engine.results import TurnResult
from engine.sink import OutputSink
from engine.state.editor import StateEditor
from engine.state.loading import load_snapshot
from engine.state.snapshot import Snapshot, StateCache, StoryCache
from engine.stories import StoryCatalog
from engine.turns.chapters import ChapterWriter
from engine.turns.kept import KeptReadings
from engine.turns.memory import InputHints, MemoryRecall

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 2_000


@dataclass(frozen=True)
class EngineOptions:
    collect_window_seconds: float = 2.0
    max_input_chars: int = MAX_INPUT_CHARS
    context_tokens: int = 8_000
    max_waiting_inputs: int = 20
    recent_messages: int = 40


class CollectWindows:
    """Each channel's collect window: the server's setting, else the default."""

    def __init__(self, default: float) -> None:
        self.default = default
        self._by_guild: dict[int, float | None] = {}
        self._guild_of: dict[int, int] = {}

    def note(self, channel_id: int, guild_id: int, window: float | None) -> None:
        self._guild_of[channel_id] = guild_id
        self._by_guild[guild_id] = window

    def knows(self, channel_id: int) -> bool:
        return channel_id in self._guild_of

    def update_guild(self, guild_id: int, window: float | None) -> None:
        self._by_guild[guild_id] = window

    def for_channel(self, channel_id: int) -> float:
        guild = self._guild_of.get(channel_id)
        window = self._by_guild.get(guild) if guild is not None else None
        return self.default if window is None else window


class EngineCore:
    """State shared by the use-case mixins that make up `engine.facade.Engine`."""

    def __init__(
        self,
        db: Database,
        catalog: StoryCatalog,
        gateway: LLMGateway,
        sink: OutputSink,
        options: EngineOptions | None = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.gateway = gateway
        self.sink = sink
        self.options = options or EngineOptions()
        self.stories = StoryCache()
        self.states = StateCache()
        self.kept_readings = KeptReadings()  # each playthrough's, with its state's version
        self.guild_models: dict[int, str | None] = {}  # per-server model override
        # Each channel's live playthrough as its last turn left it (turns/pipeline.py).
        self.seen_playthroughs: dict[int, Any] = {}
        self.collect_windows = CollectWindows(self.options.collect_window_seconds)
        self.turn_engine_ms: deque[float] = deque(maxlen=10_000)
        # The LLM part of the turn each channel is writing, and why it was stopped.
        self.generating: dict[int, asyncio.Task[Any]] = {}
        self.stop_reasons: dict[int, str | None] = {}
        # Memory beyond the recent transcript: older turns recalled, the story so far.
        self.memory = MemoryRecall(db.engine.dialect.name == "sqlite")
        self.input_hints = InputHints()  # lets recall ride in the turn's read
        self.chapters = ChapterWriter(db, gateway)  # written beside the queue
        self.dispatcher = ChannelDispatcher(
            self._run_turn_safely,
            collect_window=self.collect_windows.for_channel,
            max_waiting=self.options.max_waiting_inputs,
        )

    async def _run_turn_safely(self, channel_id: int) -> TurnResult | None:
        raise NotImplementedError  # provided by TurnUseCases

    def stop_generating(self, channel_id: int, notice: str | None) -> bool:
        """Stop the channel's turn if it is still with the model (design §4: end and
        regenerate close the stream). Nothing of that turn is stored and its input stays
        waiting; `notice`, if any, tells the channel. False when no turn was being written."""
        task = self.generating.get(channel_id)
        if task is None or task.done():
            return False
        self.stop_reasons[channel_id] = notice
        task.cancel()
        return True

    async def _playthrough(
        self, session: AsyncSession, channel_id: int, *, running: bool = False
    ) -> m.Playthrough:
        """The live playthrough of a channel; `running` also refuses a paused one."""
        row = await session.scalar(
            select(m.Playthrough).where(
                m.Playthrough.channel_id == channel_id, m.Playthrough.status != "ended"
            )
        )
        if row is None:
            raise NoPlaythrough()
        if running and row.status == "paused":
            raise StoryPaused()
        return row

    async def _snapshot(self, session: AsyncSession, playthrough: m.Playthrough) -> Snapshot:
        return (await self._versioned_snapshot(session, playthrough))[0]

    async def _versioned_snapshot(
        self, session: AsyncSession, playthrough: m.Playthrough
    ) -> tuple[Snapshot, int]:
        """The playthrough's state (a private copy) and the cache version it was read at;
        give it back with `self.states.put(state, version)` after committing changes to it."""
        state, version = self.states.get(playthrough.id)
        if state is None or state.status != playthrough.status:
            state = await load_snapshot(self.db.runner(session), playthrough.id, self.stories)
            self.states.put(state, version)
            version += 1
        state.turn_count = playthrough.turn_count
        return state, version

    def _cached_state(
        self, playthrough_id: int, status: str, turn_count: int
    ) -> tuple[Snapshot | None, int]:
        """The cached state (a private copy) and its version; None when it must be loaded."""
        state, version = self.states.get(playthrough_id)
        if state is None or state.status != status:
            return None, version
        state.turn_count = turn_count
        return state, version

    async def _load_state(self, playthrough_id: int) -> tuple[Snapshot, int]:
        _, version = self.states.get(playthrough_id)
        async with self.db.reading() as runner:
            state = await load_snapshot(runner, playthrough_id, self.stories)
        self.states.put(state, version)
        return state, version + 1

    def _editor(
        self,
        session: AsyncSession,
        playthrough: m.Playthrough,
        *,
        actor: str,
        user_id: int | None = None,
        turn_id: int | None = None,
    ) -> StateEditor:
        return StateEditor(
            self.db.runner(session),
            playthrough.id,
            playthrough.turn_count,
            actor=actor,
            actor_user_id=user_id,
            turn_id=turn_id,
        )

    @staticmethod
    def _log_event(
        session: AsyncSession,
        playthrough: m.Playthrough,
        kind: str,
        summary: str,
        data: dict[str, Any] | None = None,
        turn_id: int | None = None,
    ) -> None:
        session.add(
            m.EventLog(
                playthrough_id=playthrough.id,
                guild_id=playthrough.guild_id,
                turn_id=turn_id,
                kind=kind,
                summary=summary,
                data=data or {},
            )
        )


def find_key(name: str, options: dict[str, str], what: str) -> str:
    """Resolve a key, a display name or an unambiguous start of a name (case-insensitive)."""
    wanted = name.strip().casefold()
    for key, display in options.items():
        if wanted in (key.casefold(), display.casefold()):
            return key
    partial = [
        key
        for key, display in options.items()
        if wanted and (display.casefold().startswith(wanted) or key.casefold().startswith(wanted))
    ]
    if len(partial) == 1:
        return partial[0]
    known = ", ".join(sorted(options.values())) or "none"
    if partial:
        choices = ", ".join(sorted(options[k] for k in partial))
        raise NotFound(f"{name!r} could be {choices}; say which.")
    raise NotFound(f"There is no {what} called {name!r} here. Known: {known}.")
