"""What functions print: kept per function on disk, bounded, and followable.

Each record is one line ``<UTC timestamp> <instance id> <stdout|stderr> <text>``.
A function's log lives in ``<state dir>/logs/<function>.log``; past
``max_bytes`` it is rotated once to ``.1``, so a function keeps at most about
twice that. Records outlive the instance that printed them; deleting the
function deletes its log. Followers get new records as they are appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024


def format_record(timestamp: str, instance: str, stream: str, text: str) -> str:
    return f"{timestamp} {instance[:12]} {stream} {text}"


class FunctionLogs:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._followers: dict[str, set[asyncio.Queue[str | None]]] = defaultdict(set)
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, function: str) -> Path:
        return self._root / f"{function}.log"

    def append(self, function: str, records: Iterable[str]) -> None:
        lines = [r.rstrip("\n") for r in records]
        if not lines:
            return
        path = self._path(function)
        data = "".join(line + "\n" for line in lines).encode("utf-8", errors="replace")
        try:
            if path.exists() and path.stat().st_size + len(data) > self._max_bytes:
                path.replace(path.with_suffix(".log.1"))
            with path.open("ab") as out:
                out.write(data)
        except OSError as exc:
            log.warning("could not write the log of %s: %s", function, exc)
        for queue in self._followers.get(function, ()):
            for line in lines:
                queue.put_nowait(line)

    def read(self, function: str, tail: int | None = None) -> list[str]:
        lines: list[str] = []
        for path in (self._path(function).with_suffix(".log.1"), self._path(function)):
            with contextlib.suppress(FileNotFoundError):
                lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
        return lines[-tail:] if tail is not None else lines

    def follow(self, function: str) -> asyncio.Queue[str | None]:
        """A queue of the function's new records; None when the function is deleted."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._followers[function].add(queue)
        return queue

    def unfollow(self, function: str, queue: asyncio.Queue[str | None]) -> None:
        followers = self._followers.get(function)
        if followers is not None:
            followers.discard(queue)
            if not followers:
                del self._followers[function]

    def remove(self, function: str) -> None:
        for path in (self._path(function), self._path(function).with_suffix(".log.1")):
            path.unlink(missing_ok=True)
        for queue in self._followers.pop(function, set()):
            queue.put_nowait(None)
