"""The daemon's caps on a real engine: client connections (--max-connections) and
calls waiting for an instance (--max-queued-calls); both answer 503 "overloaded"."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
import pytest
import requests

from tests.integration.harness import FaasdProcess, wait_for

# Sleeps ?s seconds (a call that holds its slot until the test ends it).
SLEEPY_PY = """import time

def main():
    time.sleep(float(request.args.get("s", "0")))
    return "done"
"""


def healthz_on(sock: socket.socket) -> http.client.HTTPResponse:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: faasd.test\r\n\r\n")
    return read_response(sock)


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()  # the body, so that the connection can be used again
    return response


@pytest.fixture
def daemon_of(start_faasd: Callable[..., FaasdProcess]) -> Iterator[Callable[..., FaasdProcess]]:
    """start_faasd on a Docker network of its own (removed after), apart from any other faasd on the engine."""
    started: list[FaasdProcess] = []
    network = f"faasd-caps-{uuid.uuid4().hex[:8]}"

    def start(**options: Any) -> FaasdProcess:
        daemon = start_faasd(network=network, **options)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.cleanup()
        with contextlib.suppress(docker.errors.NotFound):
            daemon.engine.api.remove_network(network)


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def test_a_connection_beyond_max_connections_gets_503_and_is_closed(
    daemon_of: Callable[..., FaasdProcess],
) -> None:
    daemon = daemon_of(max_connections=3, default_poolsize=1)
    with sockets() as opened:

        def connect() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
            opened.append(sock)
            return sock

        held: list[socket.socket] = []

        def admit_one() -> bool:
            # A connection of the harness may still be closing: then this one is refused; try again.
            sock = connect()
            if healthz_on(sock).status == 200:
                held.append(sock)
            return len(held) == 3

        wait_for(admit_one, "three connections to be served", timeout=30, every=0.1)
        extra = connect()
        refused = http.client.HTTPResponse(extra)
        refused.begin()  # answered without a request
        body = json.loads(refused.read())
        assert refused.status == 503
        assert body == {
            "error": {"code": "overloaded", "message": "faasd holds 3 client connections, its limit; retry later"}
        }
        assert refused.getheader("Retry-After") == "1"
        assert refused.getheader("Connection") == "close"
        assert extra.recv(1024) == b""  # closed
        # The held connections still work; closing one makes room.
        for sock in held:
            assert healthz_on(sock).status == 200
        held.pop().close()

        def served() -> bool:
            return healthz_on(connect()).status == 200

        wait_for(served, "a new connection to be served once one closed", timeout=30, every=0.1)
    assert "refusing client connections" in daemon.log()


def test_a_call_that_would_wait_beyond_max_queued_calls_gets_503(
    daemon_of: Callable[..., FaasdProcess],
) -> None:
    daemon = daemon_of(max_queued_calls=1, default_poolsize=1)
    daemon.create_function("sleepy", "python", SLEEPY_PY, concurrency=1, max_instances=1, queue_timeout=120)
    daemon.create_function("other", "python", SLEEPY_PY)

    def call(name: str, seconds: float = 0) -> requests.Response:
        return requests.get(f"{daemon.url}/function/{name}?s={seconds}", timeout=180)

    def function(name: str) -> dict[str, Any]:
        return next(f for f in daemon.status()["functions"] if f["name"] == name)

    with concurrent.futures.ThreadPoolExecutor(2) as workers:
        holding = workers.submit(call, "sleepy", 600)  # holds the only slot until its container is killed
        wait_for(lambda: function("sleepy")["inflight"] == 1, "the first call to hold the only slot", timeout=60)
        queued = workers.submit(call, "sleepy")
        wait_for(lambda: function("sleepy")["waiting"] == 1, "the second call to wait", timeout=60)

        refused = call("sleepy")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == {
            "code": "overloaded",
            "message": "faasd holds 1 calls waiting for an instance, its limit; retry later",
        }
        assert refused.headers["Retry-After"] == "1"
        # The cap counts every function's waiting calls: a cold call elsewhere would wait too.
        assert call("other").status_code == 503
        assert not holding.done() and not queued.done()

        # End the held call: kill its container (its id is in the function's log).
        def instance_id() -> str | None:
            lines = daemon.api("GET", "/v1/functions/sleepy/logs").text.splitlines()
            return next((line.split()[1] for line in lines if "specialized" in line), None)

        prefix = wait_for(instance_id, "the instance to log its specialization", timeout=60)
        daemon.engine.api.kill(prefix)
        assert holding.result(timeout=120).status_code == 502
        assert queued.result(timeout=120).status_code == 200  # served by a new instance
    # Nothing waits any more: calls are taken again.
    assert call("sleepy").status_code == 200
    assert call("other").status_code == 200
