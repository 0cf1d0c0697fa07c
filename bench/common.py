"""Small shared pieces: statistics, a keep-alive JSON client, deadlines, the hello functions."""

from __future__ import annotations

import http.client
import json
import math
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The functions every phase creates: the smallest hello per runtime.
HELLO = {
    "nodejs": 'module.exports = async () => "hello";\n',
    "python": 'def main():\n    return "hello"\n',
}
ENVIRONMENTS = ("nodejs", "python")


class BenchError(RuntimeError):
    """A phase could not be measured (faasd answered wrongly, a deadline passed)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p99: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(len(values), percentile(values, 50), percentile(values, 99), min(values), max(values))


class Deadline:
    """A phase's time bound: every loop checks it besides its own count."""

    def __init__(self, seconds: float, what: str) -> None:
        self.what = what
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return time.monotonic() > self.at

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise BenchError(f"deadline passed: {self.what}")


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll ``condition`` until true; return the seconds waited; raise after ``timeout``."""
    began = time.monotonic()
    deadline = Deadline(timeout, what)
    while not condition():
        deadline.check()
        time.sleep(interval)
    return time.monotonic() - began


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects once when the peer closed it."""

    def __init__(self, host: str, port: int, timeout: float = 60.0, token: str = "") -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        # The admin API's bearer token (sent on every request; function routes ignore it).
        self.token = token
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._conn.connect()
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, raw = self.request(method, path, body)
        if status != expect:
            raise BenchError(f"{method} {path}: expected {expect}, got {status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None


def ms(seconds: float) -> float:
    return seconds * 1000.0


def exit_on_sigterm() -> None:
    """A phase run alone: SIGTERM ends it through its finally blocks, which clean up."""

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
