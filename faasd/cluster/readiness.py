"""``GET /readyz``: whether this node should get calls from a load balancer.

Ready when the registry answers (one cheap read within a second), the container engine answers (its
``/_ping`` within a second), and every stock environment's pool has been full once since the start
(its warm containers wait for the first calls). Once the pools were full they do not count any more: a
pool drained by a burst refills, and the node serves meanwhile. With a change follower (every node has
one), it must not have been failing for more than :data:`FOLLOWER_GRACE` seconds: a node that no longer
applies the other nodes' changes serves an old registry. ``/healthz`` stays "the process is alive".
Answers 200 ``{"status": "ready", ...}`` or 503 with each check that failed and why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from faasd.cluster.availability import ping
from faasd.cluster.changes import Follower
from faasd.core.errors import FaasdError
from faasd.pool.manager import PoolManager

CHECK_TIMEOUT = 1.0
POOLS_EVERY = 0.25
FOLLOWER_GRACE = 30.0  # seconds the change follower may fail (a database restart) before the node is not ready

EnginePing = Callable[[], Awaitable[None]]


class Readiness:
    def __init__(
        self,
        engine: AsyncEngine,
        engine_ping: EnginePing | None,
        pool: PoolManager,
        stock: Iterable[str],
        timeout: float = CHECK_TIMEOUT,
        *,
        follower: Follower | None = None,
    ) -> None:
        """``engine_ping``: raises when the container engine does not answer (None: no engine to ask);
        ``follower``: the node's change follower (None: not checked)."""
        self._engine = engine
        self._follower = follower
        self._engine_ping = engine_ping
        self._pool = pool
        self._stock = tuple(stock)
        self._timeout = timeout
        self.pools_filled = False
        self._watch: asyncio.Task[None] | None = None

    def start(self, every: float = POOLS_EVERY) -> asyncio.Task[None]:
        """Look at the stock pools every ``every`` seconds until they were full once (then the task ends):
        a pool full for a moment between two ``/readyz`` calls counts."""

        async def watch() -> None:
            while True:
                if not self._pools():
                    return
                await asyncio.sleep(every)

        self._watch = asyncio.get_running_loop().create_task(watch(), name="readiness-pools")
        return self._watch

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

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

    def _changes(self) -> str:
        assert self._follower is not None
        failing = self._follower.failing_for()
        if failing <= FOLLOWER_GRACE:
            return ""
        return f"the other nodes' changes have not been applied for {failing:.0f} s ({self._follower.error})"

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the JSON body)."""
        registry, engine = await asyncio.gather(self._registry(), self._container_engine())
        checks = {"registry": registry, "engine": engine, "pools": self._pools()}
        if self._follower is not None:
            checks["changes"] = self._changes()
        failing = {name: reason for name, reason in checks.items() if reason}
        if failing:
            return False, {"status": "not_ready", "failing": failing}
        return True, {"status": "ready", "checks": {name: "ok" for name in checks}}
