"""Engine and session factory.

SQLite needs care (design §2): Python's sqlite3 driver starts transactions lazily with a plain
`BEGIN`, so two read-then-write transactions can both read the old value and one update is
lost or fails late with "database is locked". We take transaction control from the driver
(`isolation_level = None`) and start write transactions with `BEGIN IMMEDIATE`, which takes
the write lock up front; other writers wait (`busy_timeout`) instead of racing. Within this
process an asyncio lock also queues writers, so they wait on the event loop rather than in
SQLite's sleeping busy handler. Reads use a deferred `BEGIN` and run in parallel (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from engine.db.checkpoint import BACKSTOP_PAGES, LOG_SIZE_LIMIT, WalCheckpointer
from engine.db.statements import DriverRunner, PreparedCache, Runner, SessionRunner

_READ_ONLY = "dreamwalkers_read_only"
BUSY_TIMEOUT_MS = 30_000
READERS = 2  # kept-open connections for prepared reads, see `_take_reader`
WAL_SWITCH_RETRY_SECONDS = 0.01  # see `_switch_to_wal`


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a file-based SQLite database, so a fresh checkout just works."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code: int | None = getattr(error, "sqlite_errorcode", None)  # (set when SQLite raised it)
    if code is None:
        return "database is locked" in str(error)
    return code & 0xFF == sqlite3.SQLITE_BUSY


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, tried again while another connection holds the lock.

    Switching a file that is not in WAL mode yet (a new one) takes its write lock, and when
    another connection holds that lock SQLite refuses at once with "database is locked"
    instead of waiting `busy_timeout` (SQLite skips the busy handler there). So two processes
    starting on one new file (two shards, design §9) raced: the one that lost exited. Once
    the file is in WAL mode the switch takes no write lock, so only the first start on a file
    can come here more than once. The waits are on the event loop (the connect hook runs in
    SQLAlchemy's greenlet), so the loop is not blocked meanwhile.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
        await_only(asyncio.sleep(WAL_SWITCH_RETRY_SECONDS))


def _install_sqlite_rules(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver; the "begin" hook below issues it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints are the background task's (engine/db/checkpoint.py); this is its backstop.
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={LOG_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine with the SQLite rules installed when the URL is SQLite."""
    ensure_sqlite_folder(url)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        _install_sqlite_rules(engine)
    return engine


class Database:
    """Owns the engine and hands out one short session per unit of work.

    `write()` yields a session inside a write transaction that commits on success;
    `read()` yields a session in a read-only (deferred) transaction. Never hold either
    across an LLM call.
    """

    def __init__(self, url: str, *, driver_statements: bool = True, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self._sqlite = is_sqlite(url)
        # Hot-path statements go straight to aiosqlite on SQLite (engine/db/statements.py).
        self._driver = self._sqlite and driver_statements
        self.prepared = PreparedCache(self.engine.dialect)
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        read_engine = self._read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self._read_sessions = async_sessionmaker(read_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()
        self._writer: AsyncConnection | None = None  # see `writing()`
        self._idle_readers: asyncio.Queue[AsyncConnection] = asyncio.Queue()  # `_take_reader`
        self._readers_open = 0
        self._drivers: dict[AsyncConnection, Any] = {}  # kept-open connection -> aiosqlite
        database = make_url(url).database or ""
        in_memory = database in ("", ":memory:") or "mode=memory" in database
        self.checkpoints = (
            WalCheckpointer(self.engine, self._write_lock)
            if self._sqlite and not in_memory
            else None
        )

    def _wrote(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.wrote()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        lock = self._write_lock if self._sqlite else contextlib.nullcontext()
        async with lock, self._write_sessions() as session, session.begin():
            yield session
        self._wrote()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session, session.begin():
            yield session

    def runner(self, session: AsyncSession) -> Runner:
        """Prepared queries inside an ORM session's transaction."""
        return SessionRunner(session, self.prepared)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[Runner]:
        """Like `write()`, for prepared queries only (the turn's hot path). On SQLite the
        writes of this process take turns anyway (the lock), so they share one connection,
        kept open: no pool checkout and reset per transaction."""
        if not self._driver:
            async with self._sessions_only(self.engine) as runner:
                yield runner
            self._wrote()
            return
        async with self._write_lock:
            if self._writer is None:
                self._writer = await self.engine.connect()
            async with self._driver_transaction(self._writer, "BEGIN IMMEDIATE") as runner:
                yield runner
        self._wrote()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Runner]:
        """Like `read()`, for prepared queries only."""
        if not self._driver:
            async with self._sessions_only(self._read_engine) as runner:
                yield runner
            return
        connection = await self._take_reader()
        try:
            async with self._driver_transaction(connection, "BEGIN") as runner:
                yield runner
        except BaseException:
            await self._drop_reader(connection)
            raise
        if connection.invalidated:
            await self._drop_reader(connection)
        else:
            self._idle_readers.put_nowait(connection)

    async def _drop_reader(self, connection: AsyncConnection) -> None:
        self._readers_open -= 1
        self._drivers.pop(connection, None)
        await connection.close()

    async def _take_reader(self) -> AsyncConnection:
        """One of at most `READERS` kept-open connections. Keeping them open skips the
        pool's checkout and reset (about 0.2 ms each); having few of them keeps the
        driver threads (one per connection) from taking turns at the GIL under load."""
        if self._idle_readers.empty() and self._readers_open < READERS:
            self._readers_open += 1
            try:
                return await self.engine.connect()
            except BaseException:
                self._readers_open -= 1
                raise
        return await self._idle_readers.get()

    @contextlib.asynccontextmanager
    async def _sessions_only(self, engine: AsyncEngine) -> AsyncIterator[Runner]:
        lock = self._write_lock if self._sqlite and engine is self.engine else None
        async with lock or contextlib.nullcontext(), engine.begin() as connection:
            yield SessionRunner(connection, self.prepared)

    @contextlib.asynccontextmanager
    async def _driver_transaction(
        self, connection: AsyncConnection, begin: str
    ) -> AsyncIterator[Runner]:
        raw = self._drivers.get(connection)
        if raw is None:  # asked once per kept-open connection (it costs a greenlet switch)
            raw = self._drivers[connection] = (
                await connection.get_raw_connection()
            ).driver_connection
        assert raw is not None
        runner = DriverRunner(raw, self.prepared)
        runner.later(begin)  # goes with the first query
        try:
            yield runner
            await runner.end()  # COMMIT, with what waits
        except BaseException:
            try:
                await raw.rollback()
            except Exception:
                # A connection that cannot roll back is not reused.
                if connection is self._writer:
                    self._writer = None
                self._drivers.pop(connection, None)
                await connection.invalidate()
            raise

    async def close(self) -> None:
        if self.checkpoints is not None:
            await self.checkpoints.close()
        while not self._idle_readers.empty():
            await self._drop_reader(self._idle_readers.get_nowait())
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        self._drivers.clear()
        await self.engine.dispose()
