from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from faasd.dataplane import Front, FrontConfig
from tests.dataplane.support import FakeFunctionServer, FakeRouter, RawClient, admin_app


@dataclass
class Running:
    """A front listening on a loopback port, with its fake control plane."""

    front: Front
    port: int
    router: FakeRouter
    clients: list[RawClient] = field(default_factory=list)

    async def client(self, rcvbuf: int | None = None) -> RawClient:
        client = await RawClient.connect(self.port, rcvbuf)
        self.clients.append(client)
        return client

    def buffered(self) -> int:
        return self.front.buffered_bytes()


MakeFront = Callable[..., Awaitable[Running]]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeFunctionServer]:
    server = await FakeFunctionServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def make_front() -> AsyncIterator[MakeFront]:
    """Factory: a front (and its admin app) on fresh sockets; all closed at the end."""
    made: list[tuple[Running, asyncio.Server, web.AppRunner, str]] = []

    async def make(upstream_url: str, *, calls: Any = None, access_log: Any = None, **config: Any) -> Running:
        socket_dir = tempfile.mkdtemp(prefix="faasd-test-")
        socket_path = str(Path(socket_dir) / "admin.sock")
        runner = web.AppRunner(admin_app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.UnixSite(runner, socket_path).start()
        router = FakeRouter(upstream_url)
        router.add("fn")
        front = Front(router, FrontConfig(admin_socket=socket_path, **config), calls=calls, access_log=access_log)
        server = await asyncio.get_running_loop().create_server(front, "127.0.0.1", 0)
        running = Running(front, server.sockets[0].getsockname()[1], router)
        made.append((running, server, runner, socket_dir))
        return running

    yield make
    for running, server, runner, socket_dir in made:
        for client in running.clients:
            await client.close()
        server.close()
        await running.front.drain(1.0)
        await runner.cleanup()
        shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture
async def front(make_front: MakeFront, upstream: FakeFunctionServer) -> Running:
    return await make_front(upstream.url)
