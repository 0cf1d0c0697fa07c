"""Large bodies stream through both ways with faasd's own buffers staying small.

The kernel's socket buffers hold several MiB on loopback, so the bodies are
made larger than they (12 MiB) and faasd's user-space buffers are sampled
while they flow: without backpressure most of a body would pile up there.
"""

from __future__ import annotations

import asyncio
import hashlib

from tests.dataplane.conftest import MakeFront, Running
from tests.dataplane.support import FakeFunctionServer, wait_until

MiB = 1024 * 1024
SIZE = 12 * MiB
BOUND = 1 * MiB


class Sampler:
    """The largest figure of faasd's buffered bytes, sampled every millisecond."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.running.buffered())
            await asyncio.sleep(0.001)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_large_upload_to_a_slow_function(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, max_body_bytes=16 * MiB)
    client = await front.client()
    body = bytes(range(256)) * (SIZE // 256)
    with Sampler(front) as sampler:
        await client.send(b"POST /function/fn/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % SIZE)
        for start in range(0, SIZE, MiB):
            await client.send(body[start : start + MiB])
        response = await client.response(timeout=60)
    assert response.json() == {"size": SIZE, "sha256": hashlib.sha256(body).hexdigest()}
    assert sampler.peak < BOUND, f"faasd buffered up to {sampler.peak} bytes"
    assert front.router.last.released == 1


async def test_a_large_chunked_upload(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    front = await make_front(upstream.url, max_body_bytes=16 * MiB)
    client = await front.client()
    piece = b"z" * 65536
    with Sampler(front) as sampler:
        await client.send(b"POST /function/fn/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(SIZE // len(piece)):
            await client.send(b"10000\r\n" + piece + b"\r\n")
        await client.send(b"0\r\n\r\n")
        response = await client.response(timeout=60)
    assert response.json()["size"] == SIZE
    assert sampler.peak < BOUND, f"faasd buffered up to {sampler.peak} bytes"


async def test_a_large_download_to_a_slow_client(front: Running, upstream: FakeFunctionServer) -> None:
    for chunked in ("0", "1"):
        client = await front.client(rcvbuf=65536)
        await client.send(f"GET /function/fn/big?n={SIZE}&chunked={chunked} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        with Sampler(front) as sampler:
            received = 0
            async with asyncio.timeout(60):
                head = await client.reader.readuntil(b"\r\n\r\n")
                while received < SIZE:
                    data = await client.reader.read(65536)
                    assert data, "closed early"
                    received += len(data)
                    await asyncio.sleep(0.0005)  # a slow reader
        assert b"200 OK" in head
        assert received >= SIZE
        assert sampler.peak < BOUND, f"faasd buffered up to {sampler.peak} bytes (chunked={chunked})"
        await client.close()
    await wait_until(lambda: front.router.outstanding() == 0, "both leases to be released")
    # The upstream connection, paused for the slow reader, goes back to the pool working.
    connections = len(upstream.connections)
    client = await front.client()
    assert (await client.request("GET", "/function/fn/status/200")).status == 200
    assert len(upstream.connections) == connections
