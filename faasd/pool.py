"""The pool manager: generic containers per environment, instances per function.

State has one owner: every change to the pools and instances happens in this
module, on the event loop, without awaiting between a check and the change it
guards. The request path (``lease`` with a warm instance) does not await at all.

- Each environment keeps ``poolsize`` generic containers started and healthy.
  Taking one schedules a refill in the background, so a container start is
  never on a first call's path while the pool has a container.
- A function's first call takes a pooled container (or starts one when the
  pool is empty) and specializes it. Concurrent first calls share that one
  specialization. A specialized container serves only that function.
- An instance idle past the idle timeout is removed by ``reap_idle``; one with
  a call in flight never is. An updated function's old instances finish their
  calls and are then removed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from faasd.backend import Container, ContainerBackend, Specialization
from faasd.entities import Environment, Function
from faasd.errors import EngineUnavailable, FaasdError, NotFound, ShuttingDown, UpstreamError

log = logging.getLogger(__name__)

MAX_FILL_BACKOFF = 30.0


@dataclass(eq=False)
class Instance:
    """A container specialized for one revision of one function."""

    container: Container
    function: str
    revision: int
    last_used: float
    inflight: int = 0
    retired: bool = False
    load_error: str | None = None


@dataclass(eq=False)
class _EnvPool:
    env: Environment
    ready: deque[Container] = field(default_factory=deque)
    starting: int = 0
    # Bumped when the image changes: containers of an older generation are dropped.
    generation: int = 0
    filling: asyncio.Task[None] | None = None
    last_error: str | None = None


@dataclass(eq=False)
class _FunctionState:
    instances: list[Instance] = field(default_factory=list)
    pending: asyncio.Future[Instance] | None = None
    pending_revision: int = -1


class Lease:
    """One call's hold on an instance; release it exactly once."""

    __slots__ = ("_pool", "_released", "instance")

    def __init__(self, pool: PoolManager, instance: Instance) -> None:
        self._pool = pool
        self.instance = instance
        self._released = False

    @property
    def url(self) -> str:
        return self.instance.container.url

    def discard(self) -> None:
        """Take the instance out of service and destroy it now (timeout, dead container)."""
        self._pool._discard(self.instance)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self.instance)


CodeLoader = Callable[[Function], bytes]


class PoolManager:
    def __init__(
        self,
        backend: ContainerBackend,
        load_code: CodeLoader,
        *,
        idle_timeout: float,
        start_concurrency: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._load_code = load_code
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._starts = asyncio.Semaphore(start_concurrency)
        self._envs: dict[str, _EnvPool] = {}
        self._functions: dict[str, _FunctionState] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- environments -------------------------------------------------------

    def set_environment(self, env: Environment) -> None:
        """Create the pool of a new environment, or apply a changed size or image."""
        pool = self._envs.get(env.name)
        if pool is None:
            pool = self._envs[env.name] = _EnvPool(env)
        elif pool.env.image != env.image:
            pool.generation += 1
            self._drain(pool, len(pool.ready))
        pool.env = env
        surplus = len(pool.ready) - env.poolsize
        if surplus > 0:
            self._drain(pool, surplus)
        self._schedule_fill(pool)

    def remove_environment(self, name: str) -> None:
        pool = self._envs.pop(name, None)
        if pool is not None:
            pool.generation += 1
            self._drain(pool, len(pool.ready))

    def _drain(self, pool: _EnvPool, count: int) -> None:
        for _ in range(count):
            self._stop_later(pool.ready.pop())

    def fill_all(self) -> None:
        """Top up every pool (the reaper calls this, so pools recover after engine trouble)."""
        for pool in self._envs.values():
            self._schedule_fill(pool)

    def _schedule_fill(self, pool: _EnvPool) -> None:
        if self._closing or (pool.filling is not None and not pool.filling.done()):
            return
        if len(pool.ready) + pool.starting >= pool.env.poolsize:
            return
        pool.filling = self._spawn(self._fill(pool))

    async def _fill(self, pool: _EnvPool) -> None:
        backoff = 0.5
        while not self._closing and self._envs.get(pool.env.name) is pool:
            missing = pool.env.poolsize - len(pool.ready) - pool.starting
            if missing <= 0:
                return
            results = await asyncio.gather(
                *(self._start_into(pool) for _ in range(missing)), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                backoff = 0.5
                pool.last_error = None
                continue
            message = str(errors[0])
            if message != pool.last_error:
                log.warning("could not fill the pool of %s: %s", pool.env.name, message)
            pool.last_error = message
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_FILL_BACKOFF)

    async def _start_into(self, pool: _EnvPool) -> None:
        generation = pool.generation
        pool.starting += 1
        try:
            container = await self._start(pool.env)
        finally:
            pool.starting -= 1
        if self._closing or pool.generation != generation or self._envs.get(pool.env.name) is not pool:
            self._stop_later(container)
        else:
            pool.ready.append(container)

    async def _start(self, env: Environment, function: str = "") -> Container:
        async with self._starts:
            if self._closing:
                raise ShuttingDown("faasd is shutting down")
            return await self._backend.start(env, function)

    # -- functions ----------------------------------------------------------

    async def lease(self, fn: Function) -> Lease:
        """An instance of ``fn`` to send one call to; specializes one if there is none."""
        if self._closing:
            raise ShuttingDown("faasd is shutting down")
        state = self._functions.get(fn.name)
        if state is None:
            state = self._functions[fn.name] = _FunctionState()
        instance = self._pick(state, fn.revision)
        if instance is None:
            if state.pending is None or state.pending_revision != fn.revision:
                state.pending = asyncio.ensure_future(self._specialize(fn, state))
                state.pending_revision = fn.revision
            # Shielded: a caller that gives up does not cancel the others' specialization.
            instance = await asyncio.shield(state.pending)
        instance.inflight += 1
        return Lease(self, instance)

    def _pick(self, state: _FunctionState, revision: int) -> Instance | None:
        best: Instance | None = None
        for instance in list(state.instances):
            if instance.revision != revision:
                self._retire(state, instance)
            elif best is None or instance.inflight < best.inflight:
                best = instance
        return best

    async def _specialize(self, fn: Function, state: _FunctionState) -> Instance:
        try:
            code = self._load_code(fn)
            spec = Specialization(fn.name, fn.filename, code, fn.entrypoint)
            for attempt in (1, 2):
                container = await self._take(fn)
                try:
                    result = await self._backend.specialize(container, spec)
                except UpstreamError:
                    self._stop_later(container)
                    if attempt == 2:
                        raise
                    log.warning("a pooled container of %s was gone; taking another", fn.environment)
                    continue
                except BaseException:
                    self._stop_later(container)
                    raise
                if result.load_error:
                    log.warning("function %s failed to load: %s", fn.name, result.load_error)
                else:
                    log.info("specialized %s in %.1f ms", fn.name, result.load_ms)
                instance = Instance(
                    container, fn.name, fn.revision, self._clock(), load_error=result.load_error
                )
                if self._closing:
                    self._stop_later(container)
                    raise ShuttingDown("faasd is shutting down")
                state.instances.append(instance)
                return instance
            raise AssertionError("unreachable")
        finally:
            pool = self._envs.get(fn.environment)
            if pool is not None:
                self._schedule_fill(pool)
            if state.pending is asyncio.current_task():
                state.pending = None
                state.pending_revision = -1

    async def _take(self, fn: Function) -> Container:
        pool = self._envs.get(fn.environment)
        if pool is None:
            raise NotFound(f"environment '{fn.environment}' of function '{fn.name}' does not exist")
        if pool.ready:
            # The refill is scheduled once the specialization is done, so the
            # container start does not compete with this call for the CPU.
            return pool.ready.popleft()
        self._schedule_fill(pool)
        log.info("pool of %s is empty: starting a container for %s on demand", fn.environment, fn.name)
        return await self._start(pool.env, fn.name)

    def _release(self, instance: Instance) -> None:
        instance.inflight -= 1
        instance.last_used = self._clock()
        if instance.retired and instance.inflight == 0:
            self._stop_later(instance.container)

    def _discard(self, instance: Instance) -> None:
        state = self._functions.get(instance.function)
        if state is not None and instance in state.instances:
            state.instances.remove(instance)
        if not instance.retired:
            instance.retired = True
            self._stop_later(instance.container)

    def _retire(self, state: _FunctionState, instance: Instance) -> None:
        """Out of service now; destroyed when its last call ends."""
        if instance in state.instances:
            state.instances.remove(instance)
        instance.retired = True
        if instance.inflight == 0:
            self._stop_later(instance.container)

    def retire_function(self, name: str) -> None:
        """The function changed or went away: its instances finish their calls and go."""
        state = self._functions.pop(name, None)
        if state is not None:
            for instance in list(state.instances):
                self._retire(state, instance)

    def reap_idle(self) -> int:
        """Remove instances idle past the idle timeout; return how many."""
        now = self._clock()
        reaped = 0
        for name, state in list(self._functions.items()):
            for instance in list(state.instances):
                if instance.inflight == 0 and now - instance.last_used >= self.idle_timeout:
                    log.info("removing idle instance of %s", name)
                    self._retire(state, instance)
                    reaped += 1
            if not state.instances and state.pending is None:
                del self._functions[name]
        return reaped

    # -- background work and shutdown ----------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _stop_later(self, container: Container) -> None:
        self._spawn(self._stop(container))

    async def _stop(self, container: Container) -> None:
        try:
            await self._backend.stop(container)
        except FaasdError as exc:
            log.warning("could not remove container %s: %s", container.id[:12], exc)

    async def settle(self) -> None:
        """Wait until background work (refills, removals) is done."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop everything this pool started, including containers still starting."""
        self._closing = True
        for pool in self._envs.values():
            if pool.filling is not None:
                pool.filling.cancel()
            self._drain(pool, len(pool.ready))
        for state in self._functions.values():
            if state.pending is not None:
                state.pending.cancel()
            for instance in state.instances:
                instance.retired = True
                self._stop_later(instance.container)
        self._functions.clear()
        await self.settle()
        try:
            await self._backend.remove_managed()
        except EngineUnavailable as exc:
            log.warning("could not sweep containers at shutdown: %s", exc)

    # -- read-only views ----------------------------------------------------

    def environment_status(self, name: str) -> dict[str, Any]:
        pool = self._envs.get(name)
        specialized = sum(
            1
            for state in self._functions.values()
            for instance in state.instances
            if instance.container.environment == name
        )
        return {
            "pool_ready": len(pool.ready) if pool else 0,
            "pool_starting": pool.starting if pool else 0,
            "specialized": specialized,
            "last_error": pool.last_error if pool else None,
        }

    def instance_count(self, function: str) -> int:
        state = self._functions.get(function)
        return len(state.instances) if state else 0

    def ready_count(self, environment: str) -> int:
        pool = self._envs.get(environment)
        return len(pool.ready) if pool else 0
