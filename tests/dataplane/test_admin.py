"""/v1, /healthz and /metrics go to the aiohttp admin app over its unix socket."""

from __future__ import annotations

import asyncio

from faasd.core import validation
from faasd.dataplane.exchange import is_admin
from tests.dataplane.conftest import Running
from tests.dataplane.support import FakeFunctionServer


async def test_healthz_reaches_the_admin_app_with_the_client_address(front: Running) -> None:
    client = await front.client()
    response = await client.request("GET", "/healthz", headers={"X-Forwarded-For": "6.6.6.6"})
    assert response.status == 200
    doc = response.json()
    assert doc["status"] == "ok"
    # Replaced, not appended: the admin app trusts this header as the peer.
    assert doc["forwarded_for"] == "127.0.0.1"
    assert front.router.leases == []


async def test_v1_paths_with_bodies_and_queries_reach_the_admin_app(
    front: Running, upstream: FakeFunctionServer
) -> None:
    client = await front.client()
    response = await client.request("PUT", "/v1/things?x=1", body=b"abc")
    assert response.status == 201
    assert response.json() == {"method": "PUT", "path": "/v1/things?x=1", "body": 3}
    unknown = await client.request("GET", "/v1/nothing-here")
    assert unknown.status == 404  # the admin app's answer, not a function lookup
    assert upstream.requests == []
    assert front.router.leases == []


async def test_a_streamed_admin_answer_arrives_as_it_is_written(front: Running) -> None:
    client = await front.client()
    await client.send(b"GET /v1/follow HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
    assert b"Transfer-Encoding: chunked" in head
    first = await asyncio.wait_for(client.reader.readuntil(b"line 0\n\r\n"), 10)
    assert first.endswith(b"line 0\n\r\n")


async def test_similar_paths_are_not_admin(front: Running, upstream: FakeFunctionServer) -> None:
    client = await front.client()
    assert (await client.request("GET", "/v1x")).status == 404
    assert (await client.request("GET", "/healthzz")).status == 404
    assert front.router.leases == []


async def test_admin_and_function_calls_interleave_on_one_connection(front: Running) -> None:
    client = await front.client()
    await client.send(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /function/fn/status/202 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    statuses = [(await client.response()).status for _ in range(3)]
    assert statuses == [200, 202, 200]


async def test_stopping_ends_an_open_admin_stream_cleanly(front: Running) -> None:
    client = await front.client()
    await client.send(b"GET /v1/forever HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(client.reader.readuntil(b"first\n\r\n"), 10)
    began = asyncio.get_running_loop().time()
    await asyncio.wait_for(front.front.drain(30), 10)
    assert asyncio.get_running_loop().time() - began < 5  # not the whole grace
    rest = await client.closed()
    assert rest == b"0\r\n\r\n"  # the last chunk: a clean end of the stream


def test_the_admin_paths_are_validations_reserved_ones_less_function() -> None:
    for prefix in validation.RESERVED_PREFIXES:
        admin = prefix not in validation.DIRECT_ROOTS  # /function and /fission-function: the data plane's
        for path in (prefix, prefix + "/x/y"):
            assert is_admin(path.encode()) is admin, path
            assert validation.is_admin_path(path) is admin, path
    for path in ("/", "/v1x", "/healthzz", "/functions", "/hello"):
        assert not is_admin(path.encode()), path
