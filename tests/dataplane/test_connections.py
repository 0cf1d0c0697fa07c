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


async def test_a_request_lost_on_a_reused_connection_is_never_sent_again(make_front: MakeFront) -> None:
    async def handle(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if n >= 2:
            return False  # reads the 2nd request (the function may have run), then closes
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    upstream = await RawUpstream(handle).start()
    try:
        front = await make_front(upstream.url)
        client = await front.client()
        for method in ("POST", "GET"):
            body = b"data" if method == "POST" else b""
            assert (await client.request(method, "/function/fn", body=body)).status == 200, method
            response = await client.request(method, "/function/fn", body=body)
            assert response.status == 502, method
            assert response.json()["error"]["code"] == "upstream_error"
        assert upstream.requests == 4  # each lost request reached the upstream once, and only once
        assert upstream.connections == 2
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


async def test_client_gone_while_waiting_for_a_lease_gives_up_its_place(
    front: Running, upstream: FakeFunctionServer
) -> None:
    front.router.lease_delay = 0.3
    client = await front.client()
    await client.send(b"GET /function/fn/status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    await client.close()
    # The wait is cancelled (its queue position and any scale-up it asked for go with it).
    await wait_until(lambda: front.router.lease_cancelled == 1, "the lease wait to be cancelled")
    await asyncio.sleep(0.4)
    assert front.router.leases == []
    assert upstream.requests == []


async def test_a_request_answered_early_while_waiting_for_a_lease_gives_up_its_place(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, max_body_bytes=10)
    front.router.lease_delay = 0.3
    client = await front.client()
    await client.send(b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    await asyncio.sleep(0.05)
    await client.send(b"20\r\n" + b"x" * 32 + b"\r\n")
    assert (await client.closed()).startswith(b"HTTP/1.1 413 ")
    await wait_until(lambda: front.router.lease_cancelled == 1, "the lease wait to be cancelled")
    assert front.router.leases == []


async def test_reading_resumes_after_a_queue_that_ends_without_an_upstream(front: Running) -> None:
    client = await front.client()
    # The second request waits in the queue (reading pauses) and is answered
    # without an upstream: the connection must read the next request at once.
    await client.send(
        b"GET /function/fn/sleep?s=0.1 HTTP/1.1\r\nHost: x\r\n\r\nGET /function/nope HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert (await client.response()).status == 200
    assert (await client.response()).status == 404
    await client.send(b"GET /function/fn/status/201 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await client.response(timeout=3)).status == 201


async def test_a_body_trickled_after_an_early_answer_is_cut_off(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, head_timeout=0.3)
    client = await front.client()
    await client.send(b"POST /function/ghost HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
    assert (await client.response()).status == 404
    began = time.monotonic()
    assert await client.closed(timeout=5) == b""  # no more bytes for head_timeout: closed
    assert time.monotonic() - began < 3


async def test_a_stalled_request_body_is_cut_off_and_the_lease_released(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, head_timeout=0.3)
    client = await front.client()
    await client.send(b"POST /function/fn/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
    lease = await wait_until(lambda: front.router.leases and front.router.leases[0], "the lease")
    began = time.monotonic()
    raw = await client.closed(timeout=5)
    assert time.monotonic() - began < 3
    assert raw.startswith(b"HTTP/1.1 408 "), raw
    assert b"Connection: close" in raw
    await wait_until(lambda: lease.released == 1, "the lease to be released")
    assert lease.discarded == 0


async def test_a_slow_but_steady_request_body_is_not_cut_off(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, head_timeout=0.3)
    client = await front.client()
    await client.send(b"POST /function/fn/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    for _ in range(10):  # 1 s in all, a byte every 0.1 s
        await asyncio.sleep(0.1)
        await client.send(b"x")
    response = await client.response()
    assert response.json()["size"] == 10


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


async def test_a_body_waiting_its_turn_is_not_cut_off(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, head_timeout=0.3)
    client = await front.client()
    # The second request's body waits (reading paused) behind a slow first call:
    # that time is faasd's, not the client's.
    await client.send(
        b"GET /function/fn/sleep?s=0.8 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"
    )
    assert (await client.response()).status == 200
    await asyncio.sleep(0.1)
    await client.send(b"cd")
    assert (await client.response()).json()["body"] == "abcd"
