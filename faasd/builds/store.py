"""Packages on disk: normalized tars, content-addressed by sha256, and the dependency cache.

Layout under the root (``<state dir>/packages``)::

    <sha256>          a source or deployment archive (a normalized tar, archive.py)
    deps/<key>.tar    a dependency tree a builder made, keyed by what decides it (builder.py)
    incoming/         where archives are normalized before they are put in

An archive comes in by a rename of a file that archive.normalize wrote and
hashed already (fsynced first, then the directory), so a crash never leaves
half an archive under a real name. Every method blocks: callers use threads.

An archive just put is *held* until the registry records it (:meth:`release`):
:meth:`collect`, which removes what no package names, never takes an archive
between the moment it arrives and the moment its package points at it.

With ``shared`` blobs (the registry's ``blobs`` table on PostgreSQL) every
archive put goes there too, and the files are a copy: :meth:`path` of an
archive another node put reads it from the database once (blocking the caller
for that read) and keeps it as a file. The dependency cache stays a node's own.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from faasd.builds.archive import ArchiveInfo
from faasd.core.blobs import SharedBlobs, write_file

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackageStore:
    def __init__(self, root: Path, shared: SharedBlobs | None = None) -> None:
        self.root = root
        self._shared = shared
        self._deps = root / "deps"
        self._incoming = root / "incoming"
        for folder in (root, self._deps, self._incoming):
            folder.mkdir(parents=True, exist_ok=True)
        self._held: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    # -- archives ------------------------------------------------------------------

    def _file(self, sha256: str) -> Path:
        if not SHA256_RE.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256

    def path(self, sha256: str) -> Path:
        """The archive's file; with shared blobs, read from the database first when this node has no copy."""
        target = self._file(sha256)
        if self._shared is not None and not target.is_file():
            data = self._shared.get(sha256)
            if data is not None:
                write_file(self._incoming, target, data)
        return target

    def has(self, sha256: str) -> bool:
        if not SHA256_RE.fullmatch(sha256):
            return False
        if self._file(sha256).is_file():
            return True
        return self._shared is not None and self._shared.has(sha256)

    def put(self, path: Path, info: ArchiveInfo) -> str:
        """Move the normalized tar at ``path`` in as ``info.sha256``; it is held until :meth:`release`.

        ``path`` is gone afterwards (moved, or removed when the archive was there already).
        """
        sha256 = info.sha256
        target = self._file(sha256)
        with self._lock:
            self._held[sha256] += 1
        try:
            if self._shared is not None:
                self._shared.put_file(sha256, path)  # before the registry row that will name it
            if target.is_file():
                path.unlink(missing_ok=True)
                return sha256
            with open(path, "rb") as data:
                os.fsync(data.fileno())
            try:
                os.replace(path, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(path, target)
                path.unlink(missing_ok=True)
            _fsync_dir(self.root)
        except BaseException:
            self.release(sha256)
            raise
        return sha256

    def _copy_in(self, path: Path, target: Path) -> None:
        """``path`` is on another file system: copy it next to ``target``, then rename."""
        fd, tmp = tempfile.mkstemp(dir=self._incoming, prefix=".copy-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as data:
                shutil.copyfileobj(data, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def release(self, sha256: str) -> None:
        """The registry has recorded (or given up on) an archive :meth:`put` brought in."""
        with self._lock:
            if self._held[sha256] <= 1:
                del self._held[sha256]
            else:
                self._held[sha256] -= 1

    def collect(self, keep: set[str]) -> int:
        """Remove the archives neither in ``keep`` nor held; return how many."""
        removed = 0
        with self._lock:
            held = set(self._held)
        for path in self.root.iterdir():
            name = path.name
            if SHA256_RE.fullmatch(name) and name not in keep and name not in held:
                path.unlink(missing_ok=True)
                removed += 1
        if self._shared is not None:
            self._shared.sweep()  # the database's: only what no row names, put long enough ago
        return removed

    def incoming(self, suffix: str = ".tar") -> Path:
        """A fresh path to normalize an archive into, on the store's own file system."""
        fd, name = tempfile.mkstemp(dir=self._incoming, prefix="in-", suffix=suffix)
        os.close(fd)
        return Path(name)

    def clear_incoming(self) -> int:
        """Remove what an interrupted upload or build left (at start, before anything is put)."""
        removed = 0
        for path in self._incoming.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
        return removed

    # -- the dependency cache ------------------------------------------------------

    def deps_path(self, key: str) -> Path:
        """Where the dependency tree for ``key`` is kept (a normalized tar; it may not exist)."""
        if not KEY_RE.fullmatch(key) or key.startswith("."):
            raise ValueError(f"not a dependency cache key: {key!r}")
        return self._deps / f"{key}.tar"

    def put_deps(self, key: str, path: Path) -> Path:
        """Move the normalized tar at ``path`` in as the dependency tree of ``key`` (fsynced first)."""
        target = self.deps_path(key)
        with open(path, "rb") as data:
            os.fsync(data.fileno())
        os.replace(path, target)
        _fsync_dir(self._deps)
        return target

    def has_deps(self, key: str) -> bool:
        return self.deps_path(key).is_file()
