"""The channel dispatcher (design §4): one serial worker per channel, channels in parallel.

Callers store a player's input durably first, then `signal_input`. The channel's worker waits
a collect window so players writing at the same moment get one answer, then calls `run_turn`,
which takes every pending input of the channel from the database. Signals that arrive while a
turn runs lead to exactly one more turn after it. `run_job` runs other work (undo, retry,
end) in the same order. Workers retire after `idle_timeout` with nothing to do.

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


class QueueFull(EngineError):
    """Too much is already waiting in this channel."""


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


@dataclass
class _Channel:
    queue: deque[_Turn | _Job] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False
    inputs: int = 0  # input signals since the last turn began
    task: asyncio.Task[None] | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class ChannelDispatcher:
    def __init__(
        self,
        run_turn: Callable[[int], Awaitable[None]],
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
        return frozenset(self._channels)

    def _collect_window(self, channel_id: int) -> float:
        return self._window(channel_id) if callable(self._window) else self._window

    def _waiting(self, channel_id: int) -> int:
        channel = self._channels.get(channel_id)
        if channel is None:
            return 0
        return channel.inputs + sum(isinstance(item, _Job) for item in channel.queue)

    def check_capacity(self, channel_id: int) -> None:
        """Raise `QueueFull` (or `DispatcherClosed`) if a new item would be refused."""
        if self._closed:
            raise DispatcherClosed()
        waiting = self._waiting(channel_id)
        if waiting >= self.max_waiting:
            raise QueueFull(
                f"The story is busy: {waiting} things are already waiting in this channel. "
                "Try again in a moment."
            )

    def signal_input(self, channel_id: int) -> None:
        """New input is stored: make sure a turn will take it."""
        self._enqueue(channel_id, _Turn(collect=True))

    def resume(self, channel_id: int) -> None:
        """Run the channel's waiting work now, without a collect window (start-up recovery)."""
        if self._closed:
            raise DispatcherClosed()
        self._enqueue(channel_id, _Turn(collect=False), check=False)

    async def run_job(self, channel_id: int, job: Callable[[], Awaitable[T]]) -> T:
        """Run `job` after what is already queued in the channel, and return its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(channel_id, _Job(job, future))
        return await future

    def _enqueue(self, channel_id: int, item: _Turn | _Job, *, check: bool = True) -> None:
        if check:
            self.check_capacity(channel_id)
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = self._channels[channel_id] = _Channel()
        if isinstance(item, _Turn) and item.collect:
            channel.inputs += 1
        last = channel.queue[-1] if channel.queue else None
        if isinstance(item, _Turn) and isinstance(last, _Turn):
            # One queued turn takes every input stored before it runs: merge the signals.
            last.collect = last.collect and item.collect
        else:
            channel.queue.append(item)
        channel.idle.clear()
        channel.wakeup.set()
        if channel.task is None or channel.task.done():
            channel.task = asyncio.create_task(
                self._work(channel_id, channel), name=f"channel-{channel_id}"
            )

    async def _work(self, channel_id: int, channel: _Channel) -> None:
        while True:
            if not channel.queue:
                channel.idle.set()
                if self._closed:
                    return
                channel.wakeup.clear()
                try:
                    await asyncio.wait_for(channel.wakeup.wait(), self.idle_timeout)
                except TimeoutError:
                    if not channel.queue:
                        # No await between this check and the removal: no signal is lost.
                        del self._channels[channel_id]
                        return
                continue
            item = channel.queue[0]
            channel.busy = True
            try:
                if isinstance(item, _Turn):
                    if item.collect:
                        await asyncio.sleep(self._collect_window(channel_id))
                    # Taken off the queue only now: signals during the window merged into it.
                    channel.queue.popleft()
                    channel.inputs = 0
                    await self._guarded_turn(channel_id)
                else:
                    channel.queue.popleft()
                    await self._run_job(item)
            finally:
                channel.busy = False

    async def _guarded_turn(self, channel_id: int) -> None:
        try:
            await self._run_turn(channel_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("turn in channel %s failed", channel_id)

    @staticmethod
    async def _run_job(job: _Job) -> None:
        try:
            result = await job.run()
        except asyncio.CancelledError:
            job.future.cancel()
            raise
        except BaseException as error:  # handed to the caller
            if not job.future.done():
                job.future.set_exception(error)
        else:
            if not job.future.done():
                job.future.set_result(result)

    async def wait_idle(self, channel_id: int | None = None) -> None:
        """Until the channel (or every channel) has nothing queued and nothing running."""
        while True:
            if channel_id is None:
                channels = list(self._channels.values())
            else:
                channels = [c for k, c in self._channels.items() if k == channel_id]
            pending = [c for c in channels if c.queue or c.busy]
            if not pending:
                return
            await pending[0].idle.wait()

    async def close(self, *, cancel_running: bool = False, grace: float = 30.0) -> None:
        """Stop taking work. Running turns finish (up to `grace` seconds) unless cancelled;
        input still waiting stays in the database for the next start."""
        self._closed = True
        tasks = [c.task for c in self._channels.values() if c.task and not c.task.done()]
        for channel in self._channels.values():
            for item in channel.queue:
                if isinstance(item, _Job) and not item.future.done():
                    item.future.set_exception(DispatcherClosed())
            # Keep only what is running; queued turns are picked up again by `recover`.
            channel.queue.clear()
            channel.wakeup.set()
        if tasks and not cancel_running:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._channels.clear()
