"""Strict parsing and limits: no smuggling, bounded heads and bodies."""

from __future__ import annotations

import pytest

from tests.dataplane.conftest import MakeFront, Running
from tests.dataplane.support import FakeFunctionServer

SMUGGLING = {
    "content-length and chunked": (
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /function/fn/status/418 HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "chunked and content-length": (
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"0\r\n\r\nGET /function/fn/status/418 HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "conflicting content-lengths": (
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
        b"GET /function/fn/status/418 HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "a list in content-length": (b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"),
    "an invalid chunk size": (
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
    "a chunk size with a sign": (
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"
    ),
    "chunked not last": (
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ),
    "a space before the colon": b"GET /function/fn/status/200 HTTP/1.1\r\nHost : x\r\n\r\n",
    "bare LF line ends": b"GET /function/fn/status/200 HTTP/1.1\nHost: x\n\n",
    "a NUL in a header": b"GET /function/fn/status/200 HTTP/1.1\r\nX: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("attempt", SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_ambiguous_or_malformed_requests_are_400_and_close(
    front: Running, upstream: FakeFunctionServer, attempt: bytes
) -> None:
    client = await front.client()
    await client.send(attempt)
    raw = await client.closed()
    assert raw.startswith(b"HTTP/1.1 400 ") or raw.startswith(b"HTTP/1.1 501 "), raw
    assert raw.count(b"HTTP/1.1") == 1
    assert b"Connection: close" in raw
    assert not any("418" in r["path"] for r in upstream.requests)
    assert front.router.outstanding() == 0


async def test_a_good_request_before_a_bad_one_is_still_answered(front: Running) -> None:
    client = await front.client()
    await client.send(
        b"GET /function/fn/status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /function/fn/echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    )
    first = await client.response()
    assert first.status == 201
    second = await client.response()
    assert second.status == 400
    assert second.json()["error"]["code"] == "bad_request"
    assert await client.closed() == b""


async def test_an_oversized_head_is_431(front: Running, upstream: FakeFunctionServer) -> None:
    client = await front.client()
    big = b"X-Big: " + b"a" * 70_000 + b"\r\n"
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    raw = await client.closed()
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert upstream.requests == []


async def test_many_small_headers_over_the_limit_are_431(front: Running) -> None:
    client = await front.client()
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(1000))
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\n" + headers + b"\r\n")
    assert (await client.closed()).startswith(b"HTTP/1.1 431 ")


async def test_a_head_under_the_limit_passes(front: Running) -> None:
    client = await front.client()
    # 30 KB in all (the fake upstream takes at most 8 KB per header line)
    headers = {f"X-Big-{i}": "a" * 6000 for i in range(5)}
    response = await client.request("GET", "/function/fn/echo", headers=headers)
    assert response.status == 200
    assert sum(len(v) for k, v in response.json()["headers"] if k.startswith("X-Big")) == 30_000


async def test_a_declared_body_over_the_limit_is_413_before_it_is_read(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, max_body_bytes=1000)
    client = await front.client()
    await client.send(b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
    raw = await client.closed()
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert b'"code": "payload_too_large"' in raw
    assert b"Connection: close" in raw
    assert upstream.requests == []
    assert front.router.leases == []


async def test_a_chunked_body_over_the_limit_is_413(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, max_body_bytes=1000)
    client = await front.client()
    await client.send(b"POST /function/fn/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        await client.send(b"200\r\n" + b"x" * 512 + b"\r\n")
    raw = await client.closed()
    assert raw.startswith(b"HTTP/1.1 413 ")
    lease = front.router.last
    assert (lease.released, lease.discarded) == (1, 0)


async def test_a_body_at_the_limit_passes(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, max_body_bytes=1000)
    client = await front.client()
    response = await client.request("POST", "/function/fn/echo", body=b"y" * 1000)
    assert len(response.json()["body"]) == 1000


async def test_admin_bodies_are_not_bound_by_the_function_limit(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, max_body_bytes=10)
    client = await front.client()
    response = await client.request("POST", "/v1/things", body=b"z" * 500)
    assert response.status == 201
    assert response.json()["body"] == 500
    # The admin app's own limit (client_max_size=1024 here) still applies.
    response = await client.request("POST", "/v1/things", body=b"z" * 5000)
    assert response.status == 413


async def test_connect_and_odd_targets_are_refused(front: Running) -> None:
    client = await front.client()
    await client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert (await client.closed()).startswith(b"HTTP/1.1 4")
    client = await front.client()
    await client.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await client.closed()).startswith(b"HTTP/1.1 400 ")


async def test_an_upgrade_request_is_answered_without_switching(front: Running, upstream: FakeFunctionServer) -> None:
    client = await front.client()
    await client.send(b"GET /function/fn/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    response = await client.response()
    assert response.status == 200
    sent = {k.lower() for k, _ in response.json()["headers"]}
    assert "upgrade" not in sent
    assert "connection" not in sent


UPGRADE_WITH_BODY = {
    "content-length": b"Content-Length: 3\r\n\r\nabc",
    "chunked": b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", UPGRADE_WITH_BODY.values(), ids=UPGRADE_WITH_BODY.keys())
async def test_an_upgrade_request_with_a_body_is_400_and_close(
    front: Running, upstream: FakeFunctionServer, body: bytes
) -> None:
    client = await front.client()
    await client.send(b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" + body)
    raw = await client.closed(timeout=5)
    assert raw.startswith(b"HTTP/1.1 400 "), raw
    assert b"Connection: close" in raw
    assert upstream.requests == []
    assert front.router.leases == []


async def test_an_upgrade_header_without_connection_upgrade_is_a_plain_header(
    front: Running, upstream: FakeFunctionServer
) -> None:
    client = await front.client()
    response = await client.request("POST", "/function/fn/echo", headers={"Upgrade": "h2c"}, body=b"abc")
    assert response.json()["body"] == "abc"
    assert (await client.request("GET", "/function/fn/status/201")).status == 201
