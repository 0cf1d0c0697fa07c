"""The head builders of faasd/dataplane/http.py, and the warm path's cheap parts, without sockets.

request_head and response_head make one pass over the headers; a Connection
header that names other headers (before or after it) makes them take a second
pass. Both must drop exactly what the general rule drops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faasd.core import validation
from faasd.dataplane import http
from faasd.dataplane.exchange import TimeLimits, is_admin


def _lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")


def request(headers: list[tuple[bytes, bytes]], **options: Any) -> list[bytes]:
    kwargs: dict[str, Any] = {
        "host": b"10.0.0.5:8888",
        "peer": b"127.0.0.1",
        "append_forwarded_for": True,
        "params": b"{}",
        "framing": b"",
        "request_id": b"id-1",
    }
    kwargs.update(options)
    return _lines(http.request_head(b"GET", b"/x?y=1", headers, **kwargs))


def test_request_head_in_one_pass() -> None:
    lines = request(
        [
            (b"Host", b"faasd.test"),
            (b"User-Agent", b"curl"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Connection", b"keep-alive"),
            (b"X-Request-Id", b"client-sent"),
            (b"X-Faasd-Params", b'{"forged": "1"}'),
            (b"Proxy-Authorization", b"x"),
            (b"X-Forwarded-For", b"10.1.1.1"),
            (b"X-Forwarded-For", b"10.2.2.2"),
            (b"Forwarded", b"for=6.6.6.6"),
            (b"Content-Length", b"5"),
            (b"Accept", b"*/*"),
        ],
        framing=b"Content-Length: 5\r\n",
    )
    assert lines == [
        b"GET /x?y=1 HTTP/1.1",
        b"Host: 10.0.0.5:8888",
        b"User-Agent: curl",
        b"Accept: */*",
        b"X-Forwarded-For: 10.1.1.1, 10.2.2.2, 127.0.0.1",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: faasd.test",
        b"X-Faasd-Params: {}",
        b"X-Request-Id: id-1",
        b"Content-Length: 5",
        b"",
        b"",
    ]


def test_request_headers_a_connection_header_names_go_before_and_after_it() -> None:
    for connection in (b"keep-alive, X-Before, X-After", b"X-AFTER,x-before", b"close, x-before , x-after"):
        lines = request(
            [
                (b"X-Before", b"1"),
                (b"Host", b"faasd.test"),
                (b"Connection", connection),
                (b"X-Kept", b"2"),
                (b"X-After", b"3"),
                (b"X-Forwarded-For", b"10.1.1.1"),
            ]
        )
        assert lines == [
            b"GET /x?y=1 HTTP/1.1",
            b"Host: 10.0.0.5:8888",
            b"X-Kept: 2",
            b"X-Forwarded-For: 10.1.1.1, 127.0.0.1",
            b"X-Forwarded-Proto: http",
            b"X-Forwarded-Host: faasd.test",
            b"X-Faasd-Params: {}",
            b"X-Request-Id: id-1",
            b"",
            b"",
        ], connection


def test_the_admin_apps_request_keeps_its_host_and_its_request_id() -> None:
    lines = request(
        [(b"Host", b"faasd.test"), (b"X-Request-Id", b"kept"), (b"X-Forwarded-For", b"10.1.1.1")],
        host=None,
        append_forwarded_for=False,
        params=None,
        request_id=b"",
    )
    assert lines == [
        b"GET /x?y=1 HTTP/1.1",
        b"Host: faasd.test",
        b"X-Request-Id: kept",
        b"X-Forwarded-For: 127.0.0.1",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: faasd.test",
        b"",
        b"",
    ]
    # Its Host named by Connection: not forwarded, still X-Forwarded-Host.
    lines = request(
        [(b"Connection", b"host"), (b"Host", b"faasd.test")],
        host=None,
        append_forwarded_for=False,
        params=None,
        request_id=b"",
    )
    assert b"Host: faasd.test" not in lines
    assert b"X-Forwarded-Host: faasd.test" in lines


def test_response_head_in_one_pass() -> None:
    node = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"5"),
        (b"Date", b"Sun, 30 Nov 2026 06:00:00 GMT"),
        (b"Connection", b"keep-alive"),
        (b"Keep-Alive", b"timeout=75"),
        (b"X-Request-Id", b"the-function's"),
        (b"X-Faasd-Secret", b"x"),
        (b"Proxy-Authenticate", b"x"),
    ]
    head = http.response_head(200, b"OK", node, b"Content-Length: 5\r\n", b"id-1")
    assert _lines(head) == [
        b"HTTP/1.1 200 OK",
        b"content-type: text/plain; charset=utf-8",
        b"Date: Sun, 30 Nov 2026 06:00:00 GMT",
        b"X-Request-Id: id-1",
        b"Content-Length: 5",
        b"",
        b"",
    ]
    # No request id (an async call's 202): the function's X-Request-Id passes; no reason: the standard one.
    head = http.response_head(202, b"", [(b"X-Request-Id", b"call-1")], b"")
    assert _lines(head) == [b"HTTP/1.1 202 Accepted", b"X-Request-Id: call-1", b"", b""]


def test_response_headers_a_connection_header_names_go_too() -> None:
    headers = [(b"X-Before", b"1"), (b"Connection", b"x-before, X-After"), (b"X-Kept", b"2"), (b"X-After", b"3")]
    head = http.response_head(599, b"Custom", headers, b"Transfer-Encoding: chunked\r\n", b"id-1")
    assert _lines(head) == [
        b"HTTP/1.1 599 Custom",
        b"X-Kept: 2",
        b"X-Request-Id: id-1",
        b"Transfer-Encoding: chunked",
        b"",
        b"",
    ]


def test_is_admin_on_bytes_answers_as_validation_on_text() -> None:
    paths = ["/", "//v1", "/v1", "/v1/", "/v1x", "/metrics/x", "/ui", "/async-function/f", "/function/v1", "/é/v1"]
    for path in paths:
        assert is_admin(path.encode("utf-8")) is validation.is_admin_path(path.encode("utf-8").decode("latin-1"))


class _Call:
    def __init__(self) -> None:
        self.armed = 0

    def arm_timeout(self) -> None:
        self.armed += 1


class _Ticks:
    """A loop whose call_later only keeps the callback: the test makes the ticks."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []
        self.cancelled = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Ticks:
        self.pending.append(callback)
        return self

    def cancel(self) -> None:
        self.cancelled += 1

    def tick(self) -> None:
        callback = self.pending.pop(0)
        callback()


def test_time_limits_arm_a_timer_only_for_calls_still_running_after_a_tick() -> None:
    loop = _Ticks()
    limits = TimeLimits(loop, tick=0.05)  # type: ignore[arg-type]
    quick, slow, ended_late = _Call(), _Call(), _Call()
    for call in (quick, slow, ended_late):
        limits.watch(call)  # type: ignore[arg-type]
    assert len(loop.pending) == 1  # one tick for all
    limits.forget(quick)  # type: ignore[arg-type]
    loop.tick()  # the first tick: nobody is armed yet
    assert (quick.armed, slow.armed, ended_late.armed) == (0, 0, 0)
    limits.forget(ended_late)  # type: ignore[arg-type]
    loop.tick()  # the second: what still runs gets its timer, once
    assert (quick.armed, slow.armed, ended_late.armed) == (0, 1, 0)
    assert loop.pending == []  # nothing left to watch: no tick
    later = _Call()
    limits.watch(later)  # type: ignore[arg-type]
    assert len(loop.pending) == 1  # ticking again for new calls
    loop.tick()
    loop.tick()
    assert (slow.armed, later.armed) == (1, 1)
    limits.watch(_Call())  # type: ignore[arg-type]
    limits.close()
    assert loop.cancelled == 1  # no tick left behind


def test_a_memo_reuses_a_head_only_for_the_same_inputs() -> None:
    memo = http.HeadMemo()
    first = [(b"Host", b"faasd.test"), (b"Accept", b"*/*")]
    other = [(b"Host", b"faasd.test"), (b"Accept", b"text/plain")]
    named = [(b"Host", b"faasd.test"), (b"Connection", b"x-a"), (b"X-A", b"1"), (b"Accept", b"*/*")]
    cases = [
        (first, {"request_id": b"id-1"}),
        (first, {"request_id": b"id-2"}),  # the same head but its X-Request-Id
        (other, {"request_id": b"id-3"}),
        (first, {"request_id": b"id-4", "params": b'{"id":"7"}'}),
        (first, {"request_id": b"id-5", "framing": b"Content-Length: 3\r\n"}),
        (named, {"request_id": b"id-6"}),
        (first, {"request_id": b"", "host": None, "append_forwarded_for": False, "params": None}),
        (first, {"request_id": b"id-7"}),
    ]
    for headers, options in cases:
        assert request(list(headers), memo=memo, **options) == request(list(headers), **options), options
    answers = [
        (200, b"OK", [(b"Date", b"Sun, 30 Nov 2026 06:00:00 GMT"), (b"Connection", b"keep-alive")], b"id-1"),
        (200, b"OK", [(b"Date", b"Sun, 30 Nov 2026 06:00:00 GMT"), (b"Connection", b"keep-alive")], b"id-2"),
        (200, b"OK", [(b"Date", b"Sun, 30 Nov 2026 06:00:01 GMT"), (b"Connection", b"keep-alive")], b"id-3"),
        (404, b"Not Found", [(b"Date", b"Sun, 30 Nov 2026 06:00:01 GMT")], b"id-4"),
        (202, b"Accepted", [(b"X-Request-Id", b"call-1")], b""),
        (200, b"OK", [(b"X-A", b"1"), (b"Connection", b"x-a")], b"id-5"),
    ]
    memo = http.HeadMemo()
    for status, reason, headers, request_id in answers:
        framing = b"Content-Length: 5\r\n"
        fresh = http.response_head(status, reason, list(headers), framing, request_id)
        assert http.response_head(status, reason, list(headers), framing, request_id, memo) == fresh
