"""What a turn reads before its LLM calls, as prepared statements (engine/db/statements.py):
the turn's hot path, one round trip in the usual case. What it writes after them is in
`engine.turns.turn_writes`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Integer,
    bindparam,
    false,
    select,
    type_coerce,
    union_all,
)

from engine.db import models as m
from engine.db.statements import Call, Runner, first
from engine.state.snapshot import Snapshot
from engine.turns import chapters
from engine.turns.kept import KeptReading, Row
from engine.turns.prompt_parts import (
    KNOWLEDGE_SHOWN,
    ContextParts,
    KnownFact,
    Line,
    Summary,
)

MAX_INPUTS_PER_TURN = 50


@dataclass(frozen=True)
class PlaythroughRow:
    id: int
    guild_id: int
    status: str
    turn_count: int


# --- queries (compiled once each) ------------------------------------------------------


def _active_playthrough() -> Any:
    return select(
        m.Playthrough.id, m.Playthrough.guild_id, m.Playthrough.status, m.Playthrough.turn_count
    ).where(
        m.Playthrough.channel_id == bindparam("channel"),
        m.Playthrough.status == "active",
        m.Playthrough.status != "ended",  # lets SQLite use the partial index on live channels
    )


def _playthrough_by_id() -> Any:
    return select(
        m.Playthrough.id, m.Playthrough.guild_id, m.Playthrough.status, m.Playthrough.turn_count
    ).where(m.Playthrough.id == bindparam("pid"))


def _guild_model() -> Any:
    return select(m.GuildConfig.model).where(m.GuildConfig.guild_id == bindparam("guild"))


def _recent_messages(*newer: Any) -> Any:
    # An integer: a Boolean column would be converted row by row.
    waits = type_coerce(m.Message.turn_id.is_(None) & (m.Message.kind == "player"), Integer)
    return (
        select(m.Message.id, m.Message.speaker_name, m.Message.content, waits, m.Message.turn_id)
        .outerjoin(m.Turn, m.Turn.id == m.Message.turn_id)
        .where(
            m.Message.playthrough_id == bindparam("pid"),
            *newer,
            (m.Turn.status == "done")
            # (no IN: expanding parameters cannot be compiled once)
            | (
                m.Message.turn_id.is_(None)
                & ((m.Message.kind == "narrator") | (m.Message.kind == "player"))
            ),
        )
        .order_by(m.Message.id.desc())
        .limit(bindparam("limit"))
    )


def _messages_after() -> Any:
    """Like `_recent_messages`, only those newer than message `after` (engine.turns.kept)."""
    return _recent_messages(m.Message.id > bindparam("after"))


def _summaries() -> Any:
    return (
        select(m.Memory.turn_to, m.Memory.content)
        .where(m.Memory.playthrough_id == bindparam("pid"), m.Memory.kind == "summary")
        .order_by(m.Memory.turn_to.desc())
        .limit(bindparam("limit"))
    )


def _knowledge_query(count: int) -> Any:
    """What `count` characters know, as the prompt shows it (`KNOWLEDGE_SHOWN`): the
    story's first facts, the newest learned and witnessed ones. One statement made of small
    index range scans; a window over all their knowledge would read every fact ever
    witnessed."""
    columns = (
        m.Knowledge.id,
        m.Knowledge.character_id,
        m.Knowledge.fact,
        m.Knowledge.source,
        m.Knowledge.turn_number,
    )
    parts = []
    for n in range(count):
        for source, (limit, newest) in KNOWLEDGE_SHOWN.items():
            order = (m.Knowledge.turn_number, m.Knowledge.id)
            parts.append(
                select(*columns)
                .where(m.Knowledge.character_id == bindparam(f"c{n}"), m.Knowledge.source == source)
                .order_by(*(column.desc() for column in order) if newest else order)
                .limit(limit)
                .subquery()
            )
    return union_all(*(select(part) for part in parts))


_KNOWLEDGE_QUERIES: dict[int, Any] = {}


def _no_knowledge() -> Any:
    return select(m.Knowledge.character_id).where(false())


def _knowledge(count: int) -> Any:
    # One query function per number of characters, so each is compiled once.
    if count == 0:
        return _no_knowledge
    if count not in _KNOWLEDGE_QUERIES:
        _KNOWLEDGE_QUERIES[count] = lambda: _knowledge_query(count)
    return _KNOWLEDGE_QUERIES[count]


# --- reading ---------------------------------------------------------------------------


async def active_playthrough(runner: Runner, channel_id: int) -> PlaythroughRow | None:
    row = await first(runner, _active_playthrough, channel=channel_id)
    return None if row is None else PlaythroughRow(*row)


async def playthrough_by_id(runner: Runner, playthrough_id: int) -> PlaythroughRow:
    row = await first(runner, _playthrough_by_id, pid=playthrough_id)
    assert row is not None
    return PlaythroughRow(*row)


@dataclass(frozen=True)
class TurnReading:
    """What a turn reads besides the state: the recent transcript, the input waiting for
    it, what the present characters know, earlier summaries (and the server's model)."""

    transcript: list[Row]  # (message id, line), oldest first
    waiting: list[Row]
    knowledge: dict[int, tuple[KnownFact, ...]]  # by character id: kept, then read
    summaries: list[Summary]  # the newest turns', oldest first (the transcript's too)
    chapters: list[chapters.Chapter]
    guild_model: str | None = None
    playthrough: PlaythroughRow | None = None  # read again when asked (`recheck`)
    newest_message: int = 0  # the id of the newest message read (0: none)
    extra: list[list[tuple[Any, ...]]] = field(default_factory=list)  # rows of `extra` calls

    def parts(self, state: Snapshot) -> ContextParts:
        inputs = [line for _, line in self.waiting]
        # Each turn's lines together, in the order written: input written while the turn
        # before was with the model is older than that turn's posts.
        ordered = sorted(self.transcript, key=lambda row: (row[1].turn or 0, row[0]))
        return ContextParts(
            state,
            [line for _, line in ordered],
            inputs,
            [fact for facts in self.knowledge.values() for fact in facts],
            self.summaries,
            chapters=self.chapters,
        )


async def read_turn(
    runner: Runner,
    pt: PlaythroughRow,
    state: Snapshot,
    recent_messages: int,
    *,
    guild_model: bool = False,
    recheck: int | None = None,
    extra: Sequence[Call] = (),
    kept: KeptReading | None = None,
) -> TurnReading:
    """Everything in one round trip, which also ends the read transaction. Waiting input
    is always the newest message (a turn takes all of it), so the recent transcript and
    the input come from one query; knowledge and summaries from indexed ranges. With
    `recheck` (a channel id), the channel's live playthrough is read alongside, so a caller
    that trusted a remembered `pt` can see whether it still holds. `extra` queries ride along
    (recall's); their rows are in `extra`. With `kept` (engine.turns.kept: what the last
    turn's read left) only newer messages and the knowledge of characters not kept are
    read."""
    characters = {c.id: c.key for c in state.present_characters() if not c.is_player}
    known = kept.knowledge if kept is not None else {}
    unread = {cid: key for cid, key in characters.items() if cid not in known}
    limit = recent_messages + MAX_INPUTS_PER_TURN
    messages: Call = (
        (_recent_messages, {"pid": pt.id, "limit": limit})
        if kept is None
        else (_messages_after, {"pid": pt.id, "limit": limit, "after": kept.after})
    )
    calls: list[Call] = [
        messages,
        # The prompt shows those of the turns before its transcript, which can hold up to
        # one turn per two lines (an input and a post), back to the latest chapter, which
        # can end two chapters back (engine.turns.chapters).
        (_summaries, {"pid": pt.id, "limit": recent_messages // 2 + 2 * chapters.CHAPTER_TURNS}),
        (_knowledge(len(unread)), {f"c{n}": cid for n, cid in enumerate(unread)}),
        (chapters.latest, {"pid": pt.id}),
    ]
    if guild_model:
        calls.append((_guild_model, {"guild": pt.guild_id}))
    if recheck is not None:
        calls.append((_active_playthrough, {"channel": recheck}))
    ours = len(calls)
    calls += extra
    results = await runner.finish(calls)
    played = _played_numbers(results[0], pt.turn_count)
    transcript: list[Row] = [] if kept is None else list(kept.lines)
    waiting: list[Row] = []
    for message_id, speaker, text, is_waiting, turn_id in reversed(results[0]):
        if is_waiting:
            waiting.append((message_id, Line(speaker, text)))
        else:
            transcript.append((message_id, Line(speaker, text, played.get(turn_id))))
    newest = results[0][0][0] if results[0] else 0
    model = results[4][0][0] if guild_model and results[4] else None
    live = results[ours - 1] if recheck is not None else []
    return TurnReading(
        transcript[-recent_messages:],
        waiting,
        {**known, **_known_facts(unread, results[2])},
        [Summary(turn, text) for turn, text in reversed(results[1])],
        chapters.chapters_of(results[3]),
        str(model) if model else None,
        PlaythroughRow(*live[0]) if live else None,
        newest if kept is None else max(newest, kept.after),
        results[ours:],
    )


def _played_numbers(rows: list[tuple[Any, ...]], turn_count: int) -> dict[int, int]:
    """The number players know each done turn of `rows` (messages, newest first) by: the
    newest is turn `turn_count`, each older one one less. (`Turn.number` counts attempts,
    failed and undone ones too.) A turn's posts are its newest messages and are written
    after those of every earlier turn, so turns first appear newest first."""
    played: dict[int, int] = {}
    for _, _, _, is_waiting, turn_id in rows:
        if turn_id is not None and not is_waiting and turn_id not in played:
            played[turn_id] = turn_count - len(played)
    return played


def _known_facts(
    keys: dict[int, str], rows: list[tuple[Any, ...]]
) -> dict[int, tuple[KnownFact, ...]]:
    """Each character's facts in the order they were learned."""
    by_character: dict[int, list[tuple[int, KnownFact]]] = {cid: [] for cid in keys}
    for fact_id, cid, fact, source, turn in rows:
        by_character[cid].append((fact_id, KnownFact(keys[cid], fact, source, turn)))
    return {
        cid: tuple(fact for _, fact in sorted(facts, key=itemgetter(0)))
        for cid, facts in by_character.items()
    }
