"""Caps: client connections beyond max_connections, and calls the pool refuses for a full queue."""

from __future__ import annotations

from faasd.core.errors import Overloaded
from faasd.dataplane.server import ClientConnection
from tests.dataplane.conftest import MakeFront, Running
from tests.dataplane.support import FakeFunctionServer, RawClient, wait_until

LIMIT_MESSAGE = "faasd holds 2 client connections, its limit; retry later"


async def admitted(front: Running, client: RawClient) -> None:
    """``client`` is served (so it holds one of the connections)."""
    assert (await client.request("GET", "/function/fn/status/200")).status == 200


async def test_a_connection_beyond_the_limit_gets_503_at_once_and_is_closed(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, max_connections=2)
    first, second = await front.client(), await front.client()
    await admitted(front, first)
    await admitted(front, second)
    extra = await front.client()
    response = await extra.response()  # without sending anything
    assert response.status == 503
    assert response.json() == {"error": {"code": "overloaded", "message": LIMIT_MESSAGE}}
    assert response.header("Retry-After") == "1"
    assert response.header("Connection") == "close"
    assert response.header("Content-Type") == "application/json; charset=utf-8"
    assert await extra.closed() == b""
    assert front.front.refused == 1
    # The held connections were not disturbed.
    await admitted(front, first)
    await admitted(front, second)
    assert len(upstream.requests) == 4


async def test_a_request_sent_on_a_refused_connection_is_not_served(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, max_connections=1)
    held = await front.client()
    await admitted(front, held)
    extra = await front.client()
    await extra.send(b"POST /function/fn/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    response = await extra.response()
    assert response.status == 503
    assert response.json()["error"]["message"] == "faasd holds 1 client connections, its limit; retry later"
    await extra.closed()
    assert len(upstream.requests) == 1
    assert len(front.router.leases) == 1


async def test_refused_connections_do_not_count_and_a_closed_one_frees_its_place(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    front = await make_front(upstream.url, max_connections=2)
    first, second = await front.client(), await front.client()
    await admitted(front, first)
    await admitted(front, second)
    refused_conns: set[ClientConnection] = set()
    admit = front.front.admit

    def recording_admit(conn: ClientConnection) -> bool:
        if not admit(conn):
            refused_conns.add(conn)
            return False
        return True

    front.front.admit = recording_admit  # type: ignore[method-assign]
    for _ in range(3):
        refused = await front.client()
        assert (await refused.response()).status == 503
        await refused.closed()  # faasd closes them (after lingering); the client keeps its end open
    assert len(refused_conns) == 3
    assert front.front.admitted == 2
    await first.close()
    await wait_until(lambda: front.front.admitted == 1, "the closed connection to be forgotten")
    third = await front.client()
    await admitted(front, third)
    # The refused ones are gone too, with the timers of their close.
    await wait_until(lambda: not refused_conns & front.front.connections, "the refused connections to be closed")
    assert all(conn._close_timer is None and not conn.admitted for conn in refused_conns)
    assert front.front.admitted == 2


async def test_a_call_the_pool_refuses_for_a_full_queue_is_503_with_retry_after(front: Running) -> None:
    front.router.lease_error = Overloaded("faasd holds 5000 calls waiting for an instance, its limit; retry later")
    client = await front.client()
    response = await client.request("GET", "/function/fn/echo")
    assert response.status == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert response.header("Retry-After") == "1"
    # The connection stays usable: only the call was refused.
    front.router.lease_error = None
    assert (await client.request("GET", "/function/fn/status/200")).status == 200
