"""Blobs every faasd node can read: what the file stores (code, package archives) keep beside their files.

On PostgreSQL the registry's ``blobs`` table (faasd/store/blobs.py) holds them;
a node's state dir keeps a copy of each it has read (a read-through cache).
On SQLite there is none: the state dir's files are the blobs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


class SharedBlobs(Protocol):
    """Content-addressed bytes in a place every node reads. Every method blocks: callers use threads."""

    def put(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` under ``sha256`` (its hash); putting it again keeps it from the sweep a while longer."""
        ...

    def put_file(self, sha256: str, path: Path) -> None:
        """:meth:`put` of a file's bytes."""
        ...

    def get(self, sha256: str) -> bytes | None:
        """The blob's bytes; None when there is no such blob."""
        ...

    def has(self, sha256: str) -> bool: ...

    def sweep(self) -> int:
        """Remove the blobs that no function, version or package names any more and that were put long
        enough ago (no write about to name them); how many. At most once in a while: a no-op otherwise."""
        ...


def write_file(root: Path, target: Path, data: bytes) -> None:
    """``data`` as ``target`` (in ``root``): a temporary file, fsynced, renamed, the directory fsynced."""
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
