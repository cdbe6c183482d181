"""What a turn reads before its LLM calls and writes after them, as prepared statements
(engine/db/statements.py): the turn's hot path, a handful of statements each way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, union_all, update

from engine.db import models as m
from engine.db.models import utcnow
from engine.db.statements import Runner, first, scalar
from engine.state.snapshot import CharacterState, Snapshot
from engine.turns.context import MAX_WITNESSED, ContextParts, KnownFact, Line

MAX_PRIVATE_FACTS = 20
MAX_SUMMARIES = 8
MAX_INPUTS_PER_TURN = 50
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
    waits = m.Message.turn_id.is_(None) & (m.Message.kind == "player")
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


def _knowledge(count: int) -> Any:
    # One query function per number of characters, so each is compiled once.
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
    return (
        update(m.Playthrough)
        .where(m.Playthrough.id == bindparam("pid"), m.Playthrough.status == "active")
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


async def guild_model(runner: Runner, guild_id: int) -> str | None:
    found = await scalar(runner, _guild_model, guild=guild_id)
    return str(found) if found else None


async def load_recent(
    runner: Runner, playthrough_id: int, recent_messages: int
) -> tuple[list[Line], list[tuple[int, Line]]]:
    """The recent transcript and the player input waiting for a turn, in one query: waiting
    input is always the newest (a turn takes all of it), so both sit at the end."""
    rows = await runner.all(
        _recent_messages, pid=playthrough_id, limit=recent_messages + MAX_INPUTS_PER_TURN
    )
    transcript: list[Line] = []
    waiting: list[tuple[int, Line]] = []
    for message_id, speaker, text, is_waiting in reversed(rows):
        if is_waiting:
            waiting.append((message_id, Line(speaker, text)))
        else:
            transcript.append(Line(speaker, text))
    return transcript[-recent_messages:], waiting


async def load_context_parts(
    runner: Runner,
    turn_count: int,
    state: Snapshot,
    transcript: list[Line],
    inputs: list[Line],
) -> ContextParts:
    """Everything else the scene prompt is built from, in two indexed queries."""
    knowledge = await _knowledge_of(
        runner, [c for c in state.present_characters() if not c.is_player]
    )
    summaries = await runner.all(
        _summaries, pid=state.playthrough_id, until=turn_count - MAX_SUMMARIES
    )
    return ContextParts(state, transcript, inputs, knowledge, [s for (s,) in reversed(summaries)])


async def _knowledge_of(runner: Runner, characters: list[CharacterState]) -> list[KnownFact]:
    if not characters:
        return []
    keys = {c.id: c.key for c in characters}
    params = {f"c{n}": character_id for n, character_id in enumerate(keys)}
    rows = await runner.all(_knowledge(len(keys)), **params)
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
    turn_id = await scalar(
        runner,
        _insert_turn,
        pid=playthrough_id,
        status=status,
        tokens=tokens,
        error=error,
        finished=utcnow(),
    )
    return int(turn_id)


async def attach_inputs(runner: Runner, turn_id: int, input_ids: tuple[int, ...]) -> None:
    await runner.run_many(_attach_input, [{"message_id": i, "turn": turn_id} for i in input_ids])


async def insert_posts(runner: Runner, rows: list[dict[str, Any]]) -> None:
    await runner.run_many(_insert_posts, rows)


async def count_turn(runner: Runner, playthrough_id: int) -> PlaythroughRow | None:
    """Count one more turn of a still active playthrough; None if it is not active now."""
    row = await first(runner, _count_turn, pid=playthrough_id)
    return None if row is None else PlaythroughRow(playthrough_id, row[1], "active", row[0])


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
