"""The channel dispatcher: one answer for simultaneous input, strict order per channel,
channels in parallel, bounded queues, idle workers retired."""

from __future__ import annotations

import asyncio

import pytest

from engine.dispatcher import ChannelDispatcher, DispatcherClosed, QueueFull

WAIT = 5.0


class Recorder:
    """A fake turn runner that logs when turns start and end, and can be held open."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.started: dict[int, asyncio.Event] = {}
        self.running: set[int] = set()
        self.overlaps = 0

    def hold(self, channel: int) -> asyncio.Event:
        self.gates[channel] = asyncio.Event()
        self.started[channel] = asyncio.Event()
        return self.gates[channel]

    async def run_turn(self, channel: int) -> None:
        if channel in self.running:
            self.overlaps += 1
        self.running.add(channel)
        self.log.append(f"start {channel}")
        if channel in self.started:
            self.started[channel].set()
        gate = self.gates.get(channel)
        try:
            if gate is not None:
                await asyncio.wait_for(gate.wait(), WAIT)
        finally:
            self.running.discard(channel)
            self.log.append(f"end {channel}")


async def test_inputs_within_the_window_get_one_turn() -> None:
    rec = Recorder()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0.05)
    for _ in range(3):
        dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["start 1", "end 1"]
    await dispatcher.close()


async def test_input_during_a_turn_leads_to_exactly_one_more_turn() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    for _ in range(4):
        dispatcher.signal_input(1)
    gate.set()
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["start 1", "end 1", "start 1", "end 1"]
    assert rec.overlaps == 0
    await dispatcher.close()


async def test_channels_run_in_parallel() -> None:
    rec = Recorder()
    gate_a = rec.hold(1)
    rec.hold(2)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    dispatcher.signal_input(2)
    # Channel 2 starts while channel 1 is still held open.
    await asyncio.wait_for(rec.started[2].wait(), WAIT)
    assert rec.running == {1, 2}
    gate_a.set()
    rec.gates[2].set()
    await asyncio.wait_for(dispatcher.wait_idle(), WAIT)
    await dispatcher.close()


async def test_jobs_and_turns_keep_their_order() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)

    async def job() -> str:
        rec.log.append("job")
        return "done"

    job_result = asyncio.create_task(dispatcher.run_job(1, job))
    await asyncio.sleep(0)
    dispatcher.signal_input(1)
    gate.set()
    assert await asyncio.wait_for(job_result, WAIT) == "done"
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["start 1", "end 1", "job", "start 1", "end 1"]
    await dispatcher.close()


async def test_failures_reach_the_caller_and_the_worker_survives() -> None:
    calls: list[int] = []

    async def failing_turn(channel: int) -> None:
        calls.append(channel)
        raise RuntimeError("model on fire")

    dispatcher = ChannelDispatcher(failing_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)

    async def bad_job() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        await asyncio.wait_for(dispatcher.run_job(1, bad_job), WAIT)
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert calls == [1, 1]
    await dispatcher.close()


async def test_a_full_channel_says_so() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0, max_waiting=3)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    for _ in range(3):
        dispatcher.signal_input(1)
    with pytest.raises(QueueFull, match="busy"):
        dispatcher.check_capacity(1)
    with pytest.raises(QueueFull):
        dispatcher.signal_input(1)
    dispatcher.check_capacity(2)  # other channels are unaffected
    gate.set()
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    dispatcher.check_capacity(1)
    await dispatcher.close()


async def test_idle_workers_retire_and_come_back() -> None:
    rec = Recorder()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0, idle_timeout=0.05)
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert 1 in dispatcher.active_channels
    for _ in range(100):
        if not dispatcher.active_channels:
            break
        await asyncio.sleep(0.02)
    assert dispatcher.active_channels == frozenset()
    dispatcher.signal_input(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log.count("start 1") == 2
    await dispatcher.close()


async def test_close_lets_a_running_turn_finish_or_cancels_it() -> None:
    rec = Recorder()
    gate = rec.hold(1)
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=0)
    dispatcher.signal_input(1)
    await asyncio.wait_for(rec.started[1].wait(), WAIT)
    closing = asyncio.create_task(dispatcher.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    gate.set()
    await asyncio.wait_for(closing, WAIT)
    assert rec.log == ["start 1", "end 1"]
    with pytest.raises(DispatcherClosed):
        dispatcher.signal_input(1)

    rec2 = Recorder()
    rec2.hold(1)
    dispatcher2 = ChannelDispatcher(rec2.run_turn, collect_window=0)
    dispatcher2.signal_input(1)
    await asyncio.wait_for(rec2.started[1].wait(), WAIT)
    await asyncio.wait_for(dispatcher2.close(cancel_running=True), WAIT)
    assert rec2.log == ["start 1", "end 1"]  # ended by cancellation, not by its gate
    assert not rec2.gates[1].is_set()


async def test_resume_runs_without_the_collect_window() -> None:
    rec = Recorder()
    dispatcher = ChannelDispatcher(rec.run_turn, collect_window=30.0)
    dispatcher.resume(1)
    await asyncio.wait_for(dispatcher.wait_idle(1), WAIT)
    assert rec.log == ["start 1", "end 1"]
    await dispatcher.close()
