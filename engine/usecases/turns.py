"""Undo, retry and crash recovery. Undo and retry run in the channel's queue, after any turn
already underway, so they never race a turn of the same channel."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.errors import InvalidInput, NoFailedTurn
from engine.results import ChangeView, RetryResult
from engine.turns.pipeline import TurnPipeline


class TurnUseCases(TurnPipeline):
    async def undo(self, channel_id: int, user_id: int | None = None) -> int:
        """Take back the last turn: every change it made is reverted and its posts leave the
        transcript. Returns the number of the turn undone. When the last turn failed, it is
        that turn which is taken back: its input, which waited for a retry, is set aside."""
        return await self.dispatcher.run_job(channel_id, lambda: self._undo(channel_id, user_id))

    async def _undo(self, channel_id: int, user_id: int | None) -> int:
        async with self.db.write() as session:
            pt = await self._playthrough(session, channel_id)
            if await self._set_aside_failed_input(session, pt):
                number = pt.turn_count + 1
                self._log_event(
                    session, pt, "edit", f"failed turn {number} undone", {"user_id": user_id}
                )
                return number
            turn = await self._last_done_turn(session, pt.id)
            number = pt.turn_count
            await self._revert(session, pt, turn)
            turn.status = "undone"
            self._log_event(
                session, pt, "edit", f"turn {number} undone", {"user_id": user_id}, turn_id=turn.id
            )
        self.states.invalidate(pt.id)  # reverted rows, not changes the snapshot could follow
        return number

    async def retry(
        self, channel_id: int, user_id: int | None = None, *, failed_only: bool = False
    ) -> RetryResult:
        """Write the last turn again: a failed turn, or one still being written, is run again
        with the same input; a finished one is reverted and regenerated. With `failed_only`
        (a failed turn's own Retry button) only a failed turn's waiting input is answered;
        `NoFailedTurn` when there is none any more."""
        self.dispatcher.check_capacity(channel_id)
        # A turn still being written is stopped: the retry below writes it afresh.
        self.stop_generating(channel_id, None)
        return await self.dispatcher.run_job(
            channel_id, lambda: self._retry(channel_id, user_id, failed_only)
        )

    async def _retry(self, channel_id: int, user_id: int | None, failed_only: bool) -> RetryResult:
        async with self.db.write() as session:
            pt = await self._playthrough(session, channel_id, running=True)
            pending = await session.scalar(
                select(m.Message.id).where(
                    m.Message.playthrough_id == pt.id,
                    m.Message.turn_id.is_(None),
                    m.Message.kind == "player",
                )
            )
            if pending is None and failed_only:
                raise NoFailedTurn()
            rewritten = pending is None
            number = pt.turn_count if rewritten else pt.turn_count + 1
            if rewritten:
                turn = await self._last_done_turn(session, pt.id, "write again")
                await self._revert(session, pt, turn)
                await session.execute(
                    delete(m.Message).where(
                        m.Message.playthrough_id == pt.id,
                        m.Message.turn_id == turn.id,
                        m.Message.kind != "player",
                    )
                )
                # Its input waits again, so the turn below answers it afresh.
                await session.execute(
                    update(m.Message)
                    .where(m.Message.playthrough_id == pt.id, m.Message.turn_id == turn.id)
                    .values(turn_id=None)
                )
                turn.status = "undone"
                self._log_event(
                    session,
                    pt,
                    "edit",
                    f"turn {pt.turn_count + 1} regenerated",
                    {"user_id": user_id},
                    turn_id=turn.id,
                )
        self.states.invalidate(pt.id)
        # Already inside the channel's queue: run the turn now, without a collect window.
        return RetryResult(number, rewritten, await self._run_turn_safely(channel_id))

    async def _last_done_turn(
        self, session: AsyncSession, playthrough_id: int, action: str = "take back"
    ) -> m.Turn:
        turn = await session.scalar(
            select(m.Turn)
            .where(m.Turn.playthrough_id == playthrough_id, m.Turn.status == "done")
            .order_by(m.Turn.number.desc())
        )
        if turn is None:
            raise InvalidInput(f"There is no turn to {action}.")
        return turn

    async def _set_aside_failed_input(self, session: AsyncSession, pt: m.Playthrough) -> bool:
        """If the latest attempt at a turn failed, its input (what waited since before the
        failure) goes with that attempt, out of the transcript; False if there was none."""
        latest = await session.scalar(
            select(m.Turn).where(m.Turn.playthrough_id == pt.id).order_by(m.Turn.id.desc())
        )
        if latest is None or latest.status != "failed":
            return False
        waiting = (
            m.Message.playthrough_id == pt.id,
            m.Message.turn_id.is_(None),
            m.Message.kind == "player",
            m.Message.created_at <= latest.created_at,  # not what was written since
        )
        taken = await session.execute(update(m.Message).where(*waiting).values(turn_id=latest.id))
        if not getattr(taken, "rowcount", 0):
            return False
        latest.status = "undone"
        return True

    async def _revert(
        self, session: AsyncSession, pt: m.Playthrough, turn: m.Turn
    ) -> list[ChangeView]:
        editor = self._editor(session, pt, actor="undo")
        kept = await editor.revert_turn(turn.id)
        if kept:  # changed again after the turn: the newer values stay
            self._log_event(session, pt, "edit", f"undo kept newer values: {', '.join(kept)}", {})
        pt.turn_count -= 1
        await session.execute(
            delete(m.Memory).where(
                m.Memory.playthrough_id == pt.id, m.Memory.turn_to > pt.turn_count
            )
        )
        return editor.changes

    async def recover(self, owns_guild: Callable[[int], bool] | None = None) -> list[int]:
        """At start-up: answer every channel with input waiting (also input whose turn was cut
        off by a crash: nothing of a turn is stored before its last transaction). With
        `owns_guild`, only the channels of the servers it accepts (this process's shards)."""
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(m.Playthrough.channel_id, m.Playthrough.guild_id)
                    .where(m.Playthrough.status == "active")
                    .where(
                        m.Playthrough.id.in_(
                            select(m.Message.playthrough_id).where(
                                m.Message.turn_id.is_(None), m.Message.kind == "player"
                            )
                        )
                    )
                )
            ).all()
        channels = [c for c, g in rows if owns_guild is None or owns_guild(g)]
        for channel_id in channels:
            self.dispatcher.resume(channel_id)
        return list(channels)
