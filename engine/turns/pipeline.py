"""A turn: read the waiting input and the context (engine.turns.turn_read), stream the
scene, ask the director, and store everything in one write transaction (design §3).

No transaction is open during an LLM call, and the only write transaction is the last one:
it creates the turn, attaches exactly the inputs that were read (input arriving meanwhile
waits for the next turn) and applies the changes. A crash before it leaves the input
waiting, and the next start answers it (`recover`); a crash after it has nothing left to do.
So no input is lost and no turn is stored twice. Keeping writes to one short transaction
matters: SQLite has one writer, and under load every statement inside a write transaction
waits for the busy event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import replace

from engine.dispatcher import current_task_cancelling
from engine.llm import LLMBadOutput, LLMError
from engine.results import Post, TurnResult
from engine.state.arcs import advance_arcs
from engine.state.editor import StateEditor
from engine.state.naming import named_changes
from engine.state.snapshot import Snapshot
from engine.turns import store, turn_writes
from engine.turns.context import build_scene_context
from engine.turns.director import DirectorPlan, plan_changes, step_toward
from engine.turns.director_output import DirectorOutput
from engine.turns.kept import KeptReading
from engine.turns.prompts import director_messages
from engine.turns.script import PostStarted, ScriptParser, ScriptPost, TextAdded
from engine.turns.turn_read import TurnInput, TurnReader

log = logging.getLogger(__name__)


TURN_DROPPED = (
    "The story changed while this turn was being written (it was paused or ended, or its "
    "messages were answered by another process), so the turn was not kept."
)
INPUT_CUT = (
    "This turn's messages are longer than the model's context allows (LLM_CONTEXT_TOKENS), "
    "so the narrator saw only their beginning. They are kept whole."
)
# The director's edits that set a value outright (relationships are steps, knowledge adds).
SET_OUTRIGHT = frozenset({"flag", "mood", "intent", "present", "location", "scene"})


class _Stopwatch:
    """Engine time spent while the LLM part runs (parsing, the director's prompt, planning),
    so that the turn's engine time leaves out only the waiting for the model."""

    def __init__(self) -> None:
        self.ms = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms += (time.perf_counter() - started) * 1000


class TurnPipeline(TurnReader):
    async def _run_turn_safely(self, channel_id: int) -> TurnResult | None:
        """The channel's turn, or None when there was nothing to answer or it failed (the
        channel was told why)."""
        try:
            return await self._run_turn(channel_id)
        except Exception:
            # The worker must survive anything; the input stays waiting for a retry.
            log.exception("turn in channel %s failed unexpectedly", channel_id)
            await self.sink.notice(
                channel_id, "Something went wrong while writing this turn.", retryable=True
            )
            return None

    async def _run_turn(self, channel_id: int) -> TurnResult | None:
        started = time.perf_counter()
        read = await self._read_turn(channel_id)
        if read is None:
            return None
        turn_input, state, version, parts = read
        context = build_scene_context(parts, self.options.context_tokens)
        if context.dropped:
            log.info("turn %s: context over budget, dropped %s", turn_input.number, context.dropped)
        if context.tokens > context.budget:
            log.warning(
                "turn %s: the prompt needs %s tokens even with everything droppable dropped; "
                "LLM_CONTEXT_TOKENS is %s",
                turn_input.number,
                context.tokens,
                context.budget,
            )
        prep_ms = (time.perf_counter() - started) * 1000
        if "input_characters" in context.dropped:
            await self.sink.notice(channel_id, INPUT_CUT)
        npcs = {c.key: c.name for c in state.characters.values() if not c.is_player}
        players = {c.key: c.name for c in state.characters.values() if c.is_player}
        # Models also address players by their user names: never let those speak either.
        users = {f"user_{p.user_id}": p.display_name for p in state.players.values()}
        parser = ScriptParser(npcs, players, user_names=users)
        watch = _Stopwatch()
        await self.sink.turn_started(channel_id, turn_input.number)
        # The LLM part runs as its own task so that end, pause and retry can stop it
        # (`stop_generating`): cancelling it closes the stream; nothing of the turn is stored.
        generation = asyncio.create_task(
            self._generate(
                channel_id, turn_input, state, parser, context.messages, parts.inputs_text(), watch
            )
        )
        self.generating[channel_id] = generation
        try:
            outcome = await generation
        except asyncio.CancelledError:
            if not generation.cancelled() or current_task_cancelling():
                raise
            reason = self.stop_reasons.pop(channel_id, None)
            log.info("turn %s in channel %s stopped: %s", turn_input.number, channel_id, reason)
            if reason:
                await self.sink.notice(channel_id, reason)
            return None
        finally:
            if self.generating.get(channel_id) is generation:
                del self.generating[channel_id]
            self.stop_reasons.pop(channel_id, None)
        if isinstance(outcome, LLMError):
            await self._fail(turn_input, str(outcome))
            await self.sink.notice(
                channel_id,
                f"The story could not continue: {outcome} Your messages are kept.",
                retryable=True,  # the front end says how to retry
            )
            return None
        plan = outcome
        applying = time.perf_counter()
        applied = await self._apply(
            channel_id,
            turn_input,
            parser,
            plan,
            state,
            context.tokens,
            context.dropped,
            prep_ms + watch.ms,
        )
        result = None
        if applied is None:
            self.states.invalidate(turn_input.playthrough_id)
            await self.sink.notice(channel_id, TURN_DROPPED)
        else:
            result, kept = applied
            version_now = self.states.put(state, version)  # now holds this turn's changes
            if result.turn_number != turn_input.number:
                version_now = None  # another process wrote a turn meanwhile
            self.kept_readings.put(state.playthrough_id, version_now, result.turn_number, kept)
        # Engine time of the turn, LLM calls excluded (read by bench/turns.py).
        self.turn_engine_ms.append(prep_ms + watch.ms + (time.perf_counter() - applying) * 1000)
        if result is not None:
            await self.sink.turn_finished(channel_id, result)
            title = state.story.story.title
            pid, model = turn_input.playthrough_id, turn_input.model
            budget = self.options.context_tokens
            self.chapters.after_turn(channel_id, pid, result.turn_number, title, model, budget)
        return result

    async def _generate(
        self,
        channel_id: int,
        turn_input: TurnInput,
        state: Snapshot,
        parser: ScriptParser,
        messages: list[dict[str, str]],
        inputs: str,
        watch: _Stopwatch,
    ) -> DirectorPlan | LLMError:
        """Stream the scene into `parser` (and on to the sink), then ask the director; a failed
        scene call is returned, not raised, so that the caller records it."""
        try:
            stream = self.gateway.stream_text(messages, purpose="scene", model=turn_input.model)
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    with watch.running():
                        events = parser.feed(chunk)
                    await self._forward(channel_id, events, state)
            with watch.running():
                events = parser.close()
            await self._forward(channel_id, events, state)
            if not parser.posts:
                raise LLMBadOutput("The model's reply had nothing to post.")
        except LLMError as error:
            return error
        return await self._direct(turn_input, state, parser.posts, inputs, watch)

    async def _forward(
        self, channel_id: int, events: list[PostStarted | TextAdded], state: Snapshot
    ) -> None:
        for event in events:
            if isinstance(event, PostStarted):
                key = event.speaker.character_key
                avatar = state.characters[key].avatar_url if key in state.characters else None
                await self.sink.post_started(
                    channel_id, event.index, Post(event.speaker.name, "", key, avatar)
                )
            else:
                await self.sink.text_streamed(channel_id, event.index, event.text)

    async def _direct(
        self,
        turn_input: TurnInput,
        state: Snapshot,
        posts: list[ScriptPost],
        inputs: str,
        watch: _Stopwatch,
    ) -> DirectorPlan:
        with watch.running():
            messages = director_messages(state, posts, inputs, self.options.context_tokens)
            speakers = {p.speaker.character_key for p in posts if p.speaker.character_key}
        try:
            output = await self.gateway.complete_json(
                messages, DirectorOutput, purpose="director", model=turn_input.model
            )
        except LLMError as error:
            log.warning("turn %s: director output unusable: %s", turn_input.number, error)
            with watch.running():
                plan = plan_changes(DirectorOutput(), state, speakers)
            return replace(plan, notes=(f"director output unusable: {error}", *plan.notes))
        assert isinstance(output, DirectorOutput)
        with watch.running():
            return plan_changes(output, state, speakers)

    async def _fail(self, turn_input: TurnInput, error: str) -> None:
        """Record the failed attempt; the input stays waiting for the next turn or a retry."""
        async with self.db.writing() as runner:
            pt = await store.playthrough_by_id(runner, turn_input.playthrough_id)
            turn_id = await turn_writes.insert_turn(runner, pt.id, "failed", error=error)
            summary = f"turn {turn_input.number} failed: {error}"
            await turn_writes.log_event(runner, pt, "error", summary, {"error": error}, turn_id)

    async def _apply(
        self,
        channel_id: int,
        turn_input: TurnInput,
        parser: ScriptParser,
        plan: DirectorPlan,
        state: Snapshot,
        tokens: int,
        dropped_context: dict[str, int],
        prep_ms: float,
    ) -> tuple[TurnResult, KeptReading] | None:
        started = time.perf_counter()
        try:
            async with self.db.writing() as runner:
                pt, turn_id, loaded = await turn_writes.begin_turn(
                    runner, turn_input.playthrough_id, turn_input.input_ids[0], tokens
                )
                number = pt.turn_count
                self.seen_playthroughs[channel_id] = pt  # what the next read expects
                await turn_writes.attach_inputs(runner, turn_id, turn_input.input_ids)
                posts = [
                    Post(
                        p.speaker.name,
                        p.text,
                        p.speaker.character_key,
                        state.characters[p.speaker.character_key].avatar_url
                        if p.speaker.character_key in state.characters
                        else None,
                    )
                    for p in parser.posts
                ]
                transcript = []
                for post in posts:
                    character = state.characters.get(post.character_key or "")
                    transcript.append(
                        {
                            "playthrough_id": pt.id,
                            "turn_id": turn_id,
                            "kind": "character" if character else "narrator",
                            "character_id": character.id if character else None,
                            "speaker_name": post.speaker,
                            "content": post.text,
                        }
                    )
                await turn_writes.insert_posts(runner, transcript)
                # `state` is the turn's starting point (read before the LLM calls); the editor
                # reads and writes the current rows, and arcs see the turn's changes applied to it.
                editor = StateEditor(runner, pt.id, number, actor="director", turn_id=turn_id)
                for table, rows in loaded.items():
                    editor.rows.preload(table, rows)
                # Story characters who saw the turn remember it; players remember for themselves.
                witnesses = {c.key for c in state.present_characters() if not c.is_player}
                kept: list[str] = []
                done: set[tuple[str, str]] = set()
                for edit in plan.edits:
                    kind, target = edit.kind, edit.target
                    if edit.delta is not None:  # a step from the row as it is now
                        value = step_toward(await editor.get(kind, target), edit.delta, kind)
                        await editor.set(kind, target, value, edit.reason)
                    elif kind in SET_OUTRIGHT and (kind, target) not in done:
                        # Changed since the turn began (a moderator, mostly): that change
                        # is newer than what the director saw, so it stays.
                        was = state.value_of(kind, target)
                        if not await editor.set_if_still(
                            kind, target, was, edit.value, edit.reason
                        ):
                            kept.append(f"kept {kind} {target}: changed during the turn")
                            continue
                    else:
                        await editor.set(kind, target, edit.value, edit.reason)
                    done.add((kind, target))
                    if edit.kind == "present" and edit.value is True:
                        witnesses.add(edit.target)
                summary = plan.summary or _fallback_summary(posts)
                await editor.witness(
                    sorted(witnesses),
                    {"fact": summary, "source": "witnessed", "turn": number},
                    "witnessed",
                )
                state.turn_count = number
                await advance_arcs(editor, state)
                await editor.save()
                await turn_writes.insert_summary(runner, pt.id, number, summary, plan.importance)
                notes = [*plan.notes, *kept]
                notes += [f"dropped line for a player: {d}" for d in parser.dropped]
                apply_ms = (time.perf_counter() - started) * 1000
                data = {
                    "context_tokens": tokens,
                    "context_dropped": dropped_context,
                    "notes": notes,
                    "changes": [c.describe() for c in editor.changes],
                    "engine_ms": round(prep_ms + apply_ms, 3),
                }
                await turn_writes.log_event(
                    runner, pt, "ai_decision", f"turn {number}: {summary}", data, turn_id
                )
                visible = named_changes(
                    (c for c in editor.changes if c.kind != "knowledge"), state.story
                )
                keys = {c.id: c.key for c in state.characters.values()}
                left = turn_input.read.learned(editor.facts_saved, keys, len(posts))
                return TurnResult(channel_id, number, tuple(posts), visible, tuple(notes)), left
        except turn_writes.TurnDropped:
            log.info(
                "turn %s dropped: the story was paused or ended, or its input was answered "
                "by another process",
                turn_input.number,
            )
            return None


def _fallback_summary(posts: list[Post]) -> str:
    text = " ".join(p.text for p in posts)
    return text[:300] + ("..." if len(text) > 300 else "")
