"""What a turn writes after its LLM calls, as prepared statements (engine/db/statements.py):
counting the turn (only while the story is active and its first input still waits), the
turn row, its inputs and posts, its summary and its event-log entry. Reading is in
`engine.turns.store`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, update

from engine.db import models as m
from engine.db.models import utcnow
from engine.db.statements import Runner, scalar
from engine.state.rows import select_all
from engine.turns.store import PlaythroughRow

PRELOADED = ("characters", "relationships")  # the kinds of rows a turn usually changes
POST_COLUMNS = ("playthrough_id", "turn_id", "kind", "character_id", "speaker_name", "content")


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
