"""What functions print: kept per function on disk, bounded, and followable.

Each record is one line ``<UTC timestamp> <instance id> <stdout|stderr> <text>``.
A function's log lives in ``<state dir>/logs/<function>.log``; past
``max_bytes`` it is rotated once to ``.1``, so a function keeps at most about
twice that. Records outlive the instance that printed them; deleting the
function deletes its log.

Nothing here touches the disk on the event loop. :meth:`FunctionLogs.append`
only queues; one writer task takes everything queued since its last batch and
applies it in a worker thread (``asyncio.to_thread``), each function's file
opened once per batch. Reads and removals are queued behind the writes, so a
read sees every record appended before it was asked for, and a removal is not
undone by records queued before it. Records waiting for the writer are bounded
(``max_pending_bytes``): :meth:`FunctionLogs.write` waits for room, so a
container's output is copied more slowly (the engine keeps it meanwhile)
instead of growing faasd's memory. :meth:`FunctionLogs.close` writes what is
queued and ends the writer.

Followers get new records as they are appended, each into a buffer of its own
of at most :data:`FOLLOW_BACKLOG` lines (and :data:`FOLLOW_BACKLOG_BYTES`). A
follower that falls further behind gets what its buffer holds, then one last
line saying that it fell behind and lines were dropped, and its stream ends;
it can follow again (with ``tail``) to catch up from the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024
# Records queued for the writer, all functions together, before write() waits.
DEFAULT_MAX_PENDING_BYTES = 1024 * 1024
# A follower this many lines (or bytes) behind is told so and disconnected.
FOLLOW_BACKLOG = 1000
FOLLOW_BACKLOG_BYTES = 1024 * 1024


def format_record(timestamp: str, instance: str, stream: str, text: str) -> str:
    return f"{timestamp} {instance[:12]} {stream} {text}"


def utc_stamp(now: float | None = None) -> str:
    """A record's timestamp, e.g. ``2026-11-27T11:35:55.937Z``."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class Follower:
    """New records of one function for one reader; see the module docstring for the bound."""

    def __init__(self, function: str, limit: int = FOLLOW_BACKLOG, limit_bytes: int = FOLLOW_BACKLOG_BYTES) -> None:
        self.function = function
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.fell_behind = False
        self._lines: deque[str] = deque()
        self._bytes = 0
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def pending(self) -> int:
        """Lines buffered for this follower, not yet taken."""
        return len(self._lines)

    def push(self, lines: list[str]) -> bool:
        """Buffer ``lines``; False when the follower fell behind (it has ended then)."""
        if self._ended:
            return False
        for line in lines:
            if len(self._lines) >= self.limit or self._bytes + len(line) > self.limit_bytes:
                self.fell_behind = True
                text = (
                    f"this follower fell more than {self.limit} lines behind; lines were dropped "
                    "and it is disconnected (follow again, with tail, to catch up)"
                )
                self._lines.append(format_record(utc_stamp(), "faasd", "faasd", text))
                self.end()
                return False
            self._lines.append(line)
            self._bytes += len(line)
        self._wake()
        return True

    def end(self) -> None:
        """No more lines: :meth:`get` answers None once the buffer is empty."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> list[str] | None:
        """Every buffered line (at least one, waiting for it if need be); None once ended."""
        while not self._lines:
            if self._ended:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        lines = list(self._lines)
        self._lines.clear()
        self._bytes = 0
        return lines


# -- what the writer is asked to do, in order -------------------------------------


@dataclass(eq=False)
class _Write:
    function: str
    data: list[bytes]  # encoded lines, each ending in a newline
    size: int


@dataclass(eq=False)
class _Read:
    function: str
    tail: int | None
    done: asyncio.Future[list[str]] = field(repr=False)


@dataclass(eq=False)
class _Remove:
    function: str


@dataclass(eq=False)
class _Barrier:
    done: asyncio.Future[None] = field(repr=False)


_Op = _Write | _Read | _Remove | _Barrier


class FunctionLogs:
    def __init__(
        self,
        root: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        follow_backlog: int = FOLLOW_BACKLOG,
    ) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._max_pending = max_pending_bytes
        self._follow_backlog = follow_backlog
        self._followers: dict[str, set[Follower]] = defaultdict(set)
        self._ops: list[_Op] = []
        self._pending_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._closing = False
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, function: str) -> Path:
        return self._root / f"{function}.log"

    # -- the event loop's side: queue, never block ---------------------------------

    def append(self, function: str, records: Iterable[str]) -> None:
        """Queue ``records`` for the function's log and hand them to its followers.

        Never waits: a caller that produces records in volume uses :meth:`write`.
        """
        lines = [r.rstrip("\n") for r in records]
        if not lines:
            return
        data = [(line + "\n").encode("utf-8", errors="replace") for line in lines]
        size = sum(map(len, data))
        self._enqueue(_Write(function, data, size))
        self._pending_bytes += size
        followers = self._followers.get(function)
        if followers:
            behind = [f for f in followers if not f.push(lines)]
            for follower in behind:
                log.info("a follower of the log of %s fell behind and was disconnected", function)
                self.unfollow(function, follower)

    async def write(self, function: str, records: Iterable[str]) -> None:
        """:meth:`append`, after waiting while the writer has too much queued."""
        while self._pending_bytes >= self._max_pending:
            if self._room is None or self._room.done():
                self._room = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room)
        self.append(function, records)

    async def read(self, function: str, tail: int | None = None) -> list[str]:
        """The function's records (the last ``tail`` of them), including all appended so far."""
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Read(function, tail, done))
        return await done

    async def flush(self) -> None:
        """Wait until every record appended so far is in its file."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Barrier(done))
        await done

    def follow(self, function: str) -> Follower:
        """A follower of the records appended from now on; it ends when the function is deleted."""
        follower = Follower(function, self._follow_backlog)
        if self._closing:
            follower.end()
        else:
            self._followers[function].add(follower)
        return follower

    def follower_count(self, function: str) -> int:
        return len(self._followers.get(function, ()))

    def unfollow(self, function: str, follower: Follower) -> None:
        followers = self._followers.get(function)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[function]

    def remove(self, function: str) -> None:
        """Delete the function's log (after what is queued for it) and end its followers."""
        self._enqueue(_Remove(function))
        for follower in self._followers.pop(function, set()):
            follower.end()

    async def close(self) -> None:
        """End every follower, write what is queued, and stop the writer."""
        self._closing = True
        for followers in list(self._followers.values()):
            for follower in followers:
                follower.end()
        self._followers.clear()
        self._wake_writer()
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.shield(writer)

    # -- the writer task -----------------------------------------------------------

    def _enqueue(self, op: _Op) -> None:
        self._ops.append(op)
        if self._writer is None or self._writer.done():
            # After close() this is a short-lived writer: it ends once the queue is empty.
            self._writer = asyncio.get_running_loop().create_task(self._run(), name="faasd-log-writer")
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._ops:
                if self._closing:
                    return
                self._wakeup = loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
                continue
            ops, self._ops = self._ops, []
            written = sum(op.size for op in ops if isinstance(op, _Write))
            try:
                results = await asyncio.to_thread(self._apply, ops)
            except asyncio.CancelledError:
                self._pending_bytes -= written
                for op in (*ops, *self._ops):
                    if isinstance(op, _Read | _Barrier):
                        op.done.cancel()
                if self._room is not None and not self._room.done():
                    self._room.set_result(None)  # writers waiting for room must not hang
                raise
            except Exception as exc:  # _apply handles OSError itself; anything else is a bug
                log.exception("the log writer failed")
                results = [exc] * len(ops)
            self._pending_bytes -= written
            if self._room is not None and not self._room.done():
                self._room.set_result(None)
            for op, result in zip(ops, results, strict=True):
                if isinstance(op, _Read | _Barrier) and not op.done.done():
                    if isinstance(result, BaseException):
                        op.done.set_exception(result)
                    else:
                        op.done.set_result(result)  # type: ignore[arg-type]

    # -- the worker thread's side: files -------------------------------------------

    def _apply(self, ops: list[_Op]) -> list[object]:
        """Carry out ``ops`` in order (in a worker thread); one result per op."""
        pending: dict[str, list[bytes]] = {}
        results: list[object] = []
        for op in ops:
            result: object = None
            if isinstance(op, _Write):
                pending.setdefault(op.function, []).extend(op.data)
            elif isinstance(op, _Remove):
                pending.pop(op.function, None)
                for path in (self._path(op.function), self._path(op.function).with_suffix(".log.1")):
                    try:
                        path.unlink(missing_ok=True)
                    except OSError as exc:
                        log.warning("could not remove the log of %s: %s", op.function, exc)
            elif isinstance(op, _Read):
                if op.function in pending:
                    self._write_lines(op.function, pending.pop(op.function))
                try:
                    result = self._read_lines(op.function, op.tail)
                except OSError as exc:
                    result = exc
            results.append(result)
        for function, data in pending.items():
            self._write_lines(function, data)
        return results

    def _write_lines(self, function: str, data: list[bytes]) -> None:
        """Append to the function's log, rotating it (once) whenever it would pass ``max_bytes``."""
        path = self._path(function)
        try:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            chunk: list[bytes] = []
            for line in data:
                if size > 0 and size + len(line) > self._max_bytes:
                    if chunk:
                        with path.open("ab") as out:
                            out.writelines(chunk)
                        chunk = []
                    path.replace(path.with_suffix(".log.1"))
                    size = 0
                chunk.append(line)
                size += len(line)
            if chunk:
                with path.open("ab") as out:
                    out.writelines(chunk)
        except OSError as exc:
            log.warning("could not write the log of %s: %s", function, exc)

    def _read_lines(self, function: str, tail: int | None) -> list[str]:
        lines: list[str] = []
        for path in (self._path(function).with_suffix(".log.1"), self._path(function)):
            with contextlib.suppress(FileNotFoundError):
                lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
        if tail is None:
            return lines
        return lines[-tail:] if tail > 0 else []
