"""Keep-alive connections to the runtime containers (and to the admin app's socket).

One :class:`UpstreamConnection` carries one exchange at a time: a request is
written, its response parsed by httptools and handed to the exchange (the
:class:`ResponseSink`), then the connection goes back to :class:`UpstreamPool`
if both sides agree to keep it. An idle connection the container closes is
noticed by its own ``connection_lost`` and leaves the pool at once; one idle
longer than ``idle_timeout`` (well under the runtimes' 75 s) is closed.

Keys are the base URLs the pool's leases carry (``http://172.18.0.5:8888``)
or ``unix:/path/to/socket``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import httptools

from faasd.dataplane.http import Headers, HeadMemo

log = logging.getLogger(__name__)

Acquired = Callable[["UpstreamConnection | None", "BaseException | None"], None]


class ResponseSink(Protocol):
    """What an upstream connection reports to the exchange it carries."""

    def response_head(
        self, status: int, reason: bytes, headers: Headers, keep_alive: bool, length: bytes | None
    ) -> None:
        """The answer's head; ``length`` is its Content-Length as sent (None without)."""
        ...

    def response_body(self, data: bytes) -> None: ...
    def response_end(self) -> None: ...
    def upstream_lost(self, exc: BaseException | None) -> None: ...
    def upstream_write_paused(self, paused: bool) -> None: ...
    def cork(self) -> None: ...
    def uncork(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, key: str) -> None:
        self.key = key
        self.host = key.partition("://")[2].encode()  # the Host of the requests sent on it
        self.head_memo = HeadMemo()  # the last answer's head as sent to the client: the next is often the same
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.reused = False  # taken from the idle pool (so it may have been closed under us)
        self.received = False  # a byte of the current response arrived
        self.idle_since = 0.0
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers: Headers = []
        self._length: bytes | None = None  # the answer's Content-Length
        self._reason = b""
        self._informational = False
        self._until_eof = False  # the response has no length: its end is the connection's end
        self._in_body = False
        self._reading_paused = False

    # -- use by an exchange ---------------------------------------------------

    def attach(self, sink: ResponseSink) -> None:
        self.sink = sink
        self.received = False

    def detach(self) -> None:
        self.sink = None

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        """Close now; nothing more is reported to the sink."""
        self.sink = None
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            # Bytes while idle, or after the answer: a broken upstream.
            self.close()
            return
        self.received = True
        sink.cork()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.sink is sink:
                self.close()
                sink.upstream_lost(exc)
            else:
                self.close()
        finally:
            sink.uncork()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if self._until_eof and self._in_body:
            sink.response_end()
        else:
            sink.upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_write_paused(False)

    # -- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        if self.sink is None:
            self.close()  # an answer nobody asked for: the connection is out of step
        self._headers = []
        self._length = None
        self._reason = b""
        self._until_eof = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length":
            self._length = value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        sink = self.sink
        if 100 <= status < 200 and status != 101:
            self._informational = True  # 100 Continue, 103 Early Hints: not forwarded
            return
        self._informational = False
        keep_alive = self._parser.should_keep_alive()
        if not keep_alive and status not in (204, 304):
            self._until_eof = not any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self._headers)
        self._in_body = True
        if sink is not None:
            sink.response_head(status, self._reason, self._headers, keep_alive, self._length)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None and not self._informational:
            self.sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            return
        self._in_body = False
        if self.sink is not None:
            self.sink.response_end()


class UpstreamPool:
    """Idle keep-alive connections per upstream; the newest is reused first."""

    def __init__(self, *, idle_timeout: float = 30.0, max_idle_per_upstream: int = 128) -> None:
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle_per_upstream
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._addresses: dict[str, tuple[str, int] | str] = {}
        self._connecting: set[asyncio.Task[UpstreamConnection]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def acquire(self, key: str, done: Acquired) -> None:
        """Call ``done(connection, None)``: at once with an idle one, else once connected."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                conn.reused = True
                done(conn, None)
                return
        self.connect(key, done)

    def connect(self, key: str, done: Acquired) -> None:
        """A new connection, never an idle one (used for the retry after a reused one failed)."""
        task = self._loop.create_task(self._open(key))
        self._connecting.add(task)

        def finished(task: asyncio.Task[UpstreamConnection]) -> None:
            self._connecting.discard(task)
            if task.cancelled():
                done(None, ConnectionAbortedError("faasd is stopping"))
            elif (exc := task.exception()) is not None:
                done(None, exc)
            else:
                done(task.result(), None)

        task.add_done_callback(finished)

    async def _open(self, key: str) -> UpstreamConnection:
        loop = self._loop
        address = self._address(key)
        conn: UpstreamConnection
        if isinstance(address, str):
            _, conn = await loop.create_unix_connection(lambda: UpstreamConnection(self, key), address)
        else:
            _, conn = await loop.create_connection(lambda: UpstreamConnection(self, key), *address)
        return conn

    def _address(self, key: str) -> tuple[str, int] | str:
        address = self._addresses.get(key)
        if address is None:
            if key.startswith("unix:"):
                address = key[len("unix:") :]
            else:
                parts = urlsplit(key)
                address = (parts.hostname or "", parts.port or 80)
            if len(self._addresses) > 4096:
                self._addresses.clear()
            self._addresses[key] = address
        return address

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the idle list (the caller has checked the exchange left it clean)."""
        conn.detach()
        conn.resume_reading()  # it may have been paused for a slow client
        if self._closed or not conn.usable():
            conn.close()
            return
        conn.idle_since = self._loop.time()
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = []
        idle.append(conn)
        if len(idle) > self.max_idle:
            idle.pop(0).close()
        if self._sweeper is None:
            self._schedule_sweep()

    def forget(self, conn: UpstreamConnection) -> None:
        """``conn`` closed: it must never be handed out again."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            if not idle:
                del self._idle[conn.key]

    def _schedule_sweep(self) -> None:
        self._sweeper = self._loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = self._loop.time() - self.idle_timeout
        for idle in list(self._idle.values()):
            stale = [c for c in idle if c.idle_since <= deadline]
            for conn in stale:
                conn.close()  # connection_lost will forget it; forget now as well
                self.forget(conn)
        if self._idle:
            self._schedule_sweep()

    def idle_count(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.close()
        self._idle.clear()
        for task in list(self._connecting):
            task.cancel()
