"""WAL checkpoints in the background, so no turn waits for one.

In WAL mode SQLite appends every commit to the write-ahead log and, once the log passes
`wal_autocheckpoint` pages (1,000 by default), the commit that crossed the line copies the
whole log back into the database file before it returns. A turn writes about 40 pages, so
every 25th turn or so paid 12-20 ms for that copy (bench/turns.py: p99 21 ms with it, 8 ms
without; docs/performance.md).

So the connections of this process leave that to `WalCheckpointer`: a task that, about a
second after writes, runs a PASSIVE checkpoint on a connection of its own. SQLite copies
the log while readers and the writer go on (PASSIVE takes no lock they wait for), and the
copy runs in that connection's driver thread, off the event loop.

The log only starts over from its beginning when a write transaction begins after every
frame of it was copied. Under steady writes one is always open or starting while the copy
ends, so the log grew until the backstop (a 130 ms checkpoint in one turn's commit,
bench/turns.py). So a second pass follows while the process's writers wait (the lock that
queues them): it copies the few frames written during the first, and the next write starts
the log over. A millisecond or two, once a second at most.
The automatic checkpoint stays as a backstop at BACKSTOP_PAGES, should this task fall
behind or stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 16_000  # 64 MiB of log at SQLite's default 4 KiB pages
# A log file keeps the size it once reached (a burst of writes, a long import); past this
# it is cut back when it starts over, so the disk gets the space back.
LOG_SIZE_LIMIT = 8 * 1024 * 1024
DELAY_SECONDS = 1.0  # writes coming in a burst share one checkpoint


class WalCheckpointer:
    """Checkpoints one SQLite database file after writes (`wrote`); `close` stops it."""

    def __init__(
        self, engine: AsyncEngine, writers: asyncio.Lock, delay: float = DELAY_SECONDS
    ) -> None:
        self.engine = engine
        self.writers = writers  # held by every write of this process
        self.delay = delay
        self.checkpoints = 0  # done so far, both passes (tests read it)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None

    def wrote(self) -> None:
        """Note a committed write; a checkpoint follows within `delay`."""
        self._dirty.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.delay)
            self._dirty.clear()  # writes from now on ask for the next one
            try:
                await self._checkpoint()
            except Exception:
                # The automatic checkpoint still runs at BACKSTOP_PAGES; try again later.
                log.warning("WAL checkpoint failed", exc_info=True)
                await self._drop_connection()

    async def _checkpoint(self) -> None:
        if await self._pass() > 0:  # (0: the log is empty, nothing to start over)
            async with self.writers:  # the frames written meanwhile, with no new ones coming
                await self._pass()
        self.checkpoints += 1

    async def _pass(self) -> int:
        """One PASSIVE checkpoint; the number of frames in the log."""
        if self._connection is None:
            self._connection = await self.engine.connect()
        raw: Any = (await self._connection.get_raw_connection()).driver_connection
        # Outside any transaction (the driver's isolation level is None): a checkpoint
        # cannot run inside one.
        cursor = await raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
        busy, frames, copied = await cursor.fetchone()
        await cursor.close()
        log.debug("WAL checkpoint: %s of %s frames copied (busy=%s)", copied, frames, busy)
        return int(frames)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._drop_connection()
