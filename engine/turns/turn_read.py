"""A turn's read (design §3, steps 1-2): the waiting input, the state and what the prompt
needs, before any LLM call; in one round trip to SQLite when the channel's last turn left
its playthrough, state and recent transcript behind (engine.turns.kept), with recall's
searches riding along when this process stored the input (engine.turns.memory)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from engine.db.statements import Runner
from engine.state.snapshot import Snapshot
from engine.turns import store
from engine.turns.context import MAX_SUMMARIES
from engine.turns.kept import KeptReading
from engine.turns.memory import search_words
from engine.turns.prompt_parts import ContextParts
from engine.usecases.base import EngineCore

TurnRead = tuple["TurnInput", Snapshot, int, ContextParts]
# A turn's read, and the newest turn recall is still to read up to (see `_read_turn`).
_Read = tuple["TurnInput", Snapshot, int, ContextParts, int | None]

# The prompt has the summaries of the turns before the recent transcript; older ones are
# recalled (engine.turns.memory).
RECALL_AFTER = 2 * MAX_SUMMARIES


class _Seen(Enum):
    CHANGED = "the remembered playthrough changed"  # see `_read_input`


_CHANGED: Final = _Seen.CHANGED


@dataclass(frozen=True)
class TurnInput:
    """The waiting input a turn answers, read before any LLM call."""

    playthrough_id: int
    input_ids: tuple[int, ...]
    number: int  # as players count turns: done turns so far + 1
    model: str | None
    read: KeptReading  # what its read leaves for the next turn (engine.turns.kept)


class TurnReader(EngineCore):
    """The read half of the turn pipeline (engine.turns.pipeline)."""

    async def _read_turn(self, channel_id: int) -> TurnRead | None:
        """The waiting input and what the prompt needs (`_read_context`). Recall
        (engine.turns.memory) rides in the read's round trip when this process stored the
        input and so knew its words beforehand (`InputHints`); otherwise it is read after.
        """
        read = await self._read_context(channel_id)
        if read is None:
            return None
        turn_input, state, version, parts, recall_until = read
        if recall_until is not None:
            texts = [line.text for line in parts.inputs]
            async with self.db.reading() as runner:
                parts.recalled = await self.memory.recall(
                    runner, turn_input.playthrough_id, recall_until, texts
                )
        return turn_input, state, version, parts

    async def _read_context(self, channel_id: int) -> _Read | None:
        """The waiting input and what the prompt needs. In one round trip when the channel's
        playthrough is remembered from its last turn and its state is cached: the
        playthrough is read again alongside, and if it changed, everything is read again
        the long way (the playthrough, the state if need be, then the rest)."""
        seen = self.seen_playthroughs.get(channel_id)
        if seen is not None:
            state, version = self._cached_state(seen.id, seen.status, seen.turn_count)
            if state is not None:
                async with self.db.reading() as runner:
                    read = await self._read_input(runner, seen, state, version, channel_id)
                if read is not _CHANGED:
                    return read
        async with self.db.reading() as runner:
            pt = await store.active_playthrough(runner, channel_id)
            if pt is None:
                return None
            state, version = self._cached_state(pt.id, pt.status, pt.turn_count)
            if state is not None:
                read = await self._read_input(runner, pt, state, version)
        if state is None:
            state, version = await self._load_state(pt.id)
            async with self.db.reading() as runner:
                read = await self._read_input(runner, pt, state, version)
        assert read is not _CHANGED  # only a recheck finds that
        return read

    def _recall_words(self, channel_id: int, until: int) -> list[str] | None:
        """The words recall will search for, if known before the turn's read."""
        if until < 1 or self.memory.full_text is None:  # (not asked yet: `recall` asks)
            return None
        if not self.memory.full_text:
            return []  # recall by importance alone
        return self.input_hints.words(channel_id)

    async def _read_input(
        self,
        runner: Runner,
        pt: store.PlaythroughRow,
        state: Snapshot,
        version: int,
        recheck: int | None = None,
    ) -> _Read | Literal[_Seen.CHANGED] | None:
        """(TurnInput, state, version, ContextParts); None when no input waits; `_CHANGED`
        when `recheck` found the channel's playthrough other than `pt`."""
        known = pt.guild_id in self.guild_models
        kept = self.kept_readings.get(pt.id, version, pt.turn_count)
        until = _recall_until(pt.turn_count, kept)
        guess = self._recall_words(state.channel_id, until)
        size = self.options.recent_messages
        read = await store.read_turn(
            runner,
            pt,
            state,
            size,
            guild_model=not known,
            recheck=recheck,
            extra=self.memory.queries(pt.id, until, guess) if guess is not None else (),
            kept=kept,
        )
        if recheck is not None and read.playthrough != pt:
            return _CHANGED
        self.seen_playthroughs[state.channel_id] = pt
        if not known:
            self.guild_models[pt.guild_id] = read.guild_model
        waiting = tuple(message_id for message_id, _ in read.waiting)
        self.input_hints.read(state.channel_id, waiting, read.newest_message)
        if not waiting:
            return None
        number = pt.turn_count + 1
        left = KeptReading.seen(
            read.transcript, read.waiting, number, size, read.newest_message, read.knowledge
        )
        turn_input = TurnInput(pt.id, waiting, number, self.guild_models[pt.guild_id], left)
        parts = read.parts(state)
        # What the players write now says what matters: the guess holds if its words do.
        if guess is not None and (
            not self.memory.full_text or guess == search_words(line.text for line in parts.inputs)
        ):
            parts.recalled = self.memory.rank(read.extra)
            return turn_input, state, version, parts, None
        return turn_input, state, version, parts, until if until >= 1 else None


def _recall_until(turn_count: int, kept: KeptReading | None) -> int:
    """The newest turn recall may bring: one older than the prompt's summaries, which are
    those of the MAX_SUMMARIES turns before the oldest turn of the transcript (known when
    the transcript is kept; the prompt also leaves out any recalled turn it shows)."""
    until = turn_count - RECALL_AFTER
    if kept is None or kept.first_turn is None:
        return until
    return min(until, kept.first_turn - MAX_SUMMARIES - 1)
