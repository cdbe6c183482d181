"""Prepared statements on the driver connection store and read values exactly as SQLAlchemy
does (JSON, DateTime, Boolean, Python-side defaults), and fail the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from engine.db import Database
from engine.db import models as m
from engine.db.migrate import upgrade_to_head
from engine.db.statements import DriverRunner, first

VALUES: list[Any] = [None, True, 0, 2.5, "text", [1, "two", None], {"nested": {"a": [True]}}]


def _insert_change() -> Any:
    return insert(m.Change).values(
        playthrough_id=bindparam("pid"),
        kind="flag",
        target=bindparam("target"),
        before=bindparam("before"),
        after=bindparam("after"),
        actor="test",
        reverted=bindparam("reverted"),
    )


def _change_of() -> Any:
    return select(m.Change.before, m.Change.after, m.Change.reverted, m.Change.created_at).where(
        m.Change.target == bindparam("target")
    )


def _insert_message() -> Any:
    return insert(m.Message).values(
        playthrough_id=bindparam("pid"),
        kind="player",
        speaker_name="Ash",
        content=bindparam("content"),
        discord_message_id=bindparam("discord"),
    )


@pytest.fixture(params=[True, False], ids=["driver", "sqlalchemy"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", driver_statements=request.param)
    await upgrade_to_head(database.engine)
    async with database.write() as session:
        story = m.Story(key="s", title="S", content_hash="h", source_path="s.toml", data={})
        session.add(story)
        await session.flush()
        session.add(
            m.Playthrough(
                id=1, story_id=story.id, guild_id=1, channel_id=1, status="active", started_by=1
            )
        )
    yield database
    await database.close()


async def test_values_round_trip_as_through_the_orm(db: Database) -> None:
    rows = [
        {"pid": 1, "target": f"t{n}", "before": v, "after": {"v": v}, "reverted": n % 2 == 0}
        for n, v in enumerate(VALUES)
    ]
    async with db.writing() as runner:
        await runner.run_many(_insert_change, rows)
    async with db.read() as session:
        stored = (await session.scalars(select(m.Change).order_by(m.Change.id))).all()
    assert [(c.before, c.after, c.reverted) for c in stored] == [
        (r["before"], r["after"], r["reverted"]) for r in rows
    ]
    assert all(isinstance(c.created_at, datetime) for c in stored)  # the column's default
    async with db.reading() as runner:
        found = await first(runner, _change_of, target="t6")
    assert found is not None
    assert found[:3] == (VALUES[6], {"v": VALUES[6]}, True)
    assert found[3] == stored[6].created_at


def _insert_summary_memory() -> Any:
    # `kind` has a column default ("fact"); the value given here must win over it.
    return insert(m.Memory).values(playthrough_id=1, kind="summary", content=bindparam("text"))


async def test_a_value_given_in_the_statement_wins_over_the_column_default(db: Database) -> None:
    async with db.writing() as runner:
        await runner.run(_insert_summary_memory, text="Mira hid the key.")
    async with db.read() as session:
        stored = (await session.scalars(select(m.Memory))).one()
    assert (stored.kind, stored.content) == ("summary", "Mira hid the key.")
    assert isinstance(stored.created_at, datetime)  # a column left out still gets its default


async def test_a_failed_statement_raises_sqlalchemy_errors_and_rolls_back(db: Database) -> None:
    async with db.writing() as runner:
        await runner.run(_insert_message, pid=1, content="first", discord=99)
    with pytest.raises(IntegrityError):
        async with db.writing() as runner:
            await runner.run(_insert_message, pid=1, content="kept only if committed", discord=5)
            await runner.run(_insert_message, pid=1, content="duplicate", discord=99)
    async with db.read() as session:
        contents = (await session.scalars(select(m.Message.content))).all()
    assert contents == ["first"]


async def test_statements_share_round_trips_with_the_installed_aiosqlite(tmp_path: Path) -> None:
    """Turns stay correct without it, but each statement then costs its own trip to the
    driver's thread (docs/performance.md): an aiosqlite upgrade that removes what batching
    uses should fail here rather than slow every turn down unnoticed."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with database.reading() as runner:
            assert isinstance(runner, DriverRunner)
            assert runner.batches
    finally:
        await database.close()
