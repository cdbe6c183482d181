"""Hot-path statements: SQLAlchemy Core compiled once, run on the driver connection.

Why: through SQLAlchemy's async adapter each statement costs 0.4-0.6 ms of CPU on the
project's machine (four round trips to aiosqlite's thread and greenlet switches for a
`SELECT 1`); on the aiosqlite connection itself, one round trip: about 0.06 ms. A turn runs
about twenty statements, so this alone decided whether a turn takes 5 ms or 20
(docs/performance.md). The statements are still Core built from the models, compiled by
SQLAlchemy for the engine's dialect with each column's type processing (DateTime, JSON,
Boolean) and Python-side defaults, so they follow the schema; only the execution skips the
adapter. Any other database runs the same statements through SQLAlchemy (`SessionRunner`).

A query is a zero-argument function returning a Core statement; it is compiled on first use
and cached under the function, so define queries at module level (or cache their factories).
Parameters are named with `bindparam("name")` and passed as keywords.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Executable, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Query = Callable[[], ClauseElement]
Processor = Callable[[Any], Any] | None


class Prepared:
    """One statement compiled for a dialect: SQL text, parameter order and type processing."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.statement = cast(Executable, statement)
        self.sql = str(compiled)
        if "POSTCOMPILE" in self.sql:
            raise ValueError(f"expanding IN parameters cannot be prepared: {self.sql}")
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._binds: tuple[Processor, ...] = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        )
        # Values the caller does not pass: literals in the statement (`status == "done"`)
        # and Python-side column defaults of an insert (created_at = utcnow).
        self._defaults: dict[str, Callable[[], Any]] = {}
        for name in self.names:
            bind = compiled.binds[name]
            if not bind.required:
                self._defaults[name] = functools.partial(getattr, bind, "effective_value")
        if isinstance(statement, Insert):
            for column in statement.table.columns:
                default = column.default
                given_bind = compiled.binds.get(column.key)
                # A value the statement gives (`values(kind="summary")`) wins over the
                # column's default; only a column left out gets the default.
                given = given_bind is not None and (
                    given_bind.value is not None or given_bind.callable is not None
                )
                if column.key in self.names and default is not None and not given:
                    arg: Any = getattr(default, "arg", None)
                    if getattr(default, "is_callable", False):
                        self._defaults[column.key] = functools.partial(arg, None)
                    elif getattr(default, "is_scalar", False):
                        self._defaults[column.key] = functools.partial(_same, arg)
        columns = getattr(statement, "selected_columns", None)
        if columns is None and isinstance(statement, Insert):
            columns = statement.exported_columns  # RETURNING
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in (columns or ())
        ]
        self._results = [(i, p) for i, p in enumerate(processors) if p is not None]

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, process in zip(self.names, self._binds, strict=True):
            if name in values:
                value = values[name]
            elif name in self._defaults:
                value = self._defaults[name]()
            else:
                raise KeyError(f"statement needs a value for {name!r}: {self.sql}")
            out.append(value if process is None else process(value))
        return tuple(out)

    def rows(self, raw: list[Any]) -> list[tuple[Any, ...]]:
        if not self._results:
            return raw  # the driver's rows are tuples already
        out = []
        for row in raw:
            values = list(row)
            for index, process in self._results:
                values[index] = process(values[index])
            out.append(tuple(values))
        return out


class PreparedCache:
    """Compiled statements of one database, under the function that builds each."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._prepared: dict[Query, Prepared] = {}

    def __call__(self, query: Query) -> Prepared:
        prepared = self._prepared.get(query)
        if prepared is None:
            prepared = self._prepared[query] = Prepared(query(), self.dialect)
        return prepared


Call = tuple[Query, Mapping[str, Any]]


class Runner(Protocol):
    """Runs prepared queries inside the caller's transaction."""

    async def all(self, query: Query, **params: Any) -> list[tuple[Any, ...]]: ...

    async def all_each(self, calls: Sequence[Call]) -> list[list[tuple[Any, ...]]]:
        """The rows of each query (on SQLite: in one round trip)."""
        ...

    async def finish(self, calls: Sequence[Call]) -> list[list[tuple[Any, ...]]]:
        """Like `all_each`, as the transaction's last statements: on SQLite they go with
        the commit in one round trip. Nothing may run after them."""
        ...

    async def run(self, query: Query, **params: Any) -> None: ...

    async def run_many(self, query: Query, rows: Sequence[Mapping[str, Any]]) -> None: ...


async def first(runner: Runner, query: Query, **params: Any) -> tuple[Any, ...] | None:
    rows = await runner.all(query, **params)
    return rows[0] if rows else None


async def scalar(runner: Runner, query: Query, **params: Any) -> Any:
    row = await first(runner, query, **params)
    return None if row is None else row[0]


# One statement for the driver's thread: SQL, parameters, and what it is: "run" (no rows
# wanted), "many" (executemany) or "query" (its rows are returned).
Step = tuple[str, Any, str]


class DriverRunner:
    """On the aiosqlite connection. Statements that return nothing wait and ride along with
    the next round trip to the driver's thread (a query, or the commit), so a transaction
    takes about as many round trips as it has queries: each round trip wakes that thread
    and then the event loop, which costs more than most statements. A failing statement
    therefore raises at the next query or at the commit, still inside the transaction.
    Driver errors are raised as SQLAlchemy's (`IntegrityError`...), as through a session.
    """

    def __init__(self, connection: Any, prepared: PreparedCache, end: str = "COMMIT") -> None:
        self._connection = connection  # aiosqlite.Connection
        self._prepared = prepared
        self._end = end
        self._pending: list[Step] = []
        self.finished = False
        # aiosqlite has no public way to run several statements in one trip to its thread;
        # without these two (private) members every statement takes its own trip.
        self._in_thread = getattr(connection, "_execute", None)
        self._batches = self._in_thread is not None and hasattr(connection, "_conn")

    @property
    def batches(self) -> bool:
        """Whether statements share round trips (see the class docstring)."""
        return self._batches

    def later(self, sql: str) -> None:
        """Send `sql` (BEGIN...) with the next round trip."""
        self._pending.append((sql, (), "run"))

    async def all(self, query: Query, **params: Any) -> list[tuple[Any, ...]]:
        return (await self.all_each([(query, params)]))[0]

    async def all_each(self, calls: Sequence[Call]) -> list[list[tuple[Any, ...]]]:
        return await self._queries(calls, end=False)

    async def finish(self, calls: Sequence[Call]) -> list[list[tuple[Any, ...]]]:
        return await self._queries(calls, end=True)

    async def run(self, query: Query, **params: Any) -> None:
        p = self._prepared(query)
        await self._add((p.sql, p.bind(params), "run"))

    async def run_many(self, query: Query, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            p = self._prepared(query)
            await self._add((p.sql, [p.bind(row) for row in rows], "many"))

    async def end(self) -> None:
        """Send what waits and end the transaction (unless `finish` did)."""
        if not self.finished:
            self.finished = True
            self._pending.append((self._end, (), "run"))
            await self._trip()

    async def _add(self, step: Step) -> None:
        if self.finished:
            raise RuntimeError("the transaction has ended")
        self._pending.append(step)
        if not self._batches:
            await self._trip()

    async def _queries(self, calls: Sequence[Call], *, end: bool) -> list[list[tuple[Any, ...]]]:
        if self.finished:
            raise RuntimeError("the transaction has ended")
        prepared = [self._prepared(query) for query, _ in calls]
        for p, (_, params) in zip(prepared, calls, strict=True):
            self._pending.append((p.sql, p.bind(params), "query"))
        if end:
            self.finished = True
            self._pending.append((self._end, (), "run"))
        results = await self._trip()
        return [p.rows(rows) for p, rows in zip(prepared, results, strict=True)]

    async def _trip(self) -> list[list[Any]]:
        steps, self._pending = self._pending, []
        if self._batches:
            assert self._in_thread is not None
            return list(await self._in_thread(self._run_steps, steps))
        results = []
        for sql, params, kind in steps:
            try:
                if kind == "many":
                    await self._connection.executemany(sql, params)
                else:
                    rows = list(await self._connection.execute_fetchall(sql, params))
                    if kind == "query":
                        results.append(rows)
            except sqlite3.Error as error:
                raise _translated(sql, params, error) from error
        return results

    def _run_steps(self, steps: list[Step]) -> list[list[Any]]:
        """In the driver's thread: every step; the rows of each query."""
        connection = self._connection._conn
        results = []
        for sql, params, kind in steps:
            try:
                if kind == "many":
                    connection.executemany(sql, params)
                else:
                    rows = connection.execute(sql, params).fetchall()
                    if kind == "query":
                        results.append(rows)
            except sqlite3.Error as error:
                raise _translated(sql, params, error) from error
        return results


def _translated(sql: str, params: Any, error: sqlite3.Error) -> Exception:
    return DBAPIError.instance(sql, params, error, sqlite3.Error)


def _same(value: Any) -> Any:
    return value


class SessionRunner:
    """Through SQLAlchemy: for any database, and for callers that also use the ORM session
    (its pending objects are flushed first, so statements see them)."""

    def __init__(self, session: AsyncSession | AsyncConnection, prepared: PreparedCache) -> None:
        self._session = session
        self._prepared = prepared

    async def _connection(self) -> AsyncConnection:
        if isinstance(self._session, AsyncConnection):
            return self._session
        await self._session.flush()
        return await self._session.connection()

    async def all(self, query: Query, **params: Any) -> list[tuple[Any, ...]]:
        result = await (await self._connection()).execute(self._prepared(query).statement, params)
        return [tuple(row) for row in result.all()] if result.returns_rows else []

    async def all_each(self, calls: Sequence[Call]) -> list[list[tuple[Any, ...]]]:
        return [await self.all(query, **params) for query, params in calls]

    async def finish(self, calls: Sequence[Call]) -> list[list[tuple[Any, ...]]]:
        return await self.all_each(calls)  # the session's context commits

    async def run(self, query: Query, **params: Any) -> None:
        await (await self._connection()).execute(self._prepared(query).statement, params)

    async def run_many(self, query: Query, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await (await self._connection()).execute(self._prepared(query).statement, list(rows))
