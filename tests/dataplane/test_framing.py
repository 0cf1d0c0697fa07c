"""Message framing through the front: Content-Length, chunked both ways, HEAD, 204/304, HTTP/1.0."""

from __future__ import annotations

import asyncio

from tests.dataplane.conftest import Running
from tests.dataplane.support import FakeFunctionServer


async def test_content_length_body_reaches_the_function_and_back(front: Running) -> None:
    client = await front.client()
    response = await client.request("POST", "/function/fn/echo?x=1", body=b"\x00binary\xff")
    assert response.status == 200
    doc = response.json()
    assert doc["method"] == "POST"
    assert doc["target"] == "/function/fn/echo?x=1"  # the target goes through unchanged
    assert doc["body"] == "\x00binary\xff"
    assert ["Content-Length", "8"] in doc["headers"]
    assert response.header("Content-Length") == str(len(response.body))


async def test_chunked_request_is_forwarded_chunked(front: Running) -> None:
    client = await front.client()
    await client.send(
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    response = await client.response()
    doc = response.json()
    assert doc["body"] == "hello world"
    headers = {k.lower(): v for k, v in doc["headers"]}
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers


async def test_chunked_response_is_relayed_chunked_to_http11(front: Running) -> None:
    client = await front.client()
    response = await client.request("GET", "/function/fn/chunked")
    assert response.status == 200
    assert response.chunked
    assert response.body == b"one,two,three"
    # The connection stays usable after a chunked answer.
    assert (await client.request("GET", "/function/fn/chunked")).body == b"one,two,three"


async def test_chunked_response_to_http10_is_close_delimited(front: Running) -> None:
    client = await front.client()
    await client.send(b"GET /function/fn/chunked HTTP/1.0\r\n\r\n")
    raw = await client.closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"one,two,three"


async def test_the_http_version_decides_the_framing_with_or_without_a_connection_header(front: Running) -> None:
    # HTTP/1.1 with a Connection header naming no close: kept alive, chunked as without one.
    client = await front.client()
    for connection in (b"", b"Connection: keep-alive\r\n", b"Connection: x-hop\r\nX-Hop: 1\r\n"):
        await client.send(b"GET /function/fn/chunked HTTP/1.1\r\nHost: x\r\n" + connection + b"\r\n")
        response = await client.response()
        assert response.chunked, connection
        assert response.header("Connection") is None, connection
    # HTTP/2.0 in a request line (llhttp takes it) is not HTTP/1.1: close-delimited, as HTTP/1.0.
    client = await front.client()
    await client.send(b"GET /function/fn/chunked HTTP/2.0\r\nHost: x\r\n\r\n")
    raw = await client.closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"one,two,three"


async def test_http10_keep_alive_is_honoured_with_a_length(front: Running) -> None:
    client = await front.client()
    for _ in range(2):
        await client.send(b"GET /function/fn/status/200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = await client.response()
        assert response.status == 200
        assert response.header("Connection") == "keep-alive"


async def test_connection_close_is_honoured(front: Running) -> None:
    client = await front.client()
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = await client.closed()
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"\r\nConnection: close\r\n" in raw


async def test_head_has_no_body_but_keeps_the_length(front: Running) -> None:
    client = await front.client()
    await client.send(b"HEAD /function/fn/big?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = b""
    async with asyncio.timeout(10):
        while raw.count(b"HTTP/1.1 ") < 2 or not raw.endswith(b"\r\n\r\n"):
            raw += await client.reader.read(65536)
    first, _, second = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: 1000" in first
    assert second.startswith(b"HTTP/1.1 200")  # no body bytes in between


async def test_204_and_304_have_no_body(front: Running, upstream: FakeFunctionServer) -> None:
    client = await front.client()
    for status in (204, 304):
        response = await client.request("GET", f"/function/fn/status/{status}")
        assert response.status == status
        assert response.body == b""
        assert response.header("X-Status") == "yes"
    # and the connection is still in step
    assert (await client.request("GET", "/function/fn/status/200")).status == 200


async def test_expect_100_continue_gets_a_continue_then_the_answer(front: Running) -> None:
    client = await front.client()
    await client.send(
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    await client.send(b"hello")
    response = await client.response()
    assert response.json()["body"] == "hello"
    assert not any(k.lower() == "expect" for k, _ in response.json()["headers"])
