"""``GET /readyz``: whether this node should get calls from a load balancer.

Ready when the registry answers (one cheap read within a second), the container engine answers (its
``/_ping`` within a second), and every stock environment's pool has been full once since the start
(its warm containers wait for the first calls). Once the pools were full they do not count any more: a
pool drained by a burst refills, and the node serves meanwhile. ``/healthz`` stays "the process is
alive". Answers 200 ``{"status": "ready", ...}`` or 503 with each check that failed and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from faasd.cluster.availability import ping
from faasd.core.errors import FaasdError
from faasd.pool.manager import PoolManager

CHECK_TIMEOUT = 1.0

EnginePing = Callable[[], Awaitable[None]]


class Readiness:
    def __init__(
        self,
        engine: AsyncEngine,
        engine_ping: EnginePing | None,
        pool: PoolManager,
        stock: Iterable[str],
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        """``engine_ping``: raises when the container engine does not answer (None: no engine to ask)."""
        self._engine = engine
        self._engine_ping = engine_ping
        self._pool = pool
        self._stock = tuple(stock)
        self._timeout = timeout
        self.pools_filled = False

    async def _registry(self) -> str:
        try:
            await ping(self._engine, self._timeout)
        except FaasdError as exc:
            return exc.message
        return ""

    async def _container_engine(self) -> str:
        if self._engine_ping is None:
            return ""
        try:
            async with asyncio.timeout(self._timeout):
                await self._engine_ping()
        except TimeoutError:
            return f"the container engine did not answer within {self._timeout:g} s"
        except Exception as exc:
            return f"the container engine does not answer: {exc}"
        return ""

    def _pools(self) -> str:
        if self.pools_filled:
            return ""
        sizes = self._pool.pool_sizes()
        short = [
            f"{name} {ready}/{size}"
            for name in self._stock
            if name in sizes
            for size, ready, _starting in [sizes[name]]
            if ready < size
        ]
        if short:
            return "stock pools not filled yet: " + ", ".join(short)
        self.pools_filled = True
        return ""

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the JSON body)."""
        registry, engine = await asyncio.gather(self._registry(), self._container_engine())
        checks = {"registry": registry, "engine": engine, "pools": self._pools()}
        failing = {name: reason for name, reason in checks.items() if reason}
        if failing:
            return False, {"status": "not_ready", "failing": failing}
        return True, {"status": "ready", "checks": {name: "ok" for name in checks}}
