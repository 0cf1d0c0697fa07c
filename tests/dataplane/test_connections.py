"""Connections: keep-alive on both sides, pipelining, idle and slow clients, upstream closes."""

from __future__ import annotations

import asyncio
import time

from faasd.dataplane.upstream import UpstreamConnection, UpstreamPool
from tests.dataplane.conftest import MakeFront, Running
from tests.dataplane.support import FakeFunctionServer, RawUpstream, wait_until


async def test_keep_alive_reuses_one_upstream_connection(front: Running, upstream: FakeFunctionServer) -> None:
    client = await front.client()
    for _ in range(5):
        assert (await client.request("GET", "/function/fn/status/200")).status == 200
    # Also from a second client: the idle upstream connection is shared.
    other = await front.client()
    assert (await other.request("GET", "/function/fn/status/200")).status == 200
    assert len(upstream.connections) == 1
    assert len(upstream.requests) == 6
    assert [lease.released for lease in front.router.leases] == [1] * 6


async def test_pipelined_requests_are_answered_in_order(front: Running) -> None:
    client = await front.client()
    # The first is the slowest: answers must still come in request order.
    await client.send(
        b"GET /function/fn/sleep?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /function/nope HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /function/fn/status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /function/fn/chunked HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answers = [await client.response() for _ in range(5)]
    assert [a.status for a in answers] == [200, 200, 404, 201, 200]
    assert answers[0].body == b"slept 0.2"
    assert answers[1].json()["body"] == "abc"
    assert answers[4].body == b"one,two,three"


async def test_many_pipelined_requests_in_one_write(front: Running) -> None:
    client = await front.client()
    count = 200
    await client.send(b"GET /function/missing HTTP/1.1\r\nHost: x\r\n\r\n" * count)
    answers = [await client.response() for _ in range(count)]
    assert {a.status for a in answers} == {404}


async def test_an_idle_connection_the_upstream_closed_is_not_reused(make_front: MakeFront) -> None:
    upstream = await FakeFunctionServer(keepalive_timeout=0.2).start()
    try:
        front = await make_front(upstream.url)
        client = await front.client()
        assert (await client.request("GET", "/function/fn/status/200")).status == 200
        assert front.front.upstreams.idle_count() == 1
        # The upstream closes its idle keep-alive connection; faasd notices by itself.
        await wait_until(lambda: front.front.upstreams.idle_count() == 0, "the closed connection to leave the pool")
        assert (await client.request("GET", "/function/fn/status/200")).status == 200
        assert len(upstream.connections) == 2
        assert all(lease.discarded == 0 for lease in front.router.leases)
    finally:
        await upstream.stop()


async def test_a_request_lost_on_a_reused_connection_is_sent_once_more(make_front: MakeFront) -> None:
    async def handle(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if n >= 2:
            return False  # closes the kept-alive connection as the 2nd request arrives (the race)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    upstream = await RawUpstream(handle).start()
    try:
        front = await make_front(upstream.url)
        client = await front.client()
        assert (await client.request("POST", "/function/fn", body=b"first")).status == 200
        response = await client.request("POST", "/function/fn", body=b"second")
        assert response.status == 200
        assert upstream.connections == 2
        assert upstream.requests == 3  # first, second (lost), second again
        assert front.router.last.discarded == 0
    finally:
        await upstream.stop()


async def test_no_retry_on_a_fresh_connection(make_front: MakeFront) -> None:
    async def handle(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False  # every connection closes on its first request

    upstream = await RawUpstream(handle).start()
    try:
        front = await make_front(upstream.url)
        client = await front.client()
        response = await client.request("GET", "/function/fn")
        assert response.status == 502
        assert response.json()["error"]["code"] == "upstream_error"
        assert upstream.requests == 1
        assert front.router.last.discarded == 1
        assert front.router.last.released == 1
    finally:
        await upstream.stop()


async def test_a_slow_request_head_is_cut_off(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, head_timeout=0.3)
    client = await front.client()
    began = time.monotonic()
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\nHost: x\r\n")  # never finished
    await client.closed(timeout=10)
    assert 0.25 <= time.monotonic() - began < 5
    assert upstream.requests == []


async def test_a_trickled_head_is_cut_off_too(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, head_timeout=0.3)
    client = await front.client()
    began = time.monotonic()
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\n")
    try:
        for _ in range(100):
            await client.send(b"X: y\r\n")  # a byte now and then does not extend the deadline
            await asyncio.sleep(0.05)
    except ConnectionError:
        pass
    await client.closed(timeout=10)
    assert time.monotonic() - began < 3


async def test_an_idle_keep_alive_connection_is_closed(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, keepalive_timeout=0.3, head_timeout=0.1)
    client = await front.client()
    assert (await client.request("GET", "/function/fn/status/200")).status == 200
    began = time.monotonic()
    assert await client.closed(timeout=10) == b""
    assert 0.25 <= time.monotonic() - began < 5


async def test_a_busy_connection_is_not_cut_by_the_head_timeout(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, head_timeout=0.1)
    client = await front.client()
    response = await client.request("GET", "/function/fn/sleep?s=0.5")
    assert response.body == b"slept 0.5"


async def test_client_gone_mid_call_releases_the_lease_and_drops_the_upstream(
    front: Running, upstream: FakeFunctionServer
) -> None:
    client = await front.client()
    await client.send(b"GET /function/fn/sleep?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    lease = await wait_until(lambda: front.router.leases and front.router.leases[0], "the lease")
    await wait_until(lambda: upstream.requests, "the call to reach the function")
    await client.close()
    await wait_until(lambda: lease.released == 1, "the lease to be released")
    # The half-used upstream connection is closed, not pooled: the function sees the client leave.
    await wait_until(lambda: upstream.disconnected == 1, "the upstream connection to be closed")
    assert front.front.upstreams.idle_count() == 0
    assert lease.discarded == 0


async def test_client_gone_while_waiting_for_a_lease_releases_it_when_it_comes(
    front: Running, upstream: FakeFunctionServer
) -> None:
    front.router.lease_delay = 0.3
    client = await front.client()
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    await client.close()
    lease = await wait_until(lambda: front.router.leases and front.router.leases[0], "the lease")
    await wait_until(lambda: lease.released == 1, "the late lease to be released")
    assert upstream.requests == []


async def test_drain_closes_idle_connections_and_finishes_calls(front: Running, upstream: FakeFunctionServer) -> None:
    idle = await front.client()
    assert (await idle.request("GET", "/function/fn/status/200")).status == 200
    busy = await front.client()
    await busy.send(b"GET /function/fn/sleep?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
    await wait_until(lambda: len(upstream.requests) == 2, "the slow call to start")
    drained = asyncio.create_task(front.front.drain(10))
    assert await idle.closed() == b""
    response = await busy.response()
    assert response.body == b"slept 0.3"
    assert response.header("Connection") == "close"
    await asyncio.wait_for(drained, 10)
    assert front.router.outstanding() == 0


async def test_a_connection_paused_for_a_slow_client_reads_again_once_pooled(upstream: FakeFunctionServer) -> None:
    pool = UpstreamPool()
    got: asyncio.Future[UpstreamConnection] = asyncio.get_running_loop().create_future()
    pool.acquire(upstream.url, lambda conn, exc: got.set_result(conn) if conn else got.set_exception(exc or OSError()))
    conn = await asyncio.wait_for(got, 10)
    assert conn.transport is not None
    conn.pause_reading()
    assert not conn.transport.is_reading()
    pool.release(conn)
    assert conn.transport.is_reading()
    assert pool.idle_count(upstream.url) == 1
    pool.close()
