"""Function code on disk, content-addressed by sha256.

A blob is written to a temporary file, fsynced and renamed into place, so a
crash never leaves half a blob under a real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class CodeStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self._root / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self._path(sha256)
        if target.exists():
            return sha256
        fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self._root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return sha256

    def get(self, sha256: str) -> bytes:
        return self._path(sha256).read_bytes()

    def discard(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def collect(self, keep: set[str]) -> int:
        """Remove blobs no function uses and temporary files a crash left; return how many."""
        removed = 0
        for name in os.listdir(self._root):
            if name not in keep:
                self._path(name).unlink(missing_ok=True)
                removed += 1
        return removed
