"""The story so far: a chapter summary of every CHAPTER_TURNS turns, written by the LLM.

Each turn's director leaves a one-line summary; the prompt shows the latest ones, and recall
(`engine.turns.memory`) brings back older ones that share words with the input. What is
left is the thread of the whole story, so every CHAPTER_TURNS turns the LLM condenses the
summaries of one chapter into a paragraph, and the prompt carries the latest MAX_CHAPTERS
of them ("THE STORY SO FAR").

After turn N (N at least two chapters), the chapter that ends CHAPTER_TURNS turns back is
due (`due`): older than anything the prompt shows in full, so undo and retry, which change
only the last turn, do not reach it (undoing that far deletes it with its turns, as every
memory after the turn count). `ChapterWriter` writes it off the turn's critical path, as a
task of its own beside the channel's queue rather than in it (design §3.8 puts summaries in
the queue): a summary call then never delays the next turn, an undo or `/story end`, and it
needs no ordering with them since they cannot touch its turns. Its read and its write are
short transactions of their own, none held across the LLM call, and the write checks that
the story still has those turns. A failed call changes nothing but a log line; the chapter
is tried again after the next turn, and after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from engine.db import Database
from engine.db import models as m
from engine.db.statements import Runner
from engine.llm import LLMError, LLMGateway, strip_reasoning
from engine.llm.tokens import estimate_messages_tokens, fit_lines
from engine.turns.director import one_line

log = logging.getLogger(__name__)

CHAPTER_TURNS = 16
MAX_CHAPTERS = 4
MAX_CHAPTER_CHARS = 1_200
KIND = "chapter"

INSTRUCTIONS = (
    "You keep the chronicle of a group roleplay. Condense the events below into one "
    "paragraph of at most 120 words, in the past tense: who did what, what was promised, "
    "found or revealed, and what is still open. Use the names as given. No title, no list, "
    "no comment on the story."
)


class Chapter(NamedTuple):
    first_turn: int
    last_turn: int
    text: str

    def label(self) -> str:
        return f"(turns {self.first_turn}-{self.last_turn}) {self.text}"


def due(turn_count: int) -> tuple[int, int] | None:
    """The turns of the chapter to write after turn `turn_count`, if any."""
    last = (turn_count // CHAPTER_TURNS - 1) * CHAPTER_TURNS
    if last < CHAPTER_TURNS:
        return None
    return last - CHAPTER_TURNS + 1, last


def latest() -> Any:
    """The latest MAX_CHAPTERS chapters of a playthrough (`pid`), newest first."""
    return (
        select(m.Memory.turn_from, m.Memory.turn_to, m.Memory.content)
        .where(m.Memory.playthrough_id == bindparam("pid"), m.Memory.kind == KIND)
        .order_by(m.Memory.turn_to.desc())
        .limit(MAX_CHAPTERS)
    )


def _written() -> Any:
    return select(m.Memory.id).where(
        m.Memory.playthrough_id == bindparam("pid"),
        m.Memory.kind == KIND,
        m.Memory.turn_to == bindparam("last"),
    )


def _turn_summaries() -> Any:
    return (
        select(m.Memory.turn_to, m.Memory.content)
        .where(
            m.Memory.playthrough_id == bindparam("pid"),
            m.Memory.kind == "summary",
            m.Memory.turn_to >= bindparam("first"),
            m.Memory.turn_to <= bindparam("last"),
        )
        .order_by(m.Memory.turn_to)
    )


def chapters_of(rows: list[tuple[Any, ...]]) -> list[Chapter]:
    """Rows of `latest()` as chapters, oldest first."""
    return [Chapter(int(first), int(last), text) for first, last, text in reversed(rows)]


async def summaries_to_condense(
    runner: Runner, playthrough_id: int, span: tuple[int, int]
) -> list[tuple[int, str]] | None:
    """The turn summaries of the chapter `span`; None when it is written already."""
    first, last = span
    written, rows = await runner.finish(
        [
            (_written, {"pid": playthrough_id, "last": last}),
            (_turn_summaries, {"pid": playthrough_id, "first": first, "last": last}),
        ]
    )
    if written:
        return None
    return [(int(turn), text) for turn, text in rows]


def messages(
    story_title: str,
    span: tuple[int, int],
    summaries: list[tuple[int, str]],
    budget: int | None = None,
) -> list[dict[str, str]]:
    """The request for one chapter; within `budget` tokens, each turn's summary shortened
    to a fair share when they do not fit whole."""
    lines = [f"- (turn {turn}) {text}" for turn, text in summaries]
    head = f"Story: {story_title}\nEvents of turns {span[0]}-{span[1]}:\n"
    request = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": head}]
    if budget is not None:
        lines = fit_lines(lines, budget - estimate_messages_tokens(request))
    request[1]["content"] += "\n".join(lines)
    return request


def clean(reply: str) -> str:
    """The model's paragraph on one line, without reasoning blocks, cut to its limit."""
    text = one_line(strip_reasoning(reply))
    if len(text) > MAX_CHAPTER_CHARS:
        text = text[:MAX_CHAPTER_CHARS].rsplit(" ", 1)[0] + " …"
    return text


class ChapterWriter:
    """Writes due chapters, one task per channel at most; `wait` and `close` for the engine."""

    def __init__(self, db: Database, gateway: LLMGateway) -> None:
        self.db = db
        self.gateway = gateway
        self.written: dict[int, int] = {}  # playthrough -> last turn of its newest chapter
        self.tasks: dict[int, asyncio.Task[None]] = {}  # by channel

    def after_turn(
        self,
        channel_id: int,
        playthrough_id: int,
        turn_count: int,
        title: str,
        model: str | None,
        budget: int | None = None,
    ) -> None:
        """Start writing the chapter due after this turn, if any and not written yet."""
        span = due(turn_count)
        if span is None or self.written.get(playthrough_id, 0) >= span[1]:
            return
        running = self.tasks.get(channel_id)
        if running is not None and not running.done():
            return  # it will be due again after the next turn
        task = asyncio.create_task(self._write(playthrough_id, span, title, model, budget))
        self.tasks[channel_id] = task
        task.add_done_callback(lambda done: self._forget(channel_id, done))

    def _forget(self, channel_id: int, task: asyncio.Task[None]) -> None:
        if self.tasks.get(channel_id) is task:
            del self.tasks[channel_id]

    async def wait(self, channel_id: int | None = None) -> None:
        """Until the chapter being written for the channel (or any) is done."""
        tasks = list(self.tasks.values()) if channel_id is None else [self.tasks.get(channel_id)]
        waiting = {task for task in tasks if task is not None}
        if waiting:
            # `wait` neither raises what the task raised nor cancels it when we are cancelled.
            await asyncio.wait(waiting)

    async def close(self) -> None:
        """Stop chapters being written (they are due again after the next start's turn)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(
        self,
        playthrough_id: int,
        span: tuple[int, int],
        title: str,
        model: str | None,
        budget: int | None,
    ) -> None:
        try:
            async with self.db.reading() as runner:
                summaries = await summaries_to_condense(runner, playthrough_id, span)
            if summaries is None or not summaries:  # written already, or nothing to condense
                self.written[playthrough_id] = span[1]
                return
            # A chore like the director's: its model (or the server's override) does it.
            name = model or self.gateway.config.director
            reply = await self.gateway.complete_text(
                messages(title, span, summaries, budget), purpose="summary", model=name
            )
            text = clean(reply)
            if not text:
                log.warning("chapter %s-%s: the model's summary was empty", *span)
                return
            async with self.db.write() as session:  # a rare write: the ORM will do
                pt = await session.get(m.Playthrough, playthrough_id)
                if pt is None or pt.turn_count < span[1]:
                    return  # undone that far meanwhile
                params = {"pid": playthrough_id, "last": span[1]}
                if (await session.execute(_written(), params)).first() is not None:
                    self.written[playthrough_id] = span[1]
                    return  # another process (two given the same shard) wrote it meanwhile
                session.add(
                    m.Memory(
                        playthrough_id=playthrough_id,
                        kind=KIND,
                        content=text,
                        importance=0.5,
                        turn_from=span[0],
                        turn_to=span[1],
                    )
                )
                session.add(
                    m.EventLog(
                        playthrough_id=playthrough_id,
                        guild_id=pt.guild_id,
                        kind="chapter",
                        summary=f"chapter of turns {span[0]}-{span[1]} written",
                        data={"turns": list(span), "chars": len(text)},
                    )
                )
            self.written[playthrough_id] = span[1]
        except LLMError as error:
            log.warning("chapter %s-%s not written: %s", span[0], span[1], error)
        except Exception:
            log.exception("chapter %s-%s not written", *span)
