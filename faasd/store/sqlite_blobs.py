"""The ``blobs`` table of a SQLite file that several faasd nodes on one machine share.

The default single node keeps its code and archives as files in its state dir only. Nodes that share a
SQLite file (``--database sqlite:///PATH``) have state dirs of their own, so a blob one node took in must
be where the others read it: in the file's ``blobs`` table, as on PostgreSQL (faasd/store/blobs.py),
each node's files a read-through copy. Same rules: a blob goes in before the row that names it; putting
it again only renews its time; the sweep removes only blobs nothing names that were put over ``grace``
ago. Every method blocks (the file stores call it from threads): a synchronous engine on the same file,
with the registry's pragmas (WAL, busy timeout).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, delete, event, exists, or_, select, update
from sqlalchemy.dialects.sqlite import insert

from faasd.store.database import _set_pragmas
from faasd.store.models import BlobRow, FunctionRow, FunctionVersionRow, PackageRow

log = logging.getLogger(__name__)

SWEEP_GRACE = 24 * 3600.0  # seconds a blob nothing names is kept after it was put
SWEEP_EVERY = 3600.0  # seconds between two sweeps of one node


class SqliteBlobs:
    """faasd.core.blobs.SharedBlobs in a SQLite registry file."""

    def __init__(self, path: Path, *, grace: float = SWEEP_GRACE, every: float = SWEEP_EVERY) -> None:
        self._engine = create_engine(f"sqlite:///{path}")
        event.listen(self._engine, "connect", _set_pragmas)
        self._grace = grace
        self._every = every
        self._swept = float("-inf")
        self._sweep_lock = threading.Lock()

    def close(self) -> None:
        self._engine.dispose()

    def put(self, sha256: str, data: bytes) -> None:
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            # There already (a redeploy): only its time moves.
            if connection.execute(update(BlobRow).where(BlobRow.sha256 == sha256).values(created_at=now)).rowcount:
                return
            stmt = insert(BlobRow).values(sha256=sha256, data=data, size=len(data), created_at=now)
            connection.execute(stmt.on_conflict_do_update(index_elements=[BlobRow.sha256], set_={"created_at": now}))

    def put_file(self, sha256: str, path: Path) -> None:
        self.put(sha256, path.read_bytes())

    def get(self, sha256: str) -> bytes | None:
        with self._engine.connect() as connection:
            data: bytes | None = connection.execute(
                select(BlobRow.data).where(BlobRow.sha256 == sha256)
            ).scalar_one_or_none()
            return data

    def has(self, sha256: str) -> bool:
        with self._engine.connect() as connection:
            return connection.execute(select(BlobRow.size).where(BlobRow.sha256 == sha256)).first() is not None

    def sweep(self) -> int:
        with self._sweep_lock:
            if time.monotonic() - self._swept < self._every:
                return 0
            self._swept = time.monotonic()
        before = datetime.now(UTC) - timedelta(seconds=self._grace)
        named = or_(
            exists().where(FunctionRow.code_sha256 == BlobRow.sha256),
            exists().where(FunctionVersionRow.code_sha256 == BlobRow.sha256),
            exists().where(or_(PackageRow.source_sha256 == BlobRow.sha256, PackageRow.deploy_sha256 == BlobRow.sha256)),
        )
        with self._engine.begin() as connection:
            removed = int(connection.execute(delete(BlobRow).where(BlobRow.created_at < before, ~named)).rowcount)
        if removed:
            log.info("removed %d blob(s) no function, version or package names from the registry file", removed)
        return removed
