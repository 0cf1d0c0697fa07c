"""Real sockets on loopback: faasd's front, a fake function upstream, a fake admin app, raw clients.

The front runs as in faasd (faasd.dataplane.Front on a TCP port, the admin
app on a unix socket); only the control plane is a fake with the same small
interface (resolve, function, lease, upstream_failed), so a test can see
every lease's releases and discards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
from aiohttp import web

from faasd.core.errors import FaasdError, NotFound, UpstreamError
from faasd.dataplane.routing import Match, RouteTable, split_path


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Poll (every 10 ms) until ``predicate()`` is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


# -- the fake control plane ---------------------------------------------------------


@dataclass
class FakeFunction:
    name: str
    timeout: float = 30.0


class FakeLease:
    def __init__(self, url: str, cold: bool = False) -> None:
        self.url = url
        self.cold = cold
        self.instance_id = "fakeinstance"
        self.released = 0
        self.discarded = 0
        self.events: list[str] = []  # "release" and "discard", in the order they came

    def release(self) -> None:
        self.released += 1
        self.events.append("release")

    def discard(self) -> None:
        self.discarded += 1
        self.events.append("discard")


@dataclass
class FakeRouter:
    """Functions by name, each served by ``upstream_url``; every lease is kept for inspection."""

    upstream_url: str
    functions: dict[str, FakeFunction] = field(default_factory=dict)
    routes: RouteTable = field(default_factory=RouteTable)
    leases: list[FakeLease] = field(default_factory=list)
    lease_error: FaasdError | None = None
    lease_delay: float = 0.0
    lease_cancelled: int = 0  # lease() calls cancelled while they waited
    failure_delay: float = 0.0  # how long upstream_failed takes to look into the instance

    def add(self, name: str, timeout: float = 30.0) -> None:
        self.functions[name] = FakeFunction(name, timeout)

    def resolve(self, method: str, path: str) -> Match:
        parts = split_path(path)
        if parts and parts[0] == "function":
            if len(parts) < 2:
                raise NotFound("name a function: /function/<name>")
            return Match(parts[1], {}, route="/function/" + parts[1])
        return self.routes.match(method, path)

    def function(self, name: str) -> FakeFunction:
        fn = self.functions.get(name)
        if fn is None:
            raise NotFound(f"function '{name}' not found")
        return fn

    def lease_now(self, fn: FakeFunction) -> FakeLease | None:
        if self.lease_delay or self.lease_error is not None:
            return None  # the slow path: lease() in a task
        lease = FakeLease(self.upstream_url)
        self.leases.append(lease)
        return lease

    async def lease(self, fn: FakeFunction) -> FakeLease:
        if self.lease_delay:
            try:
                await asyncio.sleep(self.lease_delay)
            except asyncio.CancelledError:
                self.lease_cancelled += 1
                raise
        if self.lease_error is not None:
            raise self.lease_error
        lease = FakeLease(self.upstream_url)
        self.leases.append(lease)
        return lease

    async def upstream_failed(self, lease: FakeLease, detail: str) -> FaasdError:
        if self.failure_delay:
            await asyncio.sleep(self.failure_delay)
        lease.discard()
        return UpstreamError(f"fake: the instance died ({detail})")

    @property
    def last(self) -> FakeLease:
        assert self.leases, "no lease was taken"
        return self.leases[-1]

    def outstanding(self) -> int:
        return sum(1 for lease in self.leases if lease.released == 0)


# -- the fake function: an aiohttp server with handlers for each behaviour -------------


class FakeFunctionServer:
    """``/echo``, ``/big``, ``/chunked``, ``/sleep``, ``/die``, ``/upload``, ``/status/<n>``, ``/hop``."""

    def __init__(self, keepalive_timeout: float = 75.0) -> None:
        self.keepalive_timeout = keepalive_timeout
        self.connections: list[asyncio.BaseTransport] = []
        self.requests: list[dict[str, Any]] = []
        self.disconnected = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _track(self, request: web.Request) -> None:
        if request.transport is not None and request.transport not in self.connections:
            self.connections.append(request.transport)
        self.requests.append({"method": request.method, "path": request.path_qs})

    async def echo(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        body = await request.read()
        doc = {
            "method": request.method,
            "target": request.path_qs,
            "headers": [[k.decode(), v.decode("latin-1")] for k, v in request.raw_headers],
            "body": body.decode("latin-1"),
        }
        return web.json_response(doc)

    async def big(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        size = int(request.query["n"])
        response = web.StreamResponse()
        if request.query.get("chunked") != "1":
            response.content_length = size
        await response.prepare(request)
        block = bytes(range(256)) * 256  # 64 KiB
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await response.write(part)
        await response.write_eof()
        return response

    async def drip(self, request: web.Request) -> web.StreamResponse:
        """A chunk every 0.1 s, 20 of them: an answer that outlives a short timeout."""
        self._track(request)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(20):
            await response.write(b"x")
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response

    async def sleep(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        try:
            await asyncio.sleep(float(request.query["s"]))
        except asyncio.CancelledError:
            self.disconnected += 1
            raise
        return web.Response(text=f"slept {request.query['s']}")

    async def die(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """Read the body slowly (a slow function), answer its size and sha256."""
        self._track(request)
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
            await asyncio.sleep(0.001)
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    async def status(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        return web.Response(status=int(request.match_info["n"]), headers={"X-Status": "yes"})

    async def hop(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        return web.Response(
            text="hop",
            headers={
                "Connection": "keep-alive, X-Upstream-Hop",
                "Keep-Alive": "timeout=5",
                "X-Upstream-Hop": "secret",
                "Proxy-Authenticate": "Basic",
                "Trailer": "X-Trailer",
                "Upgrade": "h2c",
                "X-Faasd-Internal": "do not leak",
                "X-Kept": "kept",
            },
        )

    async def start(self) -> FakeFunctionServer:
        app = web.Application()
        # faasd forwards the request target unchanged: /function/fn/echo reaches /function/fn/echo.
        for prefix in ("", "/function/fn"):
            app.router.add_route("*", prefix + "/echo", self.echo)
            app.router.add_route("*", prefix + "/echo/{tail:.*}", self.echo)
            app.router.add_get(prefix + "/big", self.big)
            app.router.add_route("*", prefix + "/chunked", self.chunked)
            app.router.add_get(prefix + "/sleep", self.sleep)
            app.router.add_get(prefix + "/drip", self.drip)
            app.router.add_route("*", prefix + "/die", self.die)
            app.router.add_post(prefix + "/upload", self.upload)
            app.router.add_route("*", prefix + "/status/{n}", self.status)
            app.router.add_get(prefix + "/hop", self.hop)
        self.runner = web.AppRunner(
            app, keepalive_timeout=self.keepalive_timeout, access_log=None, handler_cancellation=True
        )
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        # A small receive buffer, so a slow reader pushes back on faasd at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        site = web.SockSite(self.runner, sock)
        await site.start()
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class RawUpstream:
    """A hand-written upstream for wire-level misbehaviour.

    ``handle(n_on_connection, head, writer)`` decides what to do with each
    request; requests are read by head + Content-Length.
    """

    def __init__(self, handle: Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]) -> None:
        self._handle = handle
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                n += 1
                self.requests += 1
                if not await self._handle(n, head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


# -- the fake admin app -------------------------------------------------------------------


def admin_app() -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "forwarded_for": request.headers.get("X-Forwarded-For"), "remote": request.remote}
        )

    async def things(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path_qs, "body": len(body)}, status=201)

    async def follow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(3):
            await response.write(b"line %d\n" % i)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async def forever(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first\n")
        await asyncio.sleep(3600)
        return response

    async def stored(request: web.Request) -> web.Response:
        # As faasd/control/events_api.py: the call is kept with its headers; 202.
        ids = request.headers.getall("X-Request-Id", [])
        return web.json_response({"request_ids": ids}, status=202)

    app = web.Application(client_max_size=1024)
    app.router.add_route("*", "/async-function/{tail:.*}", stored)
    app.router.add_get("/v1/forever", forever)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/v1/things", things)
    app.router.add_get("/v1/follow", follow)
    return app


# -- a raw HTTP client ---------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool = False

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class _ResponseReader:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []

    def on_message_begin(self) -> None:
        self._headers, self._body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        chunked = any(k.lower() == "transfer-encoding" for k, _ in self._headers)
        self.done.append(Response(status, self._headers, b"".join(self._body), chunked))


class RawClient:
    """One client connection: write raw bytes, read parsed responses, see the close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._responses = _ResponseReader()
        self.raw = bytearray()

    @classmethod
    async def connect(cls, port: int, rcvbuf: int | None = None) -> RawClient:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 10.0) -> Response:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not self._responses.done:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError(f"closed before a complete response; got {bytes(self.raw)!r}")
                self.raw += data
                self._responses.parser.feed_data(data)
        return self._responses.done.pop(0)

    async def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1", "Host: faasd.test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await self.response()

    async def closed(self, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109
        """Read until the server closes; what arrived before the close."""
        rest = b""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:  # reset, or the broken pipe of a write
                    break
                if not data:
                    break
                rest += data
        return rest

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
