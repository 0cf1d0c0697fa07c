"""Function code on disk, content-addressed by sha256; on PostgreSQL, in the database too.

A blob is written to a temporary file, fsynced and renamed into place, so a
crash never leaves half a blob under a real name. With ``shared`` blobs (the
registry's ``blobs`` table on PostgreSQL, faasd/store/blobs.py) every blob
put goes there first, and the files are a copy: a blob another node put is
read from the database at its first use here and kept as a file. Every
method blocks: callers use threads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from faasd.core.blobs import SharedBlobs, write_file


class CodeStore:
    def __init__(self, root: Path, shared: SharedBlobs | None = None) -> None:
        self._root = root
        self._shared = shared
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self._root / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if self._shared is not None:
            self._shared.put(sha256, data)  # before the registry row that will name it
        target = self._path(sha256)
        if not target.exists():
            write_file(self._root, target, data)
        return sha256

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; FileNotFoundError when there is none."""
        path = self._path(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if self._shared is None:
                raise
        data = self._shared.get(sha256)
        if data is None:
            raise FileNotFoundError(f"no code blob {sha256} here or in the database")
        write_file(self._root, path, data)
        return data

    def discard(self, sha256: str) -> None:
        """Remove the file (the database's copy goes with the sweep, once nothing names it)."""
        self._path(sha256).unlink(missing_ok=True)

    def collect(self, keep: set[str]) -> int:
        """Remove blobs no function uses and temporary files a crash left; return how many.

        With shared blobs, also the database's that nothing names any more (:meth:`SharedBlobs.sweep`).
        """
        removed = 0
        for name in os.listdir(self._root):
            if name not in keep:
                self._path(name).unlink(missing_ok=True)
                removed += 1
        if self._shared is not None:
            self._shared.sweep()
        return removed
