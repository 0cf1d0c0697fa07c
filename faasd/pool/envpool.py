"""Generic containers per environment, started ahead of the calls that need them.

Each environment keeps its pool's *target* of containers started and
answering their health check. Taking one schedules a refill. The target is the
environment's ``poolsize``, plus, when a memory budget is set
(``--pool-memory-budget-mb``), the extra containers its recent bursts of
specializations needed: the most containers taken from the pool (or started on
demand because it was empty) within any :data:`BURST_SPAN` seconds of the last
``window`` seconds (the daemon's idle timeout), beyond ``poolsize``. Every
extra container counts at its memory limit (``--container-memory-mb``), and
the extras of all environments together never exceed the budget (shared in
proportion to the demand when it is short). When the demand that asked for an
extra is older than the window, the target falls and the surplus ready
containers are removed (:meth:`EnvironmentPools.trim`, every reaper tick). A
pool of size 0 stays empty: an environment without a pool gets no extras.

Container starts across all environments are bounded by one :class:`StartGate`
(about 5 starts per second on 2 cores, whatever the concurrency: the engine's
own work is the bound). A start that a call waits for (the pool was empty, or a
``newdeploy`` function) goes before every pool refill; a refill starts only
while no such start waits or runs, and never takes the gate's last slot, so
refills never delay the calls of a burst.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from faasd.core.entities import Environment
from faasd.core.errors import NotFound, ShuttingDown
from faasd.pool.backend import Container, ContainerBackend
from faasd.pool.background import Background

log = logging.getLogger(__name__)

MAX_FILL_BACKOFF = 5.0
# Takes within this many seconds count as one burst: about the time a refill takes
# on a busy small machine, so a burst larger than the pool could not be refilled in time.
BURST_SPAN = 2.0
# Demand is kept in buckets of BURST_SPAN / 2; a burst is the most takes in two adjacent buckets.
_BUCKET = BURST_SPAN / 2


class StartGate:
    """At most ``limit`` container starts at once; starts that calls wait for go first.

    A background start (a pool refill) is let in only while no urgent start waits
    or runs, and never into the last free slot (with ``limit`` above 1), so an
    urgent start arriving meanwhile finds one.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.urgent_running = 0
        self.background_running = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()

    @property
    def running(self) -> int:
        return self.urgent_running + self.background_running

    def waiting(self) -> tuple[int, int]:
        """Starts waiting for a slot: (urgent, background)."""
        return (
            sum(1 for f in self._urgent if not f.done()),
            sum(1 for f in self._background if not f.done()),
        )

    def _background_may_run(self) -> bool:
        if self.urgent_running or any(not f.done() for f in self._urgent):
            return False
        return self.running < (self.limit - 1 if self.limit > 1 else 1)

    async def acquire(self, urgent: bool) -> None:
        queue = self._urgent if urgent else self._background
        if not any(not f.done() for f in queue) and (
            self.running < self.limit if urgent else self._background_may_run()
        ):
            self._count(urgent, 1)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(urgent)  # let in, then cancelled: hand the slot on
            else:
                waiter.cancel()
                self._wake()  # a cancelled urgent start may have been all that held the refills back
            raise

    def release(self, urgent: bool) -> None:
        self._count(urgent, -1)
        self._wake()

    def _count(self, urgent: bool, delta: int) -> None:
        if urgent:
            self.urgent_running += delta
        else:
            self.background_running += delta

    def _wake(self) -> None:
        while self._urgent and self.running < self.limit:
            waiter = self._urgent.popleft()
            if not waiter.done():
                self.urgent_running += 1
                waiter.set_result(None)
        while self._background and self._background_may_run():
            waiter = self._background.popleft()
            if not waiter.done():
                self.background_running += 1
                waiter.set_result(None)


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
    # Containers taken (from the pool, or started on demand when it was empty):
    # (bucket number, count), oldest first, only buckets with takes.
    takes: deque[list[int]] = field(default_factory=deque)
    extra: int = 0  # containers beyond poolsize the pool keeps now (within the budget)


class EnvironmentPools:
    def __init__(
        self,
        backend: ContainerBackend,
        background: Background,
        start_concurrency: int,
        *,
        memory_budget_mb: int = 0,
        container_memory_mb: int = 256,
        window: Callable[[], float] = lambda: 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._background = background
        self.gate = StartGate(start_concurrency)
        self._pools: dict[str, _Pool] = {}
        self.closing = False
        # Container starts per environment since faasd started: (started, failed), for the metrics.
        self.starts: dict[str, list[int]] = {}
        self.memory_budget_mb = max(0, memory_budget_mb)
        self.container_memory_mb = max(1, container_memory_mb)
        self._window = window
        self._clock = clock

    # -- configuration --------------------------------------------------------

    def set_environment(self, env: Environment) -> None:
        """Create the pool of a new environment, or apply a changed size or image."""
        pool = self._pools.get(env.name)
        if pool is None:
            pool = self._pools[env.name] = _Pool(env)
        else:
            if pool.env.image != env.image:
                pool.generation += 1
                self._drain(pool, len(pool.ready))
            if pool.env.poolsize != env.poolsize:
                pool.takes.clear()  # a size set by hand starts over: no extras until new demand
        pool.env = env
        self._update_targets()
        surplus = len(pool.ready) - self.target(pool)
        if surplus > 0:
            self._drain(pool, surplus)
        self.schedule_fill(pool)

    def remove_environment(self, name: str) -> None:
        pool = self._pools.pop(name, None)
        if pool is not None:
            pool.generation += 1
            self._drain(pool, len(pool.ready))
            self._update_targets()

    def environment(self, name: str) -> Environment:
        pool = self._pools.get(name)
        if pool is None:
            raise NotFound(f"environment '{name}' does not exist")
        return pool.env

    # -- the target: poolsize plus the extras recent demand needs, within the budget ---------

    def target(self, pool: _Pool) -> int:
        return pool.env.poolsize + pool.extra if pool.env.poolsize > 0 else 0

    def _record_take(self, pool: _Pool) -> None:
        bucket = math.floor(self._clock() / _BUCKET)
        if pool.takes and pool.takes[-1][0] == bucket:
            pool.takes[-1][1] += 1
        else:
            pool.takes.append([bucket, 1])

    def _demand(self, pool: _Pool, now: float) -> int:
        """The most containers taken within BURST_SPAN seconds, over the last window; 0 without a pool."""
        oldest = math.floor((now - self._window()) / _BUCKET)
        while pool.takes and pool.takes[0][0] < oldest:
            pool.takes.popleft()
        if pool.env.poolsize <= 0:
            return 0
        peak, last_bucket, last_count = 0, -1, 0
        for bucket, count in pool.takes:
            peak = max(peak, count + (last_count if last_bucket == bucket - 1 else 0))
            last_bucket, last_count = bucket, count
        return peak

    def _update_targets(self) -> None:
        """Share the budget's extra containers among the environments, in proportion to their demand."""
        now = self._clock()
        wanted = {name: max(0, self._demand(p, now) - p.env.poolsize) for name, p in self._pools.items()}
        allowed = self.memory_budget_mb // self.container_memory_mb
        total = sum(wanted.values())
        if total <= allowed:
            shares = wanted
        else:
            exact = {name: w * allowed / total for name, w in wanted.items()}
            shares = {name: math.floor(x) for name, x in exact.items()}
            left = allowed - sum(shares.values())
            for name in sorted(exact, key=lambda n: (shares[n] - exact[n], n))[:left]:
                shares[name] += 1
        for name, pool in self._pools.items():
            pool.extra = shares.get(name, 0)

    def extra_mb(self) -> int:
        """Memory limits of the containers the pools hold (ready or starting) beyond their poolsize."""
        beyond = sum(max(0, len(p.ready) + p.starting - p.env.poolsize) for p in self._pools.values())
        return beyond * self.container_memory_mb

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
        self._record_take(pool)
        if pool.ready:
            return pool.ready.popleft(), True
        self._update_targets()
        self.schedule_fill(pool)
        log.info("pool of %s is empty: starting a container for %s on demand", env_name, function)
        return await self.start(pool.env, function), False

    def refill(self, env_name: str) -> None:
        pool = self._pools.get(env_name)
        if pool is not None:
            self._update_targets()
            self.schedule_fill(pool)

    def discard_ready(self, container: Container) -> None:
        """A pooled container failed its health check: drop it and start another."""
        pool = self._pools.get(container.environment)
        if pool is not None and container in pool.ready:
            pool.ready.remove(container)
            self._background.stop(container)
            self.schedule_fill(pool)

    async def start(self, env: Environment, function: str = "", *, urgent: bool = True) -> Container:
        """Start a container; ``urgent``: a call waits for it (it goes before the refills)."""
        await self.gate.acquire(urgent)
        try:
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
        finally:
            self.gate.release(urgent)

    # -- filling ------------------------------------------------------------------

    def fill_all(self) -> None:
        """Every reaper tick: recompute the targets, remove the surplus, start what is missing."""
        self.trim()
        for pool in self._pools.values():
            self.schedule_fill(pool)

    def trim(self) -> int:
        """Remove ready containers beyond their pool's target (extras whose demand is past); return how many."""
        self._update_targets()
        removed = 0
        for pool in self._pools.values():
            surplus = len(pool.ready) - self.target(pool)
            if surplus > 0:
                log.info("pool of %s: removing %d container(s) no longer needed", pool.env.name, surplus)
                self._drain(pool, surplus)
                removed += surplus
        return removed

    def schedule_fill(self, pool: _Pool) -> None:
        if self.closing or (pool.filling is not None and not pool.filling.done()):
            return
        if self._missing(pool) <= 0:
            return
        pool.filling = self._background.spawn(self._fill(pool))

    def _missing(self, pool: _Pool) -> int:
        """Containers to start now: up to the poolsize, and extras only while the budget has room
        for them (the containers all pools hold or are starting beyond their sizes count)."""
        held = len(pool.ready) + pool.starting
        base = max(0, pool.env.poolsize - held) if pool.env.poolsize > 0 else 0
        extra = max(0, self.target(pool) - max(pool.env.poolsize, held))
        if extra:
            room = self.memory_budget_mb // self.container_memory_mb - self.extra_mb() // self.container_memory_mb
            extra = min(extra, max(0, room))
        return base + extra

    async def _fill(self, pool: _Pool) -> None:
        backoff = 0.25
        while not self.closing and self._pools.get(pool.env.name) is pool:
            missing = self._missing(pool)
            if missing <= 0:
                return
            # Counted as starting at once, before any of them runs: another pool's fill sees them.
            pool.starting += missing
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
        """Start one container into the pool; the caller counted it in ``pool.starting``."""
        generation = pool.generation
        try:
            container = await self.start(pool.env, urgent=False)
        finally:
            pool.starting -= 1
        stale = pool.generation != generation or self._pools.get(pool.env.name) is not pool
        # The pool may have shrunk (or its extras expired) while this container was starting.
        if self.closing or stale or len(pool.ready) >= self.target(pool):
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
            "pool_target": self.target(pool) if pool else 0,
            "pool_budget_mb": self.memory_budget_mb,
            "last_error": pool.last_error if pool else None,
        }

    def sizes(self) -> dict[str, tuple[int, int, int]]:
        """Per environment: (target pool size, ready, starting)."""
        return {name: (self.target(p), len(p.ready), p.starting) for name, p in self._pools.items()}

    def ready_count(self, name: str) -> int:
        pool = self._pools.get(name)
        return len(pool.ready) if pool else 0
