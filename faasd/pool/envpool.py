"""Generic containers per environment, started ahead of the calls that need them.

Each environment keeps ``poolsize`` containers started and answering their
health check. Taking one schedules a refill; container starts across all
environments are bounded by one semaphore so that a burst does not thrash the
engine (about 5-7 starts per second on 2 cores).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

from faasd.core.entities import Environment
from faasd.core.errors import NotFound, ShuttingDown
from faasd.pool.backend import Container, ContainerBackend
from faasd.pool.background import Background

log = logging.getLogger(__name__)

MAX_FILL_BACKOFF = 5.0


@dataclass(eq=False)
class _Pool:
    env: Environment
    ready: deque[Container] = field(default_factory=deque)
    starting: int = 0
    # Bumped when the image changes or the environment goes: containers of an
    # older generation are dropped when their start completes.
    generation: int = 0
    filling: asyncio.Task[None] | None = None
    last_error: str | None = None


class EnvironmentPools:
    def __init__(self, backend: ContainerBackend, background: Background, start_concurrency: int) -> None:
        self._backend = backend
        self._background = background
        self._starts = asyncio.Semaphore(start_concurrency)
        self._pools: dict[str, _Pool] = {}
        self.closing = False
        # Container starts per environment since faasd started: (started, failed), for the metrics.
        self.starts: dict[str, list[int]] = {}

    # -- configuration --------------------------------------------------------

    def set_environment(self, env: Environment) -> None:
        """Create the pool of a new environment, or apply a changed size or image."""
        pool = self._pools.get(env.name)
        if pool is None:
            pool = self._pools[env.name] = _Pool(env)
        elif pool.env.image != env.image:
            pool.generation += 1
            self._drain(pool, len(pool.ready))
        pool.env = env
        surplus = len(pool.ready) - env.poolsize
        if surplus > 0:
            self._drain(pool, surplus)
        self.schedule_fill(pool)

    def remove_environment(self, name: str) -> None:
        pool = self._pools.pop(name, None)
        if pool is not None:
            pool.generation += 1
            self._drain(pool, len(pool.ready))

    def environment(self, name: str) -> Environment:
        pool = self._pools.get(name)
        if pool is None:
            raise NotFound(f"environment '{name}' does not exist")
        return pool.env

    # -- containers -------------------------------------------------------------

    async def take(self, env_name: str, function: str, *, pooled: bool = True) -> tuple[Container, bool]:
        """A generic container of ``env_name``: pooled if any (True), else started now (False).

        With ``pooled=False`` (a newdeploy function) one is always started for the function.
        The caller schedules the refill (``refill``) once its own work is done,
        so that the container start does not compete with it for the CPU.
        """
        pool = self._pools.get(env_name)
        if pool is None:
            raise NotFound(f"environment '{env_name}' does not exist")
        if not pooled:
            return await self.start(pool.env, function), False
        if pool.ready:
            return pool.ready.popleft(), True
        self.schedule_fill(pool)
        log.info("pool of %s is empty: starting a container for %s on demand", env_name, function)
        return await self.start(pool.env, function), False

    def refill(self, env_name: str) -> None:
        pool = self._pools.get(env_name)
        if pool is not None:
            self.schedule_fill(pool)

    def discard_ready(self, container: Container) -> None:
        """A pooled container failed its health check: drop it and start another."""
        pool = self._pools.get(container.environment)
        if pool is not None and container in pool.ready:
            pool.ready.remove(container)
            self._background.stop(container)
            self.schedule_fill(pool)

    async def start(self, env: Environment, function: str = "") -> Container:
        async with self._starts:
            if self.closing:
                raise ShuttingDown("faasd is shutting down")
            counts = self.starts.setdefault(env.name, [0, 0])
            try:
                container = await self._backend.start(env, function)
            except Exception:
                counts[1] += 1
                raise
            counts[0] += 1
            return container

    # -- filling ------------------------------------------------------------------

    def fill_all(self) -> None:
        for pool in self._pools.values():
            self.schedule_fill(pool)

    def schedule_fill(self, pool: _Pool) -> None:
        if self.closing or (pool.filling is not None and not pool.filling.done()):
            return
        if len(pool.ready) + pool.starting >= pool.env.poolsize:
            return
        pool.filling = self._background.spawn(self._fill(pool))

    async def _fill(self, pool: _Pool) -> None:
        backoff = 0.25
        while not self.closing and self._pools.get(pool.env.name) is pool:
            missing = pool.env.poolsize - len(pool.ready) - pool.starting
            if missing <= 0:
                return
            results = await asyncio.gather(*(self._start_into(pool) for _ in range(missing)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                backoff = 0.25
                pool.last_error = None
                continue
            message = str(errors[0])
            if message != pool.last_error:
                log.warning("could not fill the pool of %s: %s", pool.env.name, message)
            pool.last_error = message
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_FILL_BACKOFF)

    async def _start_into(self, pool: _Pool) -> None:
        generation = pool.generation
        pool.starting += 1
        try:
            container = await self.start(pool.env)
        finally:
            pool.starting -= 1
        stale = pool.generation != generation or self._pools.get(pool.env.name) is not pool
        # The pool may have shrunk while this container was starting.
        if self.closing or stale or len(pool.ready) >= pool.env.poolsize:
            self._background.stop(container)
        else:
            pool.ready.append(container)

    def _drain(self, pool: _Pool, count: int) -> None:
        for _ in range(count):
            self._background.stop(pool.ready.pop())

    def close(self) -> None:
        self.closing = True
        for pool in self._pools.values():
            if pool.filling is not None:
                pool.filling.cancel()
            self._drain(pool, len(pool.ready))

    # -- views ------------------------------------------------------------------

    def ready(self) -> list[Container]:
        return [c for pool in self._pools.values() for c in pool.ready]

    def status(self, name: str) -> dict[str, object]:
        pool = self._pools.get(name)
        return {
            "pool_ready": len(pool.ready) if pool else 0,
            "pool_starting": pool.starting if pool else 0,
            "last_error": pool.last_error if pool else None,
        }

    def sizes(self) -> dict[str, tuple[int, int, int]]:
        """Per environment: (configured pool size, ready, starting)."""
        return {name: (p.env.poolsize, len(p.ready), p.starting) for name, p in self._pools.items()}

    def ready_count(self, name: str) -> int:
        pool = self._pools.get(name)
        return len(pool.ready) if pool else 0
