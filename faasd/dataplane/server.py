"""faasd's public HTTP/1.1 listener: one asyncio.Protocol per client connection.

httptools (llhttp) parses strictly: a malformed request, a request with both
Content-Length and Transfer-Encoding, duplicate Content-Lengths or a bad chunk
size is a 400 and the end of the connection, so no request can be smuggled
past faasd. Pipelined requests are answered in order: only the oldest
unanswered request (the *active* exchange) may write; later ones wait parsed,
and reading pauses while they do. Reading also pauses while the upstream's
write buffer is full (backpressure client -> function); the upstream's reading
pauses while the client's write buffer is full (function -> client).

One timer per connection enforces the head timeout (a request head must be
complete within ``head_timeout``), the body idle timeout (while a request body
is being read, some byte of it must come every ``head_timeout``, else 408, or
just the close if the request was answered already) and the keep-alive
timeout (an idle connection is closed after ``keepalive_timeout``); it fires
at most every ``head_timeout`` seconds, so a call costs no timer of its own
here. Time with reading paused by faasd (backpressure, a pipelined request
waiting its turn) does not count against the client.

At most ``max_connections`` client connections are served at once. One more is
answered at once with 503 ``overloaded`` (``Retry-After: 1``,
``Connection: close``) and closed; it does not count against the limit while it
closes. Every timer a connection sets is cancelled when it is lost, so nothing
of a connection outlives it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httptools

from faasd.dataplane import http
from faasd.dataplane.access import AccessLog
from faasd.dataplane.exchange import CallRecorder, Exchange, FunctionRouter, TimeLimits
from faasd.dataplane.http import Headers
from faasd.dataplane.upstream import UpstreamPool

log = logging.getLogger(__name__)

MiB = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class FrontConfig:
    admin_socket: str  # the aiohttp admin app's unix socket
    max_body_bytes: int = 6 * MiB
    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    upstream_idle_timeout: float = 30.0
    linger: float = 2.0  # how long a closing connection's unread input is drained
    max_connections: int = 10000  # client connections served at once; beyond, 503 and close


class _Reject(Exception):
    """Raised from a parser callback to stop parsing with an error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _NoCalls:
    def record(self, function: str, status: int, duration: float, overhead: float | None, error: str = "") -> None:
        pass


class Front:
    """The listener's shared state: configuration, router, upstream pool, open connections."""

    def __init__(
        self,
        router: FunctionRouter,
        config: FrontConfig,
        upstreams: UpstreamPool | None = None,
        guard: Callable[[bytes], bool] | None = None,
        calls: CallRecorder | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.router = router
        self.config = config
        # Every function call ends in calls.record (faasd.observe.calls); a line in the access log if on.
        self.calls: CallRecorder = calls or _NoCalls()
        self.access_log = access_log
        self.loop = asyncio.get_running_loop()
        self.admin_key = "unix:" + config.admin_socket
        self.upstreams = upstreams or UpstreamPool(idle_timeout=config.upstream_idle_timeout)
        self.time_limits = TimeLimits(self.loop)
        self.connections: set[ClientConnection] = set()
        # Peers closed at once, unanswered: function containers, when no host
        # firewall keeps them away (faasd.engines.isolation; SECURITY.md).
        self._guard = guard
        # Tasks started for an exchange that may outlive it (explaining a failure): cancelled by drain().
        self.tasks: set[asyncio.Task[Any]] = set()
        self.admitted = 0  # connections in ``connections`` that count against max_connections
        self.refused = 0  # connections answered 503 for being over max_connections, ever
        self._refusal_logged = float("-inf")
        self.draining = False
        self._drained: asyncio.Future[None] | None = None

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def refuses(self, peer: bytes) -> bool:
        """Whether a connection from ``peer`` is closed unanswered."""
        return self._guard is not None and self._guard(peer)

    def admit(self, conn: ClientConnection) -> bool:
        """Whether a new connection may be served (else it is refused with 503)."""
        if self.admitted >= self.config.max_connections:
            self.refused += 1
            now = self.loop.time()
            if now - self._refusal_logged >= 60.0:
                self._refusal_logged = now
                log.warning(
                    "refusing client connections: %d are open, the limit (--max-connections)",
                    self.config.max_connections,
                )
            return False
        self.admitted += 1
        conn.admitted = True
        return True

    def forget(self, conn: ClientConnection) -> None:
        if conn in self.connections and conn.admitted:
            self.admitted -= 1
        self.connections.discard(conn)
        if self._drained is not None and not self.connections and not self._drained.done():
            self._drained.set_result(None)

    def buffered_bytes(self) -> int:
        """Bytes held in faasd's own buffers (not the kernel's): what backpressure keeps bounded."""
        return sum(conn.buffered_bytes() for conn in list(self.connections))

    async def drain(self, grace: float) -> None:
        """After the listener stopped accepting: finish calls in flight within ``grace`` seconds.

        Idle keep-alive connections are closed now, busy ones after their
        current answer; whatever is still open after ``grace`` is cut.
        """
        self.draining = True
        self._drained = self.loop.create_future()
        for conn in list(self.connections):
            conn.drain()
        if self.connections:
            log.info("waiting up to %g s for %d connection(s) to finish", grace, len(self.connections))
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), grace)
            except TimeoutError:
                log.warning("cutting %d connection(s) still busy after %g s", len(self.connections), grace)
                for conn in list(self.connections):
                    conn.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.upstreams.close()
        self.time_limits.close()


class ClientConnection(asyncio.Protocol):
    def __init__(self, front: Front) -> None:
        self.front = front
        self.config = front.config
        self.transport: asyncio.Transport | None = None
        self.peer = b""
        self.admitted = False  # counts against max_connections
        self.corked = False  # writes are gathered and sent at the end of the current callback
        self.write_paused = False
        self._out: list[bytes] = []
        self.head_memo = http.HeadMemo()  # the last head forwarded for it: the next is often the same
        self._parser = httptools.HttpRequestParser(self)
        self.loop = front.loop
        # the request being parsed
        self._url = b""
        self._headers: Headers = []
        self._in_head = False
        self._head_bytes = 0
        self._head_started = 0.0
        self._parsing: Exchange | None = None
        # the exchanges: the one answering, and parsed ones waiting their turn
        self._active: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._advancing = False
        self._no_more_requests = False
        self._reading_paused = False
        self._lingering = False
        self._closed = False
        self._idle_since = self.loop.time()
        self._last_read = self._idle_since  # while a request body is coming: when bytes last came
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None  # the end of lingering, then the abort
        self._rejected: _Reject | None = None  # raised in a parser callback
        self._final: bytes | None = None  # the error answer sent once earlier requests are answered
        self._eof = False

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = str(peer[0]).encode()
        self.front.connections.add(self)
        if self.front.draining or self.front.refuses(self.peer):
            self.abort()
            return
        if not self.front.admit(self):
            self._refuse()
            return
        self._arm_timer(self.loop.time())

    def _refuse(self) -> None:
        """Over max_connections: 503 at once, then close (without reading a request)."""
        self._no_more_requests = True
        limit = self.config.max_connections
        message = f"faasd holds {limit} client connections, its limit; retry later"
        self.send(http.error_response(503, "overloaded", message, headers={"Retry-After": "1"}, close=True))
        self.linger()

    def data_received(self, data: bytes) -> None:
        if self._lingering or self._no_more_requests:
            return  # closing: unread input is drained and dropped
        self.corked = True
        try:
            was_in_head = self._in_head
            self._parser.feed_data(data)
            if self._in_head and was_in_head:
                self._head_bytes += len(data)
                if self._head_bytes > self.config.max_head_bytes:
                    raise _Reject(431, "request_header_fields_too_large", "request head too large")
        except _Reject as rejected:
            self._reject(rejected)
        except httptools.HttpParserCallbackError:
            stopped, self._rejected = self._rejected, None
            self._reject(stopped or _Reject(500, "internal", "internal error; see faasd's log"))
        except httptools.HttpParserUpgrade:
            # The (bodiless) request is complete; faasd does not switch protocols
            # (Upgrade is not forwarded), so it is answered as a plain request
            # and the rest of the connection is ignored.
            self._no_more_requests = True
        except httptools.HttpParserError as exc:
            self._reject(_Reject(400, "bad_request", f"malformed HTTP request: {exc}"))
        finally:
            self.corked = False
            self.flush()
        if self._parsing is not None:
            self._last_read = self.loop.time()  # a body is coming: its idle deadline starts again
        self.update_reading()

    def eof_received(self) -> bool | None:
        # The client is gone (a half-close is taken as gone, as nginx does):
        # calls in flight are abandoned, their leases released.
        self._eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        exchanges = [self._active, self._parsing, *self._queue]
        self._active = self._parsing = None
        self._queue.clear()
        for ex in exchanges:
            if ex is not None:
                ex.abort()
        self.front.forget(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self._active
        if ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self._active
        if ex is not None and ex.upstream is not None:
            ex.upstream.resume_reading()
        self.update_reading()

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._head_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.config.max_head_bytes:
            self._stop(_Reject(431, "request_header_fields_too_large", "request head too large"))

    def _stop(self, rejected: _Reject) -> None:
        """Stop the parser from a callback; data_received answers ``rejected``."""
        self._rejected = rejected
        raise rejected

    def _crashed(self, where: str) -> None:
        log.exception("error while handling %s", where)
        self._stop(_Reject(500, "internal", "internal error; see faasd's log"))

    def on_headers_complete(self) -> None:
        self._in_head = False
        try:
            self._dispatch()
        except _Reject:
            raise
        except Exception:
            self._crashed("a request head")

    def _dispatch(self) -> None:
        parser = self._parser
        content_length: int | None = None
        chunked = False
        expect = False
        connection = False
        request_id = b""
        for name, value in self._headers:
            size = len(name)
            if size == 14 and name.lower() == b"content-length":
                content_length = int(value)
            elif size == 17 and name.lower() == b"transfer-encoding":
                if chunked or value.strip().lower() != b"chunked":
                    self._stop(_Reject(501, "not_implemented", "only 'Transfer-Encoding: chunked' is supported"))
                chunked = True
            elif size == 6 and name.lower() == b"expect":
                if value.strip().lower() != b"100-continue":
                    self._stop(_Reject(417, "expectation_failed", "only 'Expect: 100-continue' is supported"))
                expect = True
            elif size == 12 and name.lower() == b"x-request-id":
                request_id = value
            elif size == 10 and name.lower() == b"connection":
                connection = True
        method = parser.get_method()
        if method == b"CONNECT":
            self._stop(_Reject(405, "method_not_allowed", "CONNECT is not supported"))
        if (chunked or content_length) and parser.should_upgrade():
            # llhttp would take the body for the new protocol's bytes: the
            # request could never be forwarded whole.
            self._stop(_Reject(400, "bad_request", "an Upgrade request cannot have a body; faasd does not upgrade"))
        url = self._url
        if url[:1] == b"/":
            path, _, _ = url.partition(b"?")
            target = url
        elif url[:7].lower() == b"http://":
            parsed = httptools.parse_url(url)
            path = parsed.path or b"/"
            target = path + (b"?" + parsed.query if parsed.query else b"")
        else:
            self._stop(_Reject(400, "bad_request", "the request target must be a path"))
        keep_alive = parser.should_keep_alive()
        # Kept alive without a Connection header is HTTP/1.1 (llhttp takes 0.9, 1.0, 1.1 and 2.0, and
        # keeps only 1.1 alive by default), which spares the version string on the usual request.
        http11 = (keep_alive and not connection) or parser.get_http_version() == "1.1"
        ex = Exchange(
            self,
            method,
            target,
            path,
            self._headers,
            keep_alive=keep_alive,
            http11=http11,
            content_length=content_length,
            chunked=chunked,
            expect_continue=expect,
            request_id=request_id,
        )
        if not keep_alive:
            ex.close_connection = True
        self._parsing = ex
        self._queue.append(ex)
        if self._active is None:
            self._start_next()

    def on_body(self, body: bytes) -> None:
        ex = self._parsing
        if ex is not None:
            try:
                ex.request_body(body)
            except Exception:
                self._crashed("a request body")

    def on_message_complete(self) -> None:
        ex = self._parsing
        self._parsing = None
        if ex is None:
            return
        try:
            ex.request_end()
            if ex.close_connection:
                self._no_more_requests = True
            if ex.response_done and ex is self._active:
                self._active = None
                self._start_next()
        except Exception:
            self._crashed("the end of a request")

    # -- exchanges ---------------------------------------------------------------

    def _start_next(self) -> None:
        if self._advancing:
            return  # the loop below is running further up the stack
        self._advancing = True
        try:
            while self._active is None and self._queue and not self._closed and not self._lingering:
                ex = self._active = self._queue.popleft()
                ex.start()
        finally:
            self._advancing = False
        if self._active is None and self._parsing is None:
            self._idle_since = self.loop.time()
            if self._final is not None:
                self.send(self._final)
                self._final = None
                self.linger()
            elif self._no_more_requests or self.front.draining:
                self.linger()
        if not self.corked:  # else whoever corked it updates once done (data_received, Exchange.uncork)
            self.update_reading()  # the queue may have emptied with no upstream to resume reading

    def response_finished(self, ex: Exchange) -> None:
        """``ex`` has written all of its answer."""
        if ex is not self._active:
            return
        if ex.close_connection or not ex.keep_alive:
            self._no_more_requests = True
            self.linger()
            return
        if ex.request_done:
            self._active = None
            self._start_next()
        # else: the rest of its body is read and dropped; on_message_complete moves on

    def update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._closed or self._lingering:
            return  # a lingering connection reads (and drops) until it closes
        ex = self._parsing
        pause = bool(self._queue) or (ex is not None and ex.blocks_reading())
        if not pause and ex is None and self.write_paused:
            pause = True  # answers pile up unread: take no more requests for now
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                self._last_read = self.loop.time()  # no bytes while paused was not the client's doing
                transport.resume_reading()

    def buffered_bytes(self) -> int:
        total = sum(map(len, self._out))
        if self.transport is not None and not self._closed:
            total += self.transport.get_write_buffer_size()
        for ex in {self._active, self._parsing, *self._queue}:
            if ex is not None:
                total += ex.buffered_bytes()
        return total

    # -- writing and closing -------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.corked:
            self._out.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def send_many(self, parts: list[bytes]) -> None:
        if self.corked:
            self._out += parts
        elif self.transport is not None:
            self.transport.write(b"".join(parts))

    def flush(self) -> None:
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if self.transport is not None and not self._closed:
                self.transport.write(data)
        ex = self._active
        if ex is not None and ex.upstream is not None:
            ex.flush_up()

    def _reject(self, rejected: _Reject) -> None:
        """A request that cannot be parsed or served: answer it after the earlier ones, then close."""
        self._no_more_requests = True
        self._in_head = False
        self._final = http.error_response(rejected.status, rejected.code, rejected.message, close=True)
        ex, self._parsing = self._parsing, None
        if ex is not None:
            if ex is self._active:
                if ex.response_done:
                    self._final = None  # it was answered; nothing more to say
                elif ex.response_started:
                    self.abort()  # an answer is half written; nothing else can follow it
                    return
                ex.abort()
                self._active = None
            else:
                self._queue.remove(ex)
                ex.abort()
        if self._active is None:
            self._start_next()

    def linger(self) -> None:
        """Close after what is written: shut our side, drop unread input for a while, then close.

        Closing with unread input would make the kernel send a reset, which can
        destroy the answer before the client reads it.
        """
        if self._lingering or self._closed or self.transport is None:
            return
        self._lingering = True
        self.flush()
        transport = self.transport
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._eof or not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:  # the peer is already gone
            transport.close()
            return
        self._close_timer = self.loop.call_later(self.config.linger, self._linger_done)

    def _linger_done(self) -> None:
        self._close_timer = None
        if self.transport is not None and not self._closed:
            self.transport.close()  # sends what is still buffered, then closes
            # A client that never reads would hold the close forever: cut it then.
            self._close_timer = self.loop.call_later(self.config.keepalive_timeout, self.transport.abort)

    def abort(self) -> None:
        """Cut the connection now (an answer cannot be completed)."""
        if self.transport is not None and not self._closed:
            self._lingering = True
            self.transport.abort()

    def drain(self) -> None:
        """faasd is stopping: close when idle, else after the current answer."""
        self._no_more_requests = True
        if self._active is not None:
            self._active.end_stream()
        if self._active is None and self._parsing is None:
            self.linger()

    # -- timeouts ------------------------------------------------------------------

    def _arm_timer(self, now: float) -> None:
        self._timer = self.loop.call_at(now + self.config.head_timeout, self._check_timeouts)

    def _check_timeouts(self) -> None:
        self._timer = None
        if self._closed or self._lingering:
            return
        now = self.loop.time()
        config = self.config
        if self._in_head:
            deadline = self._head_started + config.head_timeout
            if now >= deadline:
                log.debug("closing a connection whose request head took over %g s", config.head_timeout)
                self.abort()
                return
        elif self._active is None and self._parsing is None and not self._lingering:
            deadline = self._idle_since + config.keepalive_timeout
            if now >= deadline:
                self.linger()
                return
        elif self._parsing is not None and not self._reading_paused:
            deadline = self._last_read + config.head_timeout
            if now >= deadline:
                log.debug("closing a connection whose request body stalled for %g s", config.head_timeout)
                message = f"no byte of the request body came for {config.head_timeout:g} s"
                self._reject(_Reject(408, "request_timeout", message))
                return
        else:
            deadline = now + config.head_timeout
        self._timer = self.loop.call_at(min(deadline, now + config.head_timeout), self._check_timeouts)
