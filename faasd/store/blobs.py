"""The registry's ``blobs`` table on PostgreSQL: code and package archives every node reads.

The file stores (faasd/store/codestore.py, faasd/builds/store.py) block and
are called from threads, so this does too: it runs its own event loop in a
thread of its own, with a small asyncpg pool of its own, and each method waits
for its query there. A blob is whole in memory while it goes in or out (a
code blob is at most --max-code-bytes, an archive at most 256 MiB; PostgreSQL's
bytea takes up to 1 GB).

Blobs are written before the registry row that names them, and another node
may name one a moment after this node stopped doing so; so the sweep only
removes blobs that nothing names *and* that were put more than ``grace`` ago
(putting a blob again counts as putting it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from faasd.core.database import DatabaseUrl
from faasd.core.errors import RegistryUnavailable
from faasd.store.database import open_engine, unreachable
from faasd.store.models import BlobRow, FunctionRow, FunctionVersionRow, PackageRow

log = logging.getLogger(__name__)

T = TypeVar("T")

SWEEP_GRACE = 24 * 3600.0  # seconds a blob nothing names is kept after it was put
SWEEP_EVERY = 3600.0  # seconds between two sweeps of one node
QUERY_TIMEOUT = 120.0  # seconds one query may take: a 256 MiB archive at 2 MiB/s and more
WAIT = QUERY_TIMEOUT + 30.0  # seconds a caller waits for its blob (a connection may take 10 s, 10 more from the pool)


class BlobTable:
    """The ``blobs`` table of a PostgreSQL registry (faasd.core.blobs.SharedBlobs)."""

    def __init__(
        self, database: DatabaseUrl, *, grace: float = SWEEP_GRACE, every: float = SWEEP_EVERY, wait: float = WAIT
    ) -> None:
        """``wait``: seconds a call waits for the database; then it raises RegistryUnavailable (a 503)."""
        if not database.is_postgresql:
            raise ValueError("blobs live in the database on PostgreSQL only")
        self._database = database
        self._grace = grace
        self._every = every
        self._wait = wait
        self._swept = float("-inf")
        self._sweep_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faasd-blobs", daemon=True)
        self._thread.start()
        # Made in the loop's thread: asyncpg's connections belong to the loop that opens them.
        self._engine: AsyncEngine = self._run(self._open)

    async def _open(self) -> AsyncEngine:
        return open_engine(self._database, pool_size=2, max_overflow=2, command_timeout=QUERY_TIMEOUT)

    def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("BlobTable called from its own loop")

        async def call() -> T:
            return await work()

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return future.result(self._wait)
        except Exception as exc:
            if not future.done():  # no answer in time: the query is cancelled, the caller told
                future.cancel()
                reason = [f"no answer within {self._wait:g} s"]
            elif unreachable(exc):
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
            else:
                raise
            raise RegistryUnavailable(
                f"the registry's database cannot be reached for a code blob or package archive: {reason[0]}"
            ) from exc

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._engine.dispose)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    # -- SharedBlobs -------------------------------------------------------------------

    def put(self, sha256: str, data: bytes) -> None:
        async def put() -> None:
            now = datetime.now(UTC)
            async with self._engine.begin() as connection:
                # There already (the usual case of a redeploy): only its time moves, no bytes are sent.
                touched = await connection.execute(
                    update(BlobRow).where(BlobRow.sha256 == sha256).values(created_at=now)
                )
                if touched.rowcount:
                    return
                stmt = insert(BlobRow).values(sha256=sha256, data=data, size=len(data), created_at=now)
                await connection.execute(
                    stmt.on_conflict_do_update(index_elements=[BlobRow.sha256], set_={"created_at": now})
                )

        self._run(put)

    def put_file(self, sha256: str, path: Path) -> None:
        self.put(sha256, path.read_bytes())

    def get(self, sha256: str) -> bytes | None:
        async def get() -> bytes | None:
            async with self._engine.connect() as connection:
                found = await connection.execute(select(BlobRow.data).where(BlobRow.sha256 == sha256))
                return found.scalar_one_or_none()

        return self._run(get)

    def has(self, sha256: str) -> bool:
        async def has() -> bool:
            async with self._engine.connect() as connection:
                found = await connection.execute(select(BlobRow.size).where(BlobRow.sha256 == sha256))
                return found.first() is not None

        return self._run(has)

    def sweep(self) -> int:
        with self._sweep_lock:
            if time.monotonic() - self._swept < self._every:
                return 0
            self._swept = time.monotonic()

        async def sweep() -> int:
            before = datetime.now(UTC) - timedelta(seconds=self._grace)
            named = or_(
                exists().where(FunctionRow.code_sha256 == BlobRow.sha256),
                exists().where(FunctionVersionRow.code_sha256 == BlobRow.sha256),
                exists().where(
                    or_(PackageRow.source_sha256 == BlobRow.sha256, PackageRow.deploy_sha256 == BlobRow.sha256)
                ),
            )
            async with self._engine.begin() as connection:
                gone = await connection.execute(delete(BlobRow).where(BlobRow.created_at < before, ~named))
                return int(gone.rowcount)

        removed = self._run(sweep)
        if removed:
            log.info("removed %d blob(s) no function, version or package names from the database", removed)
        return removed
