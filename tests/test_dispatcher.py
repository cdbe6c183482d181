"""The channel dispatcher: one answer for simultaneous input, strict order per channel,
channels in parallel, bounded queues, idle workers retired, clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from engine.dispatcher import ChannelDispatcher, DispatcherClosed, QueueFull

WAIT = 5.0  # bound on every wait; a passing run never gets near it
LONG = 30.0  # a collect window no test should ever sit through


class Recorder:
    """A fake turn runner that logs turns, notices overlaps, and can be held open."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.started: dict[int, asyncio.Event] = {}
        self.running: set[int] = set()
        self.overlaps = 0
        self.cancelled = 0

    def hold(self, channel: int) -> asyncio.Event:
        """Turns of `channel` wait for the returned gate (and announce their start)."""
        self.gates[channel] = asyncio.Event()
        self.started[channel] = asyncio.Event()
        return self.gates[channel]

    async def run_turn(self, channel: int) -> None:
        if channel in self.running:
            self.overlaps += 1
        self.running.add(channel)
        self.log.append(f"turn {channel}")
        if channel in self.started:
            self.started[channel].set()
        try:
            gate = self.gates.get(channel)
            if gate is not None:
                await asyncio.wait_for(gate.wait(), WAIT)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running.discard(channel)
            self.log.append(f"end {channel}")

    def job(self, name: str, gate: asyncio.Event | None = None) -> Callable[[], Awaitable[str]]:
        """A job that logs its name, optionally waits for `gate`, and returns its name."""

        async def run() -> str:
            self.log.append(name)
            if gate is not None:
                await asyncio.wait_for(gate.wait(), WAIT)
            return name

        return run


def window_that_announces(seconds: float) -> tuple[Callable[[int], float], asyncio.Event]:
    """A collect window whose start the test can wait for."""
    opened = asyncio.Event()

    def window(channel: int) -> float:
        opened.set()
        return seconds

    return window, opened


async def settle() -> None:
    """Let every ready task take a few steps."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_signals_within_the_window_get_one_turn() -> None:
    rec = Recorder()
    window, opened = window_that_announces(0.05)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=window)
    dispatcher.signal_input(1)
    await asyncio.wait_for(opened.wait(), WAIT)
    dispatcher.signal_input(1)  # both arrive while the worker is collecting
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["turn 1", "end 1"]
    await dispatcher.close()


async def test_input_during_a_turn_leads_to_exactly_one_more_turn() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    for _ in range(4):
        dispatcher.signal_input(1)
    await settle()
    assert rec.log == ["turn 1"]  # nothing starts beside the running turn
    gate.set()
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["turn 1", "end 1", "turn 1", "end 1"]
    assert rec.overlaps == 0
    await dispatcher.close()


async def test_channels_run_in_parallel() -> None:
    rec = Recorder()
    gate_a = rec.hold(1)
    gate_b = rec.hold(2)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    dispatcher.signal_input(2)
    # Channel 2 starts while channel 1 is still held open.
    await asyncio.wait_for(rec.started[2].wait(), WAIT)
    assert rec.running == {1, 2}
    assert dispatcher.active_channels == frozenset({1, 2})
    gate_b.set()
    await asyncio.wait_for(dispatcher.wait_idle(2), WAIT)
    assert rec.running == {1}  # channel 2 finished first, channel 1 is untouched
    gate_a.set()
    await asyncio.wait_for(dispatcher.wait_idle(), WAIT)
    assert rec.overlaps == 0
    await dispatcher.close()


async def test_turns_and_jobs_keep_their_order() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    first = asyncio.create_task(dispatcher.run_job(1, rec.job("undo")))
    await settle()
    dispatcher.signal_input(1)
    dispatcher.signal_input(1)
    second = asyncio.create_task(dispatcher.run_job(1, rec.job("summary")))
    await settle()
    dispatcher.signal_input(1)
    gate.set()
    assert await asyncio.wait_for(first, WAIT) == "undo"
    assert await asyncio.wait_for(second, WAIT) == "summary"
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == [
        "turn 1", "end 1", "undo", "turn 1", "end 1", "summary", "turn 1", "end 1",
    ]  # fmt: skip
    await dispatcher.close()


async def test_a_job_queued_during_the_window_splits_the_signals() -> None:
    rec = Recorder()
    window, opened = window_that_announces(0.3)  # wide enough to queue both inside it
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=window)
    dispatcher.signal_input(1)
    await asyncio.wait_for(opened.wait(), WAIT)
    job = asyncio.create_task(dispatcher.run_job(1, rec.job("retry")))
    await settle()
    dispatcher.signal_input(1)  # behind the job: must not join the first turn
    assert await asyncio.wait_for(job, WAIT) == "retry"
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["turn 1", "end 1", "retry", "turn 1", "end 1"]
    await dispatcher.close()


async def test_jobs_return_and_raise_and_the_worker_survives_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    started = [asyncio.Event(), asyncio.Event()]
    release = [asyncio.Event(), asyncio.Event()]

    async def troubled_turn(channel: int) -> None:
        calls.append("turn")
        n = len(calls) - 1
        if n < 2:
            started[n].set()
            await asyncio.wait_for(release[n].wait(), WAIT)
        if n == 0:
            raise RuntimeError("model on fire")
        if n == 1:
            raise asyncio.CancelledError  # e.g. a stream closed on purpose inside the turn

    dispatcher = ChannelDispatcher(troubled_turn, collect_window=0)
    dispatcher.signal_input(1)
    for n in range(2):
        await asyncio.wait_for(started[n].wait(), WAIT)
        dispatcher.signal_input(1)  # queued behind the turn that is about to fail
        release[n].set()
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert calls == ["turn"] * 3  # each queued turn still ran, with no new signal
    failures = [r for r in caplog.records if r.name == "engine.dispatcher" and r.exc_info]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == "model on fire"

    async def bad_job() -> None:
        raise ValueError("nope")

    async def good_job() -> int:
        return 42

    with pytest.raises(ValueError, match="nope"):
        await asyncio.wait_for(dispatcher.run_job(1, bad_job), WAIT)
    assert await asyncio.wait_for(dispatcher.run_job(1, good_job), WAIT) == 42
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert calls == ["turn"] * 4
    await dispatcher.close()


async def test_a_job_whose_caller_gave_up_is_skipped() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    abandoned = asyncio.create_task(dispatcher.run_job(1, rec.job("abandoned")))
    await settle()
    abandoned.cancel()
    await settle()
    gate.set()
    assert await asyncio.wait_for(dispatcher.run_job(1, rec.job("kept")), WAIT) == "kept"
    assert rec.log == ["turn 1", "end 1", "kept"]
    await dispatcher.close()


async def test_a_full_channel_says_so() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0, max_waiting=3)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    dispatcher.signal_input(1)
    dispatcher.check_capacity(1)  # two places left
    dispatcher.signal_input(1)  # merged into the same turn, but counted
    dispatcher.check_capacity(1)
    dispatcher.signal_input(1)
    with pytest.raises(QueueFull, match="3 things are already waiting") as refused:
        dispatcher.check_capacity(1)
    assert "busy" in str(refused.value)
    with pytest.raises(QueueFull):
        dispatcher.signal_input(1)
    with pytest.raises(QueueFull):
        await asyncio.wait_for(dispatcher.run_job(1, rec.job("refused")), WAIT)
    dispatcher.resume(1)  # recovery is never refused
    dispatcher.check_capacity(2)  # other channels are unaffected
    gate.set()
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    dispatcher.check_capacity(1)
    assert "refused" not in rec.log
    assert rec.log.count("turn 1") == 2
    await dispatcher.close()


async def test_a_turn_behind_a_job_stays_counted_when_an_earlier_turn_starts() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    job_gate = asyncio.Event()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0, max_waiting=3)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    dispatcher.signal_input(1)  # turn two
    job = asyncio.create_task(dispatcher.run_job(1, rec.job("summary", job_gate)))
    await settle()
    dispatcher.signal_input(1)  # turn three, behind the job
    gate.set()  # turn one ends, turn two runs, the job starts and holds
    await settle()
    assert rec.log[-1] == "summary"
    dispatcher.signal_input(1)  # merged into turn three: two signals waiting now
    dispatcher.check_capacity(1)
    dispatcher.signal_input(1)
    with pytest.raises(QueueFull, match="3 things"):
        dispatcher.check_capacity(1)
    job_gate.set()
    await asyncio.wait_for(job, WAIT)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    dispatcher.check_capacity(1)
    assert rec.log == [
        "turn 1", "end 1", "turn 1", "end 1", "summary", "turn 1", "end 1",
    ]  # fmt: skip
    await dispatcher.close()


async def test_idle_workers_retire_and_come_back() -> None:
    rec = Recorder()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0, idle_timeout=0.05)
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert 1 in dispatcher.active_channels

    for _ in range(int(WAIT / 0.01)):  # bounded poll: retirement has no event to await
        if not dispatcher.active_channels:
            break
        await asyncio.sleep(0.01)
    assert dispatcher.active_channels == frozenset()
    dispatcher.signal_input(1)
    assert dispatcher.active_channels == frozenset({1})
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["turn 1", "end 1", "turn 1", "end 1"]
    await dispatcher.close()


async def test_wait_idle_waits_for_the_running_turn() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    await asyncio.wait_for(dispatcher.wait_idle(), WAIT)  # nothing at all: returns
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    waiting = asyncio.create_task(dispatcher.wait_idle())
    await settle()
    assert not waiting.done()
    await asyncio.wait_for(dispatcher.wait_idle(2), WAIT)  # another channel is idle
    gate.set()
    await asyncio.wait_for(waiting, WAIT)
    assert rec.log == ["turn 1", "end 1"]
    await dispatcher.close()


async def test_close_lets_a_running_turn_finish() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    dispatcher.signal_input(1)  # queued: its input stays stored for the next start
    queued_job = asyncio.create_task(dispatcher.run_job(1, rec.job("queued")))
    await settle()
    closing = asyncio.create_task(dispatcher.close())
    await settle()
    assert not closing.done()
    with pytest.raises(DispatcherClosed):
        await asyncio.wait_for(queued_job, WAIT)
    gate.set()
    await asyncio.wait_for(closing, WAIT)
    assert rec.log == ["turn 1", "end 1"]
    assert rec.cancelled == 0
    assert dispatcher.active_channels == frozenset()
    with pytest.raises(DispatcherClosed):
        dispatcher.signal_input(1)
    with pytest.raises(DispatcherClosed):
        dispatcher.resume(1)
    with pytest.raises(DispatcherClosed):
        await asyncio.wait_for(dispatcher.run_job(1, rec.job("late")), WAIT)


async def test_close_can_cancel_a_running_turn_or_job() -> None:
    rec = Recorder()
    rec.hold(1)
    job_gate = asyncio.Event()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    job = asyncio.create_task(dispatcher.run_job(2, rec.job("end story", job_gate)))
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    await settle()
    await asyncio.wait_for(dispatcher.close(cancel_running=True), WAIT)
    assert rec.cancelled == 1  # the turn saw the cancellation, it was not let through its gate
    assert not rec.gates[1].is_set()
    assert rec.log.count("end 1") == 1
    # The caller of the job is told in words; its own task is not cancelled.
    with pytest.raises(DispatcherClosed):
        await asyncio.wait_for(job, WAIT)


async def test_close_during_the_window_does_not_wait_for_it_or_run_the_turn() -> None:
    rec = Recorder()
    window, opened = window_that_announces(LONG)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=window)
    dispatcher.signal_input(1)
    await asyncio.wait_for(opened.wait(), WAIT)
    await asyncio.wait_for(dispatcher.close(), WAIT)
    assert rec.log == []


async def test_resume_runs_without_the_collect_window() -> None:
    rec = Recorder()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=LONG)
    dispatcher.resume(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["turn 1", "end 1"]

    # A resume also cuts short a window already under way, and the two make one turn.
    window, opened = window_that_announces(LONG)
    dispatcher2 = ChannelDispatcher(rec.run_turn, collect_window=window)
    dispatcher2.signal_input(1)
    await asyncio.wait_for(opened.wait(), WAIT)
    dispatcher2.resume(1)
    await asyncio.wait_for(dispatcher2.wait_idle(1), WAIT)
    assert rec.log == ["turn 1", "end 1", "turn 1", "end 1"]
    await dispatcher.close()
    await dispatcher2.close()


async def test_the_window_is_decided_per_channel() -> None:
    rec = Recorder()
    asked: list[int] = []

    def window(channel: int) -> float:
        asked.append(channel)
        if channel == 3:
            raise LookupError("no config")  # falls back rather than stalling the channel
        return LONG if channel == 1 else 0.0

    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=window)
    dispatcher.signal_input(1)
    dispatcher.signal_input(2)
    dispatcher.signal_input(3)
    await asyncio.wait_for(dispatcher.wait_idle(2), WAIT)
    await asyncio.wait_for(dispatcher.wait_idle(3), WAIT)
    assert sorted(rec.log) == ["end 2", "end 3", "turn 2", "turn 3"]  # 1 is still collecting
    assert sorted(asked) == [1, 2, 3]
    await asyncio.wait_for(dispatcher.close(), WAIT)
    assert "turn 1" not in rec.log
