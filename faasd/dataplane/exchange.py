"""One request and its response: routed, forwarded upstream and relayed back.

An :class:`Exchange` is made when a request head is parsed and started when it
is the oldest unanswered request of its connection (pipelining keeps order).
Then, for a function: route -> function -> lease -> upstream connection ->
head + body up -> head + body down -> lease released. For the admin API the
same without the lease, the body limit and the timeout. Every way out goes
through :meth:`Exchange._finish`, which releases the lease exactly once.

The two ends finish independently: ``request_done`` when the client's body is
all read, ``response_done`` when the answer is all written. The connection
moves on to the next request only when both are true.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from faasd.core.errors import FaasdError, FunctionTimeout, MethodNotAllowed, PayloadTooLarge, UpstreamError
from faasd.core.validation import DIRECT_ROOTS, RESERVED_PREFIXES
from faasd.dataplane import http
from faasd.dataplane.http import Headers
from faasd.dataplane.routing import Match

if TYPE_CHECKING:
    from faasd.dataplane.server import ClientConnection
    from faasd.dataplane.upstream import UpstreamConnection

log = logging.getLogger(__name__)

# Request body held while waiting for a lease or a connection before reading pauses.
PENDING_LIMIT = 256 * 1024
# Body bytes read and dropped after an early answer before the connection is closed instead.
DISCARD_LIMIT = 1024 * 1024

# Admin paths that store a function call for later: the call gets its X-Request-Id here.
ASYNC_PREFIX = b"/async-function"

# How the response body travels to the client.
_NONE, _RAW, _CHUNKED = 0, 1, 2


class Lease(Protocol):
    cold: bool  # the call waited for its instance to be made

    @property
    def url(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    def release(self) -> None: ...
    def discard(self) -> None: ...


class CallRecorder(Protocol):
    """Where an ended call is counted (faasd.observe.calls.CallStats implements it)."""

    def record(self, function: str, status: int, duration: float, overhead: float | None, error: str = "") -> None: ...


class FunctionInfo(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def timeout(self) -> float: ...


class FunctionRouter(Protocol):
    """What the data plane needs of the control plane (faasd.gateway.Gateway implements it)."""

    def resolve(self, method: str, path: str) -> Match: ...
    def function(self, name: str) -> FunctionInfo: ...
    def lease_now(self, fn: Any) -> Lease | None:
        """A lease at once when a warm instance is free (no task, no await), else None."""
        ...

    def lease(self, fn: Any) -> Coroutine[Any, Any, Lease]: ...
    def upstream_failed(self, lease: Any, detail: str) -> Coroutine[Any, Any, FaasdError]:
        """Take the lease's instance out of service; the error to answer, saying why it failed."""
        ...


_ADMIN_ROOTS = frozenset(prefix.encode() for prefix in RESERVED_PREFIXES if prefix not in DIRECT_ROOTS)
_ADMIN_STARTS = tuple(_ADMIN_ROOTS)


def is_admin(path: bytes) -> bool:
    """Whether the admin app answers ``path`` (/v1, /healthz, /readyz, /metrics, /ui and below: as
    faasd.core.validation.is_admin_path says, on the bytes)."""
    if not path.startswith(_ADMIN_STARTS):
        return False  # a function's path, mostly
    slash = path.find(b"/", 1)
    return (path if slash < 0 else path[:slash]) in _ADMIN_ROOTS


class TimeLimits:
    """The function timeouts of the calls in flight, at little cost per call.

    A call is put in a set when its lease is taken and out of it when it ends.
    Every ``tick`` seconds (while there are calls) the set becomes the older
    one, and the calls still in the older one then get a loop timer of their
    own, at their deadline: only a call that runs for one to two ticks or more
    costs a timer. Most warm calls end well within a tick, even behind a queue
    of them at the instance; setting and cancelling a loop timer for each would
    cost about a tenth of its CPU. A timeout shorter than two ticks may fire up
    to two ticks late.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.05) -> None:
        self._loop = loop
        self._tick = tick
        self._young: set[Exchange] = set()  # watched since the last tick
        self._older: set[Exchange] = set()  # watched during the tick before
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, ex: Exchange) -> None:
        self._young.add(ex)
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick, self._on_tick)

    def forget(self, ex: Exchange) -> None:
        self._young.discard(ex)
        self._older.discard(ex)

    def _on_tick(self) -> None:
        older, self._older, self._young = self._older, self._young, set()
        for ex in older:
            ex.arm_timeout()
        self._timer = self._loop.call_later(self._tick, self._on_tick) if self._older else None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._young.clear()
        self._older.clear()


class Exchange:
    __slots__ = (
        "_async",
        "_discarded",
        "_head",
        "_lease_task",
        "_leased_at",
        "_mode",
        "_params",
        "_sent_at",
        "_timer",
        "_up_keep",
        "_up_out",
        "_up_size",
        "aborted",
        "admin",
        "body_size",
        "chunked",
        "client",
        "close_connection",
        "cold",
        "content_length",
        "error",
        "expect_continue",
        "fn_name",
        "headers",
        "http11",
        "instance",
        "keep_alive",
        "key",
        "lease",
        "limit",
        "method",
        "path",
        "request_done",
        "request_id",
        "response_done",
        "response_started",
        "route",
        "started",
        "status",
        "target",
        "timeout",
        "up_paused",
        "upstream",
    )

    def __init__(
        self,
        client: ClientConnection,
        method: bytes,
        target: bytes,
        path: bytes,
        headers: Headers,
        *,
        keep_alive: bool,
        http11: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        request_id: bytes = b"",
    ) -> None:
        self.client = client
        self.method = method
        self.target = target
        self.path = path
        self.headers = headers
        self.keep_alive = keep_alive
        self.http11 = http11
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.close_connection = False
        self.request_done = False
        self.response_started = False
        self.response_done = False
        self.aborted = False
        self.body_size = 0
        self.limit: int | None = None
        self.timeout: float | None = None
        self.fn_name = ""
        self.key = ""
        self.lease: Lease | None = None
        self.upstream: UpstreamConnection | None = None
        self.up_paused = False
        self._lease_task: asyncio.Task[Lease] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the function's timeout, once armed (TimeLimits)
        self._leased_at = 0.0  # time.monotonic() when the lease was taken: the timeout runs from then
        self._up_out: list[bytes] = []  # bytes for upstream not yet written (all of them until attached)
        self._up_size = 0
        self._head = b""
        self._mode = _NONE
        self._up_keep = False
        self._discarded = 0
        self._async = False  # a call stored for later: /async-function/... or an --async route's
        # What the call did, for faasd.observe and the access log: set as it goes.
        self.request_id = request_id  # the caller's X-Request-Id until start() settles it
        self.started = 0.0  # time.monotonic(): the loop's clock is in whole milliseconds under uvloop
        self._sent_at = 0.0  # when the request went to the instance
        self.status = 0
        self.error = ""  # faasd's error code when faasd answered instead of the function
        self.cold = False
        self.instance = ""
        self.route = ""
        self.admin = is_admin(path)
        # A function's route parameters (X-Faasd-Params); None for the admin app, which takes none
        # but for an --async route's call (set in start()).
        self._params: bytes | None = None if self.admin else b"{}"

    # -- start: route, lease, connect ------------------------------------------

    def start(self) -> None:
        """This is now the oldest unanswered request on its connection."""
        client = self.client
        if self.admin:
            # A call stored for later (/async-function/...) keeps the caller's id if valid (else its call
            # id becomes its request id, faasd/control/events_api.py); any other admin request's
            # X-Request-Id passes as it is.
            self._async = self.path.startswith(ASYNC_PREFIX)
            self.request_id = http.valid_request_id(self.request_id) if self._async else b""
            self.key = client.front.admin_key
            self._continue()
            client.front.upstreams.acquire(self.key, self._on_upstream)
            return
        sent = self.request_id
        self.request_id = http.request_id(sent)
        try:
            router = client.front.router
            match = router.resolve(self.method.decode("latin-1"), self.path.decode("utf-8", "surrogateescape"))
            fn = router.function(match.function)
        except FaasdError as err:
            self.fail(err)
            return
        if match.is_async:
            # A route with --async: the admin app stores the call and answers 202
            # (faasd/control/events_api.py). /async-route/ is not an admin path,
            # so only this rewrite reaches it, never a client.
            self.admin = True
            self.key = client.front.admin_key
            self.target = b"/async-route/" + fn.name.encode() + self.target
            self._params = http.params_header(match.params)
            self._async = True
            self.request_id = http.valid_request_id(sent)
            self._continue()
            client.front.upstreams.acquire(self.key, self._on_upstream)
            return
        self.fn_name = fn.name
        self.route = match.route
        self.started = monotonic()
        self.timeout = fn.timeout
        limit = self.limit = client.front.config.max_body_bytes
        if self.content_length is not None and self.content_length > limit:
            self.close_connection = True  # the body is not read
            self.fail(PayloadTooLarge(f"request body is {self.content_length} bytes; the limit is {limit}"))
            return
        if self.body_size > limit:
            self._too_large()
            return
        self._params = http.params_header(match.params)
        self._continue()
        try:
            lease = router.lease_now(fn)
        except FaasdError as err:
            self.fail(err)
            return
        if lease is not None:
            self._leased(lease, self.started)
            return
        task = self._lease_task = self.client.loop.create_task(router.lease(fn))
        task.add_done_callback(self._on_lease)

    def _continue(self) -> None:
        if self.expect_continue and not self.request_done:
            self.client.send(http.CONTINUE)

    def _on_lease(self, task: asyncio.Task[Lease]) -> None:
        self._lease_task = None
        if task.cancelled():
            if not self.response_done:
                self.fail(UpstreamError("the call was cancelled"))
            return
        exc = task.exception()
        if exc is not None:
            if not self.response_done:
                if not isinstance(exc, FaasdError):
                    log.error("lease of %s failed", self.fn_name, exc_info=exc)
                self.fail(exc)
            return
        lease = task.result()
        if self.response_done:  # answered already (client gone, body too large)
            lease.release()
            return
        self._leased(lease, monotonic())

    def _leased(self, lease: Lease, at: float) -> None:
        """``lease`` was taken at ``at``: the function's timeout runs from then."""
        self.lease = lease
        self.cold = lease.cold
        front = self.client.front
        if front.access_log is not None:
            self.instance = lease.instance_id
        self.key = lease.url
        self._leased_at = at
        front.time_limits.watch(self)
        front.upstreams.acquire(self.key, self._on_upstream)

    def arm_timeout(self) -> None:
        """The call still runs at TimeLimits' tick: its timeout gets a timer of its own now."""
        if self.response_done:
            return
        assert self.timeout is not None
        left = self._leased_at + self.timeout - monotonic()
        self._timer = self.client.loop.call_later(max(left, 0.0), self._on_timeout)

    def _on_upstream(self, conn: UpstreamConnection | None, exc: BaseException | None) -> None:
        if conn is None:
            if not self.response_done:
                self._upstream_failed(f"could not connect: {exc}")
            return
        if self.response_done:
            self.client.front.upstreams.release(conn)  # nothing was written to it
            return
        self.upstream = conn
        conn.attach(self)
        if not self._head:
            self._head = self._build_head(conn)
            self._up_out.insert(0, self._head)
            self._sent_at = monotonic()
        client = self.client
        if client.write_paused:
            conn.pause_reading()
        if not client.corked:  # else whoever corked it flushes and updates its reading
            self.flush_up()
            client.update_reading()

    def _build_head(self, conn: UpstreamConnection) -> bytes:
        if self.content_length is not None:
            framing = b"Content-Length: %d\r\n" % self.content_length
        elif self.chunked:
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            framing = b""
        admin = self.admin
        return http.request_head(
            self.method,
            self.target,
            self.headers,
            host=None if admin else conn.host,
            peer=self.client.peer,
            append_forwarded_for=not admin,
            params=self._params,
            request_id=self.request_id,
            own_request_id=self._async,
            framing=framing,
            memo=self.client.head_memo,
        )

    # -- request body, from the client's parser --------------------------------

    def request_body(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.response_done:
            self._discarded += len(data)
            if self._discarded > DISCARD_LIMIT:
                self.client.linger()
            return
        if self.limit is not None and self.body_size > self.limit:
            self._too_large()
            return
        if self.chunked:
            self._up_out += http.chunk(data)
        else:
            self._up_out.append(data)
        self._up_size += len(data)
        if self.upstream is not None and not self.client.corked:
            self.flush_up()

    def request_end(self) -> None:
        self.request_done = True
        if self.response_done:
            return
        if self.chunked:
            self._up_out.append(http.CHUNKED_END)
            if self.upstream is not None and not self.client.corked:
                self.flush_up()

    def flush_up(self) -> None:
        out = self._up_out
        if not out or self.upstream is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._up_size = 0
        self.upstream.write(data)

    def buffered_bytes(self) -> int:
        total = self._up_size
        conn = self.upstream
        if conn is not None and conn.transport is not None and not conn.closed:
            total += conn.transport.get_write_buffer_size()
        return total

    def blocks_reading(self) -> bool:
        """Whether the client's reading should pause for this exchange's sake."""
        if self.response_done:
            return False
        return self.up_paused or (self.upstream is None and self._up_size > PENDING_LIMIT)

    def _too_large(self) -> None:
        self.close_connection = True
        self.fail(PayloadTooLarge(f"request body is over the limit of {self.limit} bytes"))

    # -- response, from the upstream connection (ResponseSink) -----------------

    def cork(self) -> None:
        self.client.corked = True

    def uncork(self) -> None:
        client = self.client
        client.corked = False
        client.flush()
        client.update_reading()

    def response_head(
        self, status: int, reason: bytes, headers: Headers, keep_alive: bool, length: bytes | None
    ) -> None:
        if self.response_done:
            return
        if status == 101:
            self._upstream_failed("it answered 101 Switching Protocols to a request without Upgrade")
            return
        self._up_keep = keep_alive
        head_request = self.method == b"HEAD"
        keep = self.keep_alive and not self.close_connection and not self.client.front.draining
        if head_request or status in (204, 304):
            self._mode = _NONE
            framing = b"Content-Length: " + length + b"\r\n" if length is not None and status != 204 else b""
        elif length is not None:
            self._mode = _RAW
            framing = b"Content-Length: " + length + b"\r\n"
        elif self.http11:
            self._mode = _CHUNKED
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            self._mode = _RAW  # HTTP/1.0: the end of the body is the end of the connection
            framing = b""
            keep = False
        if not keep:
            self.keep_alive = False
            framing += b"Connection: close\r\n"
        elif not self.http11:
            framing += b"Connection: keep-alive\r\n"
        self.status = status
        self.response_started = True
        # An async call's 202 says its own X-Request-Id (the admin app's); a function call's is faasd's.
        request_id = b"" if self._async else self.request_id
        memo = self.upstream.head_memo if self.upstream is not None else None
        self.client.send(http.response_head(status, reason, headers, framing, request_id, memo))
        if head_request:
            # httptools cannot be told that a HEAD answer has no body: end it here
            # and do not reuse the connection (its parser expects a body).
            self._up_keep = False
            self.response_end()

    def response_body(self, data: bytes) -> None:
        if self.response_done:
            return
        if self._mode == _RAW:
            self.client.send(data)
        elif self._mode == _CHUNKED and data:
            self.client.send_many(http.chunk(data))

    def response_end(self) -> None:
        if self.response_done:
            return
        if self._mode == _CHUNKED:
            self.client.send(http.CHUNKED_END)
        self._drop_upstream(reuse=self._up_keep and self.request_done and not self._up_out)
        self._finish()

    def end_stream(self) -> None:
        """faasd is stopping: end an open-ended admin answer (a log follow) cleanly, now."""
        if self.admin and self._mode == _CHUNKED and self.response_started and not self.response_done:
            self._up_keep = False
            self.keep_alive = False
            self.response_end()

    def upstream_lost(self, exc: BaseException | None) -> None:
        """The connection broke before the answer was complete: a 502, never a second send.

        A request is written to the instance as soon as it is attached, so any
        part of it may have reached the function and run it: sending it again
        could run a POST twice. The race this would cover (the container closing
        an idle keep-alive connection as a request goes out) does not arise:
        faasd drops idle upstream connections after 30 s, the runtimes after 75 s.
        """
        if self.response_done:
            return
        self._drop_upstream()  # lost already: closing it again only detaches it
        self._upstream_failed(str(exc) if exc else "closed before the answer was complete")

    def upstream_write_paused(self, paused: bool) -> None:
        self.up_paused = paused
        self.client.update_reading()

    # -- endings -----------------------------------------------------------------

    def _upstream_failed(self, why: str) -> None:
        if self.admin:
            self.fail(UpstreamError(f"the admin API did not answer: {why}"))
            return
        log.warning("function %s failed: %s", self.fn_name, why)
        lease = self.lease
        if lease is None or self.response_started:
            message = f"function '{self.fn_name}' failed: its container closed the connection ({why})"
            self.fail(UpstreamError(message), discard=True)
            return
        # Ask the pool why the instance died (out of memory, crashed); it takes it
        # out of service. The lease is released only after that, even if the
        # client leaves meanwhile, so the instance is never handed out again.
        self._drop_upstream()
        self.lease = None
        task = self.client.front.spawn(self.client.front.router.upstream_failed(lease, why))
        task.add_done_callback(lambda done: self._on_failure_explained(done, lease))

    def _on_failure_explained(self, task: asyncio.Task[FaasdError], lease: Lease) -> None:
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                log.error("could not explain the failure of %s", self.fn_name, exc_info=task.exception())
            lease.discard()
            err: FaasdError = UpstreamError(f"function '{self.fn_name}' failed: its container closed the connection")
        else:
            err = task.result()
        lease.release()
        if not self.response_done:
            self.fail(err)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.response_done:
            return
        log.warning(
            "function %s timed out after %g s%s",
            self.fn_name,
            self.timeout,
            " while streaming its answer" if self.response_started else "",
        )
        self.fail(
            FunctionTimeout(f"function '{self.fn_name}' did not answer within its timeout of {self.timeout:g} s"),
            discard=True,
        )

    def fail(self, err: BaseException, *, discard: bool = False) -> None:
        """Answer with ``err`` (or cut the connection if the answer has begun)."""
        if self.response_done:
            return
        if isinstance(err, FaasdError):
            self.error = err.code
        self._drop_upstream()  # half used: never back to the pool
        if discard and self.lease is not None:
            self.lease.discard()
        if self.response_started:
            if isinstance(err, FaasdError):
                self.status = err.status  # counted as what it was (a 504, a 502), not the status begun
            self.aborted = True  # the connection goes: nothing follows on it
            self._finish()
            self.client.abort()
            return
        if not isinstance(err, FaasdError):
            err = FaasdError("internal error; see faasd's log")
        headers = dict(getattr(err, "headers", None) or {})
        if isinstance(err, MethodNotAllowed):
            headers["Allow"] = ", ".join(err.allowed)
        if self.request_id:
            headers["X-Request-Id"] = self.request_id.decode("latin-1")
        self.status = err.status
        self.error = err.code
        if (
            not self.request_done
            and self.content_length is not None
            and self.content_length - self.body_size > DISCARD_LIMIT
        ):
            self.close_connection = True  # too much body to read and drop
        close = self.close_connection or not self.keep_alive or self.client.front.draining
        self.keep_alive = not close
        self.response_started = True
        self.client.send(
            http.error_response(
                err.status,
                err.code,
                err.message,
                headers=headers,
                close=close,
                head_only=self.method == b"HEAD",
            )
        )
        self._finish()

    def _finish(self) -> None:
        self.response_done = True
        if self.fn_name:
            self._count()
        self._up_out.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        elif self._leased_at:
            self.client.front.time_limits.forget(self)
        task, self._lease_task = self._lease_task, None
        if task is not None:
            task.cancel()  # gives up its place in the queue; a slot it was given goes back
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()
        if not self.aborted:
            self.client.response_finished(self)

    def abort(self) -> None:
        """The client is gone: drop the upstream connection, release the lease."""
        if self.response_done:
            return
        if not self.response_started:
            self.status = 499  # as Fission and nginx say: the client closed the request
        self.aborted = True
        self._drop_upstream()
        self._finish()

    def _count(self) -> None:
        """The call ended: count it (faasd.observe), and log it when the access log is on."""
        front = self.client.front
        duration = monotonic() - self.started
        sent = self._sent_at
        front.calls.record(self.fn_name, self.status, duration, sent - self.started if sent else None, self.error)
        if front.access_log is not None:
            front.access_log.write(self, duration)

    def _drop_upstream(self, *, reuse: bool = False) -> None:
        """Let go of the upstream connection: back to the pool if ``reuse``, else closed."""
        conn, self.upstream = self.upstream, None
        if conn is not None:
            if reuse:
                self.client.front.upstreams.release(conn)
            else:
                conn.close()
