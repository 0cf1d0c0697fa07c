"""Errors: JSON answers with faasd's codes; leases released once, discarded when the instance is bad."""

from __future__ import annotations

import asyncio

from faasd.core.errors import EngineUnavailable, FaasdError, MethodNotAllowed
from faasd.dataplane.routing import RouteTable
from tests.dataplane.conftest import MakeFront, Running
from tests.dataplane.support import FakeFunctionServer, RawUpstream, wait_until


async def test_success_releases_the_lease_once(front: Running) -> None:
    client = await front.client()
    assert (await client.request("GET", "/function/fn/status/200")).status == 200
    lease = front.router.last
    assert (lease.released, lease.discarded) == (1, 0)


async def test_a_lease_that_has_to_wait_still_serves_the_call(front: Running) -> None:
    front.router.lease_delay = 0.05  # e.g. a specialization on the first call
    client = await front.client()
    await client.send(b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
    response = await client.response()
    assert response.json()["body"] == "body"
    lease = front.router.last
    assert (lease.released, lease.discarded) == (1, 0)


async def test_unknown_function_is_404_json_and_the_connection_lives(front: Running) -> None:
    client = await front.client()
    response = await client.request("GET", "/function/ghost")
    assert response.status == 404
    assert response.json() == {"error": {"code": "not_found", "message": "function 'ghost' not found"}}
    assert response.header("Content-Type") == "application/json; charset=utf-8"
    assert (await client.request("GET", "/function/fn/status/200")).status == 200


async def test_wrong_method_on_a_route_is_405_with_allow(front: Running) -> None:
    front.router.routes = RouteTable([("GET", "/hello", "fn"), ("PUT", "/hello", "fn")])
    client = await front.client()
    response = await client.request("POST", "/hello", body=b"x")
    assert response.status == 405
    assert response.header("Allow") == "GET, PUT"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert isinstance(MethodNotAllowed("m", ["GET"]), FaasdError)


async def test_a_routed_request_reaches_its_function(front: Running, upstream: FakeFunctionServer) -> None:
    front.router.routes = RouteTable([("GET", "/echo/{id}", "fn")])
    client = await front.client()
    response = await client.request("GET", "/echo/42")
    assert response.status == 200
    headers = dict(response.json()["headers"])
    assert headers["X-Faasd-Params"] == '{"id":"42"}'


async def test_lease_errors_keep_their_status_code_and_headers(front: Running) -> None:
    class TooMany(FaasdError):
        status = 429
        code = "too_many_requests"

    error = TooMany("function 'fn' is at its limit")
    error.headers = {"Retry-After": "3"}  # type: ignore[attr-defined]
    front.router.lease_error = error
    client = await front.client()
    response = await client.request("GET", "/function/fn")
    assert response.status == 429
    assert response.header("Retry-After") == "3"
    assert response.json()["error"] == {"code": "too_many_requests", "message": "function 'fn' is at its limit"}
    front.router.lease_error = EngineUnavailable("the engine is down")
    response = await client.request("GET", "/function/fn")
    assert (response.status, response.json()["error"]["code"]) == (503, "engine_unavailable")


async def test_upstream_dying_mid_request_is_502_and_the_lease_discarded(front: Running) -> None:
    client = await front.client()
    response = await client.request("POST", "/function/fn/die", body=b"payload")
    assert response.status == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert "the instance died" in response.json()["error"]["message"]  # the pool's explanation
    lease = front.router.last
    assert (lease.released, lease.discarded) == (1, 1)
    # The client connection is still good.
    assert (await client.request("GET", "/function/fn/status/200")).status == 200


async def test_connection_refused_is_502(make_front: MakeFront) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    front = await make_front(f"http://127.0.0.1:{port}")
    client = await front.client()
    response = await client.request("GET", "/function/fn")
    assert response.status == 502
    assert (front.router.last.released, front.router.last.discarded) == (1, 1)


async def test_upstream_dying_after_the_head_cuts_the_client(make_front: MakeFront) -> None:
    async def handle(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        return False

    upstream = await RawUpstream(handle).start()
    try:
        front = await make_front(upstream.url)
        client = await front.client()
        await client.send(b"GET /function/fn HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await client.closed()
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert raw.endswith(b"partial")  # cut short: the client sees the length was not met
        lease = front.router.last
        assert (lease.released, lease.discarded) == (1, 1)
    finally:
        await upstream.stop()


async def test_timeout_is_504_and_the_lease_discarded(front: Running, upstream: FakeFunctionServer) -> None:
    front.router.add("fn", timeout=0.3)
    client = await front.client()
    response = await client.request("GET", "/function/fn/sleep?s=5")
    assert response.status == 504
    assert response.json()["error"] == {
        "code": "timeout",
        "message": "function 'fn' did not answer within its timeout of 0.3 s",
    }
    lease = front.router.last
    assert (lease.released, lease.discarded) == (1, 1)
    await wait_until(lambda: upstream.disconnected == 1, "the stuck upstream connection to be closed")
    assert front.front.upstreams.idle_count() == 0


async def test_timeout_while_streaming_cuts_the_client(make_front: MakeFront) -> None:
    async def handle(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(30)
        return False

    upstream = await RawUpstream(handle).start()
    try:
        front = await make_front(upstream.url)
        front.router.add("fn", timeout=0.3)
        client = await front.client()
        await client.send(b"GET /function/fn HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await client.closed()
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert not raw.endswith(b"0\r\n\r\n")  # no last chunk: the client knows it is cut
        lease = front.router.last
        assert (lease.released, lease.discarded) == (1, 1)
    finally:
        await upstream.stop()


async def test_head_of_an_error_has_no_body(front: Running) -> None:
    client = await front.client()
    await client.send(b"HEAD /function/ghost HTTP/1.1\r\nHost: x\r\n\r\nGET /function/fn/status/200 HTTP/1.1\r\n\r\n")
    raw = b""
    async with asyncio.timeout(10):
        while raw.count(b"HTTP/1.1 ") < 2 or not raw.endswith(b"\r\n\r\n"):
            raw += await client.reader.read(65536)
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 404 ")
    assert rest.startswith(b"HTTP/1.1 200 ")


async def test_a_failed_instance_is_out_of_service_before_its_lease_is_released(front: Running) -> None:
    front.router.failure_delay = 0.3  # the pool takes a while to look into the instance
    client = await front.client()
    await client.send(b"GET /function/fn/die HTTP/1.1\r\nHost: x\r\n\r\n")
    lease = await wait_until(lambda: front.router.leases and front.router.leases[0], "the lease")
    await asyncio.sleep(0.1)
    await client.close()  # the client leaves while the pool is still looking
    await wait_until(lambda: lease.released == 1, "the lease to be released")
    assert lease.events == ["discard", "release"]
