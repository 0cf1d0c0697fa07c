"""The follower: every node applies the change rows the other nodes wrote, in id order.

It remembers the id of the last row it applied (:attr:`Follower.applied`, read before the registry was
loaded at start, so nothing written meanwhile is missed; a row applied twice changes nothing). It reads
the rows after it: every ``poll`` seconds (0.25 s on SQLite, one query on the primary key; 1 s on
PostgreSQL, where it is the safety net), and at once when woken (a NOTIFY, faasd/cluster/listen.py).
On SQLite a poll first looks at the database file and its write-ahead log: while neither changed since
the last read, no row can be new, and the poll costs two ``stat`` calls instead of a query (the rows are
still read every 5 s).
Its own node's rows are skipped: that node applied them when it wrote them. If the rows after
``applied`` were trimmed before it read them (it was cut off from the database for longer than rows are
kept), it reloads the whole registry instead. Every ``trim_every`` seconds it deletes the rows older
than ``keep`` seconds, except the newest, so the newest id is always there to start after.

While the database cannot be reached it keeps trying (every poll), logs the outage once, and catches up
when it answers again. A row that fails :data:`ROW_TRIES` times for another reason (a bug, a value from
a newer faasd) is skipped with an error naming it, and the whole registry reloaded in its place: one row
never stops the follower. :meth:`Follower.failing_for` tells readiness how long it has been failing. It
runs beside the request path; no call waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from faasd.cluster.availability import is_unavailable
from faasd.store.models import ChangeRow

# True while this task applies other nodes' change rows (Follower.catch_up).
APPLYING: ContextVar[bool] = ContextVar("faasd_cluster_applying", default=False)

log = logging.getLogger(__name__)

SQLITE_POLL = 0.25
POSTGRESQL_POLL = 1.0
KEEP_SECONDS = 600.0  # rows older than this are trimmed; a follower cut off for longer reloads everything
TRIM_EVERY = 60.0
BATCH = 500
READ_EVERY = 5.0  # seconds: on SQLite, the rows are read at least this often even when the files look the same
ROW_TRIES = 3  # a row that fails this often (the database answering) is skipped, and the registry reloaded


@dataclass(frozen=True)
class Change:
    id: int
    kind: str
    name: str
    node: str
    at: float  # Unix seconds, when the writer committed


Look = tuple[tuple[int, int, int] | None, ...]


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class ChangeFeed:
    """The ``changes`` table: read after an id, trimmed by age."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # SQLite: the database file and its write-ahead log. Every commit writes to the log, so while
        # neither changed since a read, no new row can be there: the poll then costs two stat calls.
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._files = (database, f"{database}-wal") if database else ()
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # The poll's query, compiled once (a connection, no ORM session: the poll runs every 0.25 s).
        self._after = (
            select(ChangeRow.id, ChangeRow.kind, ChangeRow.name, ChangeRow.node, ChangeRow.at)
            .where(ChangeRow.id > bindparam("last"))
            .order_by(ChangeRow.id)
            .limit(bindparam("limit"))
        )

    def look(self) -> Look | None:
        """What the files look like now (None: no files to look at, as on PostgreSQL: read)."""
        return tuple(_stat(path) for path in self._files) if self._files else None

    async def last_id(self) -> int:
        async with self._sessions() as session:
            return int((await session.scalar(select(func.max(ChangeRow.id)))) or 0)

    async def after(self, last: int, limit: int = BATCH) -> list[Change]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(self._after, {"last": last, "limit": limit})
            return [Change(*row) for row in rows]

    async def kept_since(self, last: int) -> bool:
        """Whether nothing after ``last`` was trimmed yet: a row at or before it is still there."""
        async with self._sessions() as session:
            return await session.scalar(select(ChangeRow.id).where(ChangeRow.id <= last).limit(1)) is not None

    async def trim(self, before: float) -> int:
        """Delete the rows written before ``before`` (Unix seconds), oldest first by id; how many went.

        Deleted by id (the newest of the old rows and every row before it), so what is left is always
        every row after some id, whatever the writers' clocks said. The newest row stays, however old:
        :meth:`last_id` is the newest id ever written, where a node that starts follows from.
        """
        async with self._sessions.begin() as session:
            cut = await session.scalar(select(func.max(ChangeRow.id)).where(ChangeRow.at < before))
            if cut is None:
                return 0
            newest = await session.scalar(select(func.max(ChangeRow.id)))
            result = await session.execute(delete(ChangeRow).where(ChangeRow.id <= cut, ChangeRow.id < newest))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


class Apply(Protocol):
    async def apply(self, kind: str, name: str) -> None: ...

    async def reload_all(self) -> None: ...


class Follower:
    def __init__(
        self,
        feed: ChangeFeed,
        applier: Apply,
        node: str,
        applied: int,
        *,
        poll: float,
        keep: float = KEEP_SECONDS,
        trim_every: float = TRIM_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._feed = feed
        self._applier = applier
        self.node = node
        self.applied = applied
        self._poll = poll
        self._keep = keep
        self._trim_every = trim_every
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_trim = 0.0
        self.reloads = 0  # whole-registry reloads (it fell behind the rows kept, or skipped a row that failed)
        self.failing_since: float | None = None  # when reading the rows started to fail (None: they are read)
        self.error = ""  # why the last pass failed
        # When (clock) a pass last left nothing after applied; at the start, applied is the newest row. Rows
        # after applied are younger than that, so none can be trimmed while it is well within ``keep``.
        self._read_through = clock()
        self._failed = (0, 0)  # (row id, failures) of the row that failed last
        self.caught_up = asyncio.Event()  # set after each pass that left nothing to read
        self._looked: Look | None = None  # the SQLite files as they were before the last pass that read them
        self._read_at = float("-inf")  # when (monotonic) the last pass read the rows

    def failing_for(self) -> float:
        """Seconds the passes have been failing (0: the last one did not)."""
        return 0.0 if self.failing_since is None else max(0.0, self._clock() - self.failing_since)

    def wake(self) -> None:
        """Read the rows now (a NOTIFY came, or the connection to the database came back)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-follower")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def catch_up(self, *, lazy: bool = False) -> int:
        """Apply every row after :attr:`applied` (others' rows; this node's are skipped); how many applied.

        Marked as :data:`APPLYING` while it runs: the writes it makes take the controller's lock, which
        then does not catch up again (whichever task called it: the follower's, or a writer's).
        """
        token = APPLYING.set(True)
        try:
            return await self._catch_up(lazy=lazy)
        finally:
            APPLYING.reset(token)

    async def _catch_up(self, *, lazy: bool) -> int:
        """:meth:`catch_up`'s pass.

        ``lazy``: not at all when the SQLite files did not change since the last pass (a poll), unless that
        read is :data:`READ_EVERY` seconds old (a file's times are as fine as the kernel's clock tick: a
        commit in the same tick as the look, after the read, that leaves the log's size as it was, shows
        only there). A failure leaves :attr:`applied` at the last row applied: the next pass starts after it.
        """
        look = self._feed.look()
        fresh = time.monotonic() - self._read_at < READ_EVERY
        if lazy and fresh and look is not None and look == self._looked:
            self.caught_up.set()
            return 0
        self._looked = None  # until this pass has read everything
        self._read_at = time.monotonic()
        applied = 0
        while True:
            rows = await self._feed.after(self.applied)
            if not rows:
                self._looked = look  # taken before the reads: a commit since then changed the files
                self._read_through = self._clock()
                self.caught_up.set()
                return applied
            gap = rows[0].id > self.applied + 1
            if gap and self._may_be_trimmed() and not await self._feed.kept_since(self.applied):
                await self._reload(rows[-1].id)
                applied += 1
                continue
            for change in rows:
                if change.node != self.node:
                    try:
                        await self._applier.apply(change.kind, change.name)
                    except Exception as exc:
                        if not self._give_up(change, exc):
                            raise
                        self.applied = change.id
                        await self._reload(change.id)
                        applied += 1
                        break
                    applied += 1
                self.applied = change.id

    def _may_be_trimmed(self) -> bool:
        """Whether a row after :attr:`applied` may have been trimmed: a pass read everything last longer ago
        than half the time rows are kept (the other half for the writers' clocks). Otherwise a gap in the ids
        is one in the sequence (a write rolled back after it took its id), not rows gone."""
        return self._clock() - self._read_through > self._keep / 2

    async def _reload(self, last: int) -> None:
        """Reload the whole registry in place of the rows up to the newest now (read from ``last`` on)."""
        while more := await self._feed.after(last):  # the reload covers these too
            last = more[-1].id
        await self._applier.reload_all()
        self.reloads += 1
        self.applied = last

    def _give_up(self, change: Change, exc: Exception) -> bool:
        """Whether to skip ``change``, which failed with ``exc``: it failed :data:`ROW_TRIES` times, and not
        because the database cannot be reached (nor answered in time: an apply's timeout)."""
        if is_unavailable(exc) or isinstance(exc, TimeoutError):
            return False
        row, failures = self._failed
        failures = failures + 1 if row == change.id else 1
        self._failed = (change.id, failures)
        if failures < ROW_TRIES:
            return False
        log.error(
            "change %d (%s %r from node %s) failed %d times (%s: %s); skipped, reloading the whole registry instead",
            change.id,
            change.kind,
            change.name,
            change.node,
            failures,
            type(exc).__name__,
            exc,
        )
        return True

    async def _trim(self) -> None:
        now = self._clock()
        if now < self._next_trim:
            return
        self._next_trim = now + self._trim_every
        removed = await self._feed.trim(now - self._keep)
        if removed:
            log.debug("trimmed %d change rows older than %.0f s", removed, self._keep)

    async def _run(self) -> None:
        woken = True  # the first pass reads
        while True:
            self._wake.clear()
            try:
                await self.catch_up(lazy=not woken)
                await self._trim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.caught_up.clear()
                self.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                if self.failing_since is None:
                    self.failing_since = self._clock()
                    log.warning("cannot read the registry's changes (%s); trying again every %.2f s", exc, self._poll)
            else:
                if self.failing_since is not None:
                    log.info("reading the registry's changes again after %.1f s", self._clock() - self.failing_since)
                    self.failing_since = None
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll)
                woken = True
            except TimeoutError:
                woken = False
