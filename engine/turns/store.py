"""What a turn reads before its LLM calls and writes after them, as prepared statements
(engine/db/statements.py): the turn's hot path, a handful of statements each way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Integer,
    bindparam,
    exists,
    false,
    func,
    insert,
    select,
    type_coerce,
    union_all,
    update,
)

from engine.db import models as m
from engine.db.models import utcnow
from engine.db.statements import Call, Runner, first, scalar
from engine.state.rows import select_all
from engine.state.snapshot import Snapshot
from engine.turns.context import MAX_WITNESSED, ContextParts, KnownFact, Line

MAX_PRIVATE_FACTS = 20
MAX_SUMMARIES = 8
MAX_INPUTS_PER_TURN = 50
PRELOADED = ("characters", "relationships")  # the kinds of rows a turn usually changes
POST_COLUMNS = ("playthrough_id", "turn_id", "kind", "character_id", "speaker_name", "content")


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


def _recent_messages() -> Any:
    # An integer: a Boolean column would be converted row by row.
    waits = type_coerce(m.Message.turn_id.is_(None) & (m.Message.kind == "player"), Integer)
    return (
        select(m.Message.id, m.Message.speaker_name, m.Message.content, waits)
        .outerjoin(m.Turn, m.Turn.id == m.Message.turn_id)
        .where(
            m.Message.playthrough_id == bindparam("pid"),
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


def _summaries() -> Any:
    return (
        select(m.Memory.content)
        .where(
            m.Memory.playthrough_id == bindparam("pid"),
            m.Memory.kind == "summary",
            m.Memory.turn_to <= bindparam("until"),
        )
        .order_by(m.Memory.turn_to.desc())
        .limit(MAX_SUMMARIES)
    )


def _knowledge_query(count: int) -> Any:
    """Private facts and the latest witnessed ones of `count` characters, in one statement
    made of small index range scans: a window over all their knowledge, or `source !=
    "witnessed"` (which the index cannot range over), would read every fact ever witnessed."""
    columns = (
        m.Knowledge.character_id,
        m.Knowledge.fact,
        m.Knowledge.source,
        m.Knowledge.turn_number,
    )
    parts = []
    for n in range(count):
        mine = m.Knowledge.character_id == bindparam(f"c{n}")
        for private in (m.Knowledge.source < "witnessed", m.Knowledge.source > "witnessed"):
            parts.append(
                select(*columns)
                .where(mine, private)
                .order_by(m.Knowledge.turn_number)
                .limit(MAX_PRIVATE_FACTS)
                .subquery()
            )
        parts.append(
            select(*columns)
            .where(mine, m.Knowledge.source == "witnessed")
            .order_by(m.Knowledge.turn_number.desc())
            .limit(MAX_WITNESSED)
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


def _insert_turn() -> Any:
    next_number = (
        select(func.coalesce(func.max(m.Turn.number), 0) + 1)
        .where(m.Turn.playthrough_id == bindparam("pid"))
        .scalar_subquery()
    )
    return (
        insert(m.Turn)
        .values(
            playthrough_id=bindparam("pid"),
            number=next_number,
            status=bindparam("status"),
            context_tokens=bindparam("tokens"),
            error=bindparam("error"),
            finished_at=bindparam("finished"),
        )
        .returning(m.Turn.id)
    )


def _attach_input() -> Any:
    return (
        update(m.Message)
        .where(m.Message.id == bindparam("message_id"), m.Message.turn_id.is_(None))
        .values(turn_id=bindparam("turn"))
    )


def _insert_posts() -> Any:
    return insert(m.Message).values({c: bindparam(c) for c in POST_COLUMNS})


def _count_turn() -> Any:
    # Only while the story is active and the turn's first input still waits: if another
    # process (two bot processes given the same shard) answered it meanwhile, this turn
    # would tell the same moment twice.
    still_waiting = exists().where(
        m.Message.id == bindparam("first_input"), m.Message.turn_id.is_(None)
    )
    return (
        update(m.Playthrough)
        .where(
            m.Playthrough.id == bindparam("pid"),
            m.Playthrough.status == "active",
            still_waiting,
        )
        .values(turn_count=m.Playthrough.turn_count + 1)
        .returning(m.Playthrough.turn_count, m.Playthrough.guild_id)
    )


def _insert_summary() -> Any:
    return insert(m.Memory).values(
        playthrough_id=bindparam("pid"),
        kind="summary",
        content=bindparam("content"),
        importance=bindparam("importance"),
        turn_from=bindparam("turn"),
        turn_to=bindparam("turn"),
    )


def _insert_event() -> Any:
    return insert(m.EventLog).values(
        playthrough_id=bindparam("pid"),
        guild_id=bindparam("guild"),
        turn_id=bindparam("turn"),
        kind=bindparam("kind"),
        summary=bindparam("summary"),
        data=bindparam("data"),
    )


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

    transcript: list[Line]
    waiting: list[tuple[int, Line]]
    knowledge: list[KnownFact]
    summaries: list[str]
    guild_model: str | None = None
    playthrough: PlaythroughRow | None = None  # read again when asked (`recheck`)

    def parts(self, state: Snapshot) -> ContextParts:
        inputs = [line for _, line in self.waiting]
        return ContextParts(state, self.transcript, inputs, self.knowledge, self.summaries)


async def read_turn(
    runner: Runner,
    pt: PlaythroughRow,
    state: Snapshot,
    recent_messages: int,
    *,
    guild_model: bool = False,
    recheck: int | None = None,
    finish: bool = True,
) -> TurnReading:
    """Everything in one round trip, which also ends the read transaction (unless
    `finish` is false: the caller reads more, as recall does). Waiting input
    is always the newest message (a turn takes all of it), so the recent transcript and
    the input come from one query; knowledge and summaries from indexed ranges. With
    `recheck` (a channel id), the channel's live playthrough is read alongside, so a caller
    that trusted a remembered `pt` can see whether it still holds."""
    characters = {c.id: c.key for c in state.present_characters() if not c.is_player}
    limit = recent_messages + MAX_INPUTS_PER_TURN
    calls: list[Call] = [
        (_recent_messages, {"pid": pt.id, "limit": limit}),
        (_summaries, {"pid": pt.id, "until": pt.turn_count - MAX_SUMMARIES}),
        (_knowledge(len(characters)), {f"c{n}": cid for n, cid in enumerate(characters)}),
    ]
    if guild_model:
        calls.append((_guild_model, {"guild": pt.guild_id}))
    if recheck is not None:
        calls.append((_active_playthrough, {"channel": recheck}))
    results = await (runner.finish(calls) if finish else runner.all_each(calls))
    transcript: list[Line] = []
    waiting: list[tuple[int, Line]] = []
    for message_id, speaker, text, is_waiting in reversed(results[0]):
        if is_waiting:
            waiting.append((message_id, Line(speaker, text)))
        else:
            transcript.append(Line(speaker, text))
    model = results[3][0][0] if guild_model and results[3] else None
    live = results[-1] if recheck is not None else []
    return TurnReading(
        transcript[-recent_messages:],
        waiting,
        _known_facts(characters, results[2]),
        [summary for (summary,) in reversed(results[1])],
        str(model) if model else None,
        PlaythroughRow(*live[0]) if live else None,
    )


def _known_facts(keys: dict[int, str], rows: list[tuple[Any, ...]]) -> list[KnownFact]:
    facts = [KnownFact(keys[cid], fact, source, turn) for cid, fact, source, turn in rows]
    facts.sort(key=lambda f: (f.character_key, f.turn))
    private: dict[str, int] = {}
    kept = []
    for fact in facts:  # the two private ranges may bring twice the limit together
        if fact.source != "witnessed":
            private[fact.character_key] = private.get(fact.character_key, 0) + 1
            if private[fact.character_key] > MAX_PRIVATE_FACTS:
                continue
        kept.append(fact)
    return kept


# --- writing ---------------------------------------------------------------------------


async def insert_turn(
    runner: Runner,
    playthrough_id: int,
    status: str,
    *,
    tokens: int | None = None,
    error: str | None = None,
) -> int:
    params = _turn_params(playthrough_id, status, tokens, error)
    turn_id = await scalar(runner, _insert_turn, **params)
    return int(turn_id)


def _turn_params(pid: int, status: str, tokens: int | None, error: str | None) -> dict[str, Any]:
    return {
        "pid": pid,
        "status": status,
        "tokens": tokens,
        "error": error,
        "finished": utcnow(),
    }


async def attach_inputs(runner: Runner, turn_id: int, input_ids: tuple[int, ...]) -> None:
    await runner.run_many(_attach_input, [{"message_id": i, "turn": turn_id} for i in input_ids])


async def insert_posts(runner: Runner, rows: list[dict[str, Any]]) -> None:
    await runner.run_many(_insert_posts, rows)


class TurnDropped(Exception):
    """The story was paused or ended, or the turn's input answered elsewhere, while the turn
    was being written."""


async def begin_turn(
    runner: Runner, playthrough_id: int, first_input: int, tokens: int
) -> tuple[PlaythroughRow, int, dict[str, list[tuple[Any, ...]]]]:
    """Count one more turn of the still active playthrough and create the turn, reading the
    rows a turn usually changes, in one round trip. Raises `TurnDropped` (the caller's
    transaction then rolls back) when the playthrough is no longer active or `first_input`
    was answered meanwhile."""
    counted, created, *loaded = await runner.all_each(
        [
            (_count_turn, {"pid": playthrough_id, "first_input": first_input}),
            (_insert_turn, _turn_params(playthrough_id, "done", tokens, None)),
            *((select_all(table), {"pid": playthrough_id}) for table in PRELOADED),
        ]
    )
    if not counted:
        raise TurnDropped()
    count, guild_id = counted[0]
    pt = PlaythroughRow(playthrough_id, guild_id, "active", count)
    return pt, int(created[0][0]), dict(zip(PRELOADED, loaded, strict=True))


async def insert_summary(
    runner: Runner, playthrough_id: int, turn: int, content: str, importance: float
) -> None:
    await runner.run(
        _insert_summary, pid=playthrough_id, content=content, importance=importance, turn=turn
    )


async def log_event(
    runner: Runner,
    playthrough: PlaythroughRow,
    kind: str,
    summary: str,
    data: dict[str, Any],
    turn_id: int | None = None,
) -> None:
    await runner.run(
        _insert_event,
        pid=playthrough.id,
        guild=playthrough.guild_id,
        turn=turn_id,
        kind=kind,
        summary=summary,
        data=data,
    )
