"""The channel dispatcher (design §4): one serial worker per channel, channels in parallel.

Callers store a player's input durably first, then `signal_input`. The channel's worker waits
a collect window so players writing at the same moment get one answer, then calls `run_turn`,
which takes every pending input of the channel from the database. Signals that arrive while a
turn runs lead to exactly one more turn after it. `run_job` runs other work (undo, retry,
end, summaries) in the same order. Workers retire after `idle_timeout` with nothing to do.

The global cap on LLM calls lives in the LLM gateway, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.errors import EngineError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Used when a per-channel window cannot be read: answering at once beats not answering.
FALLBACK_WINDOW = 0.0


class QueueFull(EngineError):
    """Too much is already waiting in this channel."""

    def __init__(self, waiting: int) -> None:
        super().__init__(
            f"The story is busy: {waiting} things are already waiting in this channel. "
            "Try again in a moment."
        )
        self.waiting = waiting


class DispatcherClosed(EngineError):
    def __init__(self) -> None:
        super().__init__("The story engine is shutting down; try again in a moment.")


@dataclass
class _Job:
    run: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]


@dataclass
class _Turn:
    collect: bool  # False when resuming: run at once
    signals: int = 0  # input signals merged into this turn, for the waiting count
    hurry: asyncio.Event = field(default_factory=asyncio.Event)  # ends the window early


@dataclass
class _Channel:
    queue: deque[_Turn | _Job] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False  # an item has been taken and is in its window or running
    task: asyncio.Task[None] | None = None


def _settle_error(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def current_task_cancelling() -> bool:
    """Whether the current task itself is being cancelled, as opposed to a stray
    CancelledError escaping from what it awaited (e.g. a stream or task stopped on purpose)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class ChannelDispatcher:
    def __init__(
        self,
        run_turn: Callable[[int], Awaitable[object]],
        *,
        collect_window: Callable[[int], float] | float = 2.0,
        max_waiting: int = 20,
        idle_timeout: float = 60.0,
    ) -> None:
        self._run_turn = run_turn
        self._window = collect_window
        self.max_waiting = max_waiting
        self.idle_timeout = idle_timeout
        self._channels: dict[int, _Channel] = {}
        self._closed = False

    @property
    def active_channels(self) -> frozenset[int]:
        """Channels that currently have a worker."""
        return frozenset(self._channels)

    def _collect_window(self, channel_id: int) -> float:
        try:
            window = self._window(channel_id) if callable(self._window) else self._window
            return max(0.0, float(window))
        except Exception:
            log.exception("collect window for channel %s unavailable", channel_id)
            return FALLBACK_WINDOW

    def _waiting(self, channel_id: int) -> int:
        channel = self._channels.get(channel_id)
        if channel is None:
            return 0
        return sum(
            item.signals if isinstance(item, _Turn) else int(not item.future.done())
            for item in channel.queue
        )

    def check_capacity(self, channel_id: int) -> None:
        """Raise `QueueFull` (or `DispatcherClosed`) if `signal_input`/`run_job` would."""
        if self._closed:
            raise DispatcherClosed()
        waiting = self._waiting(channel_id)
        if waiting >= self.max_waiting:
            raise QueueFull(waiting)

    def signal_input(self, channel_id: int) -> None:
        """New input is stored: make sure a turn will take it."""
        self.check_capacity(channel_id)
        channel = self._channel(channel_id)
        last = channel.queue[-1] if channel.queue else None
        if isinstance(last, _Turn):
            # One queued turn takes every input stored before it runs: merge the signals.
            last.signals += 1
        else:
            channel.queue.append(_Turn(collect=True, signals=1))
        self._wake(channel_id, channel)

    def resume(self, channel_id: int) -> None:
        """Run the channel's waiting work now, without a collect window (start-up recovery).
        Never refused for capacity: the input it answers is already stored."""
        if self._closed:
            raise DispatcherClosed()
        channel = self._channel(channel_id)
        last = channel.queue[-1] if channel.queue else None
        if isinstance(last, _Turn):
            last.collect = False
            last.hurry.set()
        else:
            channel.queue.append(_Turn(collect=False))
        self._wake(channel_id, channel)

    async def run_job(self, channel_id: int, job: Callable[[], Awaitable[T]]) -> T:
        """Run `job` after what is already queued in the channel, and return its result (or
        raise its exception). If the caller stops waiting before the job starts, it is skipped."""
        self.check_capacity(channel_id)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        channel = self._channel(channel_id)
        channel.queue.append(_Job(job, future))
        self._wake(channel_id, channel)
        return await future

    def _channel(self, channel_id: int) -> _Channel:
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = self._channels[channel_id] = _Channel()
        return channel

    def _wake(self, channel_id: int, channel: _Channel) -> None:
        channel.idle.clear()
        channel.wakeup.set()
        if channel.task is None or channel.task.done():
            channel.task = asyncio.create_task(
                self._work(channel_id, channel), name=f"channel-{channel_id}"
            )

    async def _work(self, channel_id: int, channel: _Channel) -> None:
        try:
            while True:
                if not channel.queue:
                    channel.idle.set()
                    if self._closed:
                        return
                    channel.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(channel.wakeup.wait(), self.idle_timeout)
                    # No await between this check and the removal, so no signal is lost.
                    if not channel.queue and not channel.wakeup.is_set():
                        if self._channels.get(channel_id) is channel:
                            del self._channels[channel_id]
                        return
                    continue
                item = channel.queue[0]
                channel.busy = True
                try:
                    if isinstance(item, _Turn):
                        # Left at the head of the queue during the window so later signals
                        # merge into it; a job queued behind it stays behind it.
                        if item.collect:
                            window = self._collect_window(channel_id)
                            if window > 0:
                                with contextlib.suppress(TimeoutError):
                                    await asyncio.wait_for(item.hurry.wait(), window)
                        if self._closed or not channel.queue or channel.queue[0] is not item:
                            continue  # closing: the input stays in the database for next start
                        channel.queue.popleft()
                        await self._guarded_turn(channel_id)
                    else:
                        channel.queue.popleft()
                        await self._run_job(item)
                finally:
                    channel.busy = False
        finally:
            # Whatever ended the worker, let `wait_idle` callers look again.
            channel.busy = False
            channel.idle.set()

    async def _guarded_turn(self, channel_id: int) -> None:
        try:
            await self._run_turn(channel_id)
        except asyncio.CancelledError:
            if current_task_cancelling():
                raise
            log.warning("turn in channel %s was cancelled from inside", channel_id)
        except Exception:
            log.exception("turn in channel %s failed", channel_id)

    async def _run_job(self, job: _Job) -> None:
        if job.future.done():
            return  # the caller stopped waiting before it started
        try:
            result = await job.run()
        except asyncio.CancelledError:
            if current_task_cancelling():
                # The caller's own task was not cancelled: answer in words, not by cancelling it.
                _settle_error(job.future, DispatcherClosed())
                raise
            job.future.cancel()
        except Exception as error:  # handed to the caller
            _settle_error(job.future, error)
        else:
            if not job.future.done():
                job.future.set_result(result)
        finally:
            _settle_error(job.future, DispatcherClosed())  # e.g. KeyboardInterrupt

    async def wait_idle(self, channel_id: int | None = None) -> None:
        """Until the channel (or every channel) has nothing queued and nothing running."""
        while True:
            if channel_id is None:
                channels = list(self._channels.values())
            else:
                channels = [c for k, c in self._channels.items() if k == channel_id]
            # A worker that is gone cannot make progress; do not wait for it.
            pending = [
                c
                for c in channels
                if (c.queue or c.busy) and c.task is not None and not c.task.done()
            ]
            if not pending:
                return
            await pending[0].idle.wait()

    async def close(self, *, cancel_running: bool = False, grace: float = 30.0) -> None:
        """Stop taking work. Running turns and jobs finish (up to `grace` seconds) unless
        `cancel_running`; then they are cancelled. Queued jobs fail with `DispatcherClosed`;
        queued turns are dropped, since their input stays in the database for `resume`."""
        self._closed = True
        tasks: list[asyncio.Task[None]] = []
        for channel in self._channels.values():
            for item in channel.queue:
                if isinstance(item, _Job):
                    _settle_error(item.future, DispatcherClosed())
                else:
                    item.hurry.set()  # a turn in its window does not start
            channel.queue.clear()
            channel.wakeup.set()
            if channel.task is not None and not channel.task.done():
                tasks.append(channel.task)
        if tasks and not cancel_running:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("channel worker failed while closing", exc_info=outcome)
        self._channels.clear()
