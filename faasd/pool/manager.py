"""The pool manager: instances of functions, leased to calls, scaled with demand.

State has one owner: every change to the instances happens in this module, on
the event loop, without awaiting between a check and the change it guards. A
call to a function with a free slot does not await at all.

- A call gets the least-loaded instance of the function's current revision
  with a free slot (fewer than ``concurrency`` calls in flight).
- When every instance is full, the call waits. If the function is below
  ``max_instances`` and the instances starting cannot absorb the waiting
  calls, another instance is made: a generic container is taken from the
  environment's pool (faasd/pool/envpool.py; started on demand when the pool is
  empty) and specialized with the function's code. Concurrent first calls
  thus share one specialization. At ``max_instances`` a call waits at most
  ``queue_timeout`` seconds for a slot, then gets 429 with Retry-After.
  At most ``max_queued_calls`` calls wait at once, all functions together; a
  call that would wait beyond that gets 503 ("overloaded") with Retry-After.
- A specialized container serves only its function. An update makes new
  calls go to new instances; old ones finish their calls and are removed.
- The reaper removes instances idle past their idle timeout, one per function
  per tick, never one with a call in flight and never below ``min_instances``;
  it replaces instances and pooled containers that fail their health check.
- Nothing here blocks the loop: code blobs are read in a worker thread (the
  last few are kept, see CODE_CACHE_BYTES), log records go to the log writer
  (faasd/pool/logs.py). Every task this module starts is tracked, and
  :meth:`PoolManager.shutdown` awaits or cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faasd.core.entities import Environment, Function
from faasd.core.errors import (
    EngineUnavailable,
    FaasdError,
    NotFound,
    Overloaded,
    ShuttingDown,
    TooManyRequests,
    UpstreamError,
)
from faasd.observe.calls import NO_POOL, POOL_WARM, CallStats
from faasd.pool.backend import Container, ContainerBackend, Specialization
from faasd.pool.background import Background
from faasd.pool.envpool import EnvironmentPools
from faasd.pool.logs import FunctionLogs, format_record, utc_stamp

log = logging.getLogger(__name__)

# A call waiting for an instance that is being made waits at most this long.
START_WAIT = 120.0
# Consecutive failed health checks before an idle instance is replaced.
HEALTH_FAILURES = 2
# An idle instance is probed once it has neither answered a call nor been probed for this
# long (again at the next tick after a failed probe). Probing every instance at every tick
# cost 500 warm instances 100 requests a second, and their burst stalled the warm calls.
HEALTH_INTERVAL = 30.0
# ... and the interval grows with the instances so that idle probes stay below this many a second.
HEALTH_MAX_RATE = 10.0
# Probes in flight at once: the event loop serves calls between them.
HEALTH_CONCURRENCY = 8
# Code blobs kept in memory after a read, all together (the least recently used go first).
CODE_CACHE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_QUEUED_CALLS = 5000


@dataclass(eq=False)
class Instance:
    """A container specialized for one revision of one function."""

    container: Container
    function: str
    version: tuple[float, int]  # Function.version
    last_used: float
    inflight: int = 0
    retired: bool = False  # out of service: no new calls
    stopped: bool = False  # its container is being removed
    load_error: str | None = None
    health_failures: int = 0
    probed: float = 0.0  # when its health was last asked (the pool's clock)
    died: str | None = None  # why its container stopped, as a failed call found out
    calls: int = 0  # leases ever given
    created: float = 0.0  # when it went into service (the pool's clock)
    accounted: float = 0.0  # the clock up to which its lifetime was metered (instance-seconds)


@dataclass(eq=False)
class _FunctionState:
    fn: Function
    instances: list[Instance] = field(default_factory=list)
    starting: int = 0
    waiters: deque[asyncio.Future[Instance]] = field(default_factory=deque)


class Lease:
    """One call's hold on an instance; release it exactly once.

    ``cold`` is true when the call waited for this instance to be made.
    """

    __slots__ = ("_pool", "_released", "cold", "instance")

    def __init__(self, pool: PoolManager, instance: Instance, *, cold: bool = False) -> None:
        self._pool = pool
        self.instance = instance
        self._released = False
        self.cold = cold
        instance.calls += 1

    @property
    def url(self) -> str:
        return self.instance.container.url

    @property
    def instance_id(self) -> str:
        return self.instance.container.id[:12]

    def discard(self) -> None:
        """Take the instance out of service (a timeout, a dead container); it is
        destroyed when its last call ends, and replaced if calls need it."""
        self._pool._retire(self.instance)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self.instance)


# Reads a function's code blob (a blocking file read: the pool calls it in a worker
# thread). Its answer must depend on ``fn.code_sha256`` only: the pool caches by it.
CodeLoader = Callable[[Function], bytes]
# The deployment archive of a package function (a path in the package store);
# raises a FaasdError (503, saying the package's status) while it is not built.
DeployLoader = Callable[[Function], Path]


class PoolManager:
    def __init__(
        self,
        backend: ContainerBackend,
        load_code: CodeLoader,
        load_deploy: DeployLoader | None = None,
        *,
        idle_timeout: float,
        start_concurrency: int = 4,
        logs: FunctionLogs | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_queued_calls: int = DEFAULT_MAX_QUEUED_CALLS,
        pool_memory_budget_mb: int = 0,
        container_memory_mb: int = 256,
    ) -> None:
        self._backend = backend
        self._logs = logs
        self._log_tasks: set[asyncio.Task[None]] = set()
        self._load_code = load_code
        self._load_deploy = load_deploy
        self._codes: OrderedDict[str, bytes] = OrderedDict()  # sha256 -> code, most recent last
        self.max_queued_calls = max_queued_calls
        self._queued = 0  # calls in _wait_for_slot, all functions together
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._background = Background(backend)
        # Extras beyond each pool's size follow the recent bursts for as long as an idle instance lives.
        self._envs = EnvironmentPools(
            backend,
            self._background,
            start_concurrency,
            memory_budget_mb=pool_memory_budget_mb,
            container_memory_mb=container_memory_mb,
            window=lambda: self.idle_timeout,
            clock=clock,
        )
        self._functions: dict[str, _FunctionState] = {}
        self._closing = False
        # What calls did (faasd.observe reads it); the data plane and the dispatcher record into it.
        self.calls = CallStats(clock)
        # Instances in service or finishing their calls, and the metered seconds of those gone since.
        self._alive: set[Instance] = set()
        self._gone_seconds: dict[str, float] = {}

    # -- environments (delegated) ---------------------------------------------

    def set_environment(self, env: Environment) -> None:
        self._envs.set_environment(env)

    def remove_environment(self, name: str) -> None:
        self._envs.remove_environment(name)

    def fill_all(self) -> None:
        self._envs.fill_all()

    # -- functions ------------------------------------------------------------

    def function_changed(self, fn: Function) -> None:
        """A function was created or updated: newer revisions retire the old instances."""
        self.calls.revive(fn.name)
        state = self._functions.get(fn.name)
        if state is None:
            if fn.min_instances == 0:
                return
            state = self._functions[fn.name] = _FunctionState(fn)
        self._adopt(state, fn)
        self._ensure_min(state)
        self._dispatch(state)

    def remove_function(self, name: str) -> None:
        """The function is gone: its instances finish their calls and go; waiting calls fail."""
        state = self._functions.pop(name, None)
        self.calls.forget(name, state.fn.memory_mb if state is not None else 0)
        if state is None:
            return
        self._fail_waiters(state, NotFound(f"function '{name}' was deleted"))
        for instance in list(state.instances):
            self._retire(instance)

    def forget_logs(self, name: str) -> None:
        if self._logs is not None:
            self._logs.remove(name)

    def _adopt(self, state: _FunctionState, fn: Function) -> None:
        if fn.version < state.fn.version:
            return
        state.fn = fn
        for instance in list(state.instances):
            if instance.version != fn.version:
                self._retire(instance)
        # Calls waiting for the old version now need instances of the new one.
        self._scale_up(state)

    async def lease(self, fn: Function) -> Lease:
        """A slot on an instance of ``fn``; makes or waits for one when all are busy."""
        if self._closing:
            raise ShuttingDown("faasd is shutting down")
        state = self._functions.get(fn.name)
        if state is None:
            state = self._functions[fn.name] = _FunctionState(fn)
        elif fn.version > state.fn.version:
            self._adopt(state, fn)
        instance = self._free_instance(state)
        if instance is not None:
            instance.inflight += 1
            return Lease(self, instance)
        queued_at = self._clock()
        instance = await self._wait_for_slot(state)
        # Cold: it waited for an instance made while it waited (every caller of that first batch).
        return Lease(self, instance, cold=instance.created >= queued_at)

    def lease_now(self, fn: Function) -> Lease | None:
        """The warm path of :meth:`lease` without a coroutine: a lease when an instance of
        ``fn`` has a free slot, else None (then call :meth:`lease`). The data plane calls
        this on every call; a task per call would cost more than the rest of the call."""
        if self._closing:
            raise ShuttingDown("faasd is shutting down")
        state = self._functions.get(fn.name)
        if state is None or fn.version > state.fn.version:
            return None
        instance = self._free_instance(state)
        if instance is None:
            return None
        instance.inflight += 1
        return Lease(self, instance)

    def _free_instance(self, state: _FunctionState) -> Instance | None:
        best: Instance | None = None
        limit = state.fn.concurrency
        for instance in state.instances:
            if instance.inflight < limit and (best is None or instance.inflight < best.inflight):
                best = instance
        return best

    async def _wait_for_slot(self, state: _FunctionState) -> Instance:
        if self._queued >= self.max_queued_calls:
            raise Overloaded(
                f"faasd holds {self.max_queued_calls} calls waiting for an instance, its limit; retry later"
            )
        self._queued += 1
        try:
            return await self._wait_in_queue(state)
        finally:
            self._queued -= 1

    async def _wait_in_queue(self, state: _FunctionState) -> Instance:
        waiter: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        self._scale_up(state)
        # Served by an instance being made, or queued at max_instances?
        waiting = sum(1 for w in state.waiters if not w.done())
        at_max = waiting > state.starting * state.fn.concurrency
        wait = float(state.fn.queue_timeout) if at_max else START_WAIT
        try:
            async with asyncio.timeout(wait):
                return await asyncio.shield(waiter)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                return waiter.result()
            waiter.cancel()
            if at_max:
                raise TooManyRequests(
                    f"function '{state.fn.name}' is at max_instances ({state.fn.max_instances}) "
                    f"and no slot freed within {state.fn.queue_timeout} s",
                    {"Retry-After": "1"},
                ) from None
            raise EngineUnavailable(
                f"no instance of '{state.fn.name}' could be made within {START_WAIT:.0f} s"
            ) from None
        except asyncio.CancelledError:
            # The caller went away; hand back a slot it may have been given.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())
            waiter.cancel()
            raise

    def _scale_up(self, state: _FunctionState) -> None:
        """Start instances while waiting calls exceed what is being made."""
        fn = state.fn
        waiting = sum(1 for w in state.waiters if not w.done())
        while (
            waiting > state.starting * fn.concurrency
            and len(state.instances) + state.starting < fn.max_instances
            and not self._closing
        ):
            self._start_instance(state)

    def _ensure_min(self, state: _FunctionState) -> None:
        while len(state.instances) + state.starting < state.fn.min_instances and not self._closing:
            self._start_instance(state)

    def _start_instance(self, state: _FunctionState) -> None:
        state.starting += 1
        self._background.spawn(self._make_instance(state, state.fn))

    async def _make_instance(self, state: _FunctionState, fn: Function) -> None:
        try:
            instance = await self._specialize(fn)
        except Exception as exc:
            error = exc if isinstance(exc, FaasdError) else EngineUnavailable(f"could not make an instance: {exc!r}")
            log.warning("could not make an instance of %s: %s", fn.name, error)
            state.starting -= 1
            if not state.instances and state.starting == 0:
                self._fail_waiters(state, error)
            return
        except BaseException:
            state.starting -= 1
            raise
        state.starting -= 1
        if self._closing or self._functions.get(fn.name) is not state or instance.version != state.fn.version:
            instance.retired = instance.stopped = True
            self._background.stop(instance.container)
            self._scale_up(state)
            return
        state.instances.append(instance)
        instance.created = instance.accounted = self._clock()
        self._alive.add(instance)
        self._collect_logs(instance)
        self._dispatch(state)

    def _collect_logs(self, instance: Instance) -> None:
        if self._logs is None:
            return
        task = asyncio.get_running_loop().create_task(self._copy_logs(instance, self._logs))
        self._log_tasks.add(task)
        task.add_done_callback(self._log_tasks.discard)

    async def _copy_logs(self, instance: Instance, logs: FunctionLogs) -> None:
        """Copy what the instance prints into its function's log, until it is gone."""
        cid = instance.container.id
        async for line in self._backend.logs(instance.container):
            # Waits only while the log writer has too much queued (backpressure).
            await logs.write(instance.function, [format_record(line.timestamp, cid, line.stream, line.text)])
        # Removed by faasd: no record, unless it had died first (a failed call found out why).
        reason = instance.died if instance.stopped else await self._backend.exit_reason(instance.container)
        if reason:
            record = format_record(utc_stamp(), cid, "faasd", f"instance stopped: {reason}")
            await logs.write(instance.function, [record])

    async def upstream_failed(self, lease: Lease, detail: str) -> UpstreamError:
        """The instance broke a call off: out of service at once, then find out why.

        Its container is removed when its last call is released, so the engine
        can still be asked about it (out of memory? exit code?) meanwhile.
        """
        self._retire(lease.instance)
        reason = await self._backend.exit_reason(lease.instance.container)
        lease.instance.died = reason
        name = lease.instance.function
        if reason is None:
            return UpstreamError(f"function '{name}' failed: its container closed the connection ({detail})")
        return UpstreamError(f"function '{name}' failed: {reason}")

    async def _code(self, fn: Function) -> bytes:
        """The function's code: from the cache, else read in a worker thread (a file read)."""
        key = fn.code_sha256
        code = self._codes.get(key)
        if code is not None:
            self._codes.move_to_end(key)
            return code
        code = await asyncio.to_thread(self._load_code, fn)
        if len(code) <= CODE_CACHE_BYTES // 2:
            self._codes[key] = code
            self._codes.move_to_end(key)
            while sum(map(len, self._codes.values())) > CODE_CACHE_BYTES:
                self._codes.popitem(last=False)
        return code

    async def _specialize(self, fn: Function) -> Instance:
        deploy: Path | None = None
        if fn.package:
            if self._load_deploy is None:
                raise EngineUnavailable(f"function '{fn.name}' needs package '{fn.package}', and packages are off")
            # Raises while the package is not built: the waiting calls get it. In a thread: a node without its
            # own copy of the archive reads it from the shared registry first.
            deploy = await asyncio.to_thread(self._load_deploy, fn)
        spec = Specialization(
            fn.name,
            fn.filename,
            b"" if fn.package else await self._code(fn),
            fn.entrypoint,
            fn.runtime_env(),
            memory_mb=fn.memory_mb,
            cpu_millis=fn.cpu_millis,
            network=fn.network,
            deploy=deploy,
        )
        started = self._clock()
        try:
            for attempt in (1, 2):
                container, pooled = await self._envs.take(fn.environment, fn.name, pooled=fn.executor != "newdeploy")
                try:
                    result = await self._backend.specialize(container, spec)
                except UpstreamError:
                    # Dead because the engine is gone? Then that is the error (503), not the container.
                    await self._backend.exit_reason(container)
                    self._background.stop(container)
                    if attempt == 2 or not pooled:
                        raise
                    log.warning("a pooled container of %s was gone; taking another", fn.environment)
                    continue
                except BaseException:
                    self._background.stop(container)
                    raise
                if result.load_error:
                    log.warning("function %s failed to load: %s", fn.name, result.load_error)
                else:
                    log.info("specialized %s in %.1f ms", fn.name, result.load_ms)
                self.calls.cold_start(fn.name, POOL_WARM if pooled else NO_POOL, self._clock() - started)
                return Instance(container, fn.name, fn.version, self._clock(), load_error=result.load_error)
            raise AssertionError("unreachable")
        finally:
            self._envs.refill(fn.environment)

    def _dispatch(self, state: _FunctionState) -> None:
        """Hand free slots to waiting calls, oldest first."""
        while state.waiters:
            if state.waiters[0].done():
                state.waiters.popleft()
                continue
            instance = self._free_instance(state)
            if instance is None:
                return
            instance.inflight += 1
            state.waiters.popleft().set_result(instance)

    def _fail_waiters(self, state: _FunctionState, error: FaasdError) -> None:
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _release(self, instance: Instance) -> None:
        instance.inflight -= 1
        instance.last_used = self._clock()
        if instance.retired:
            self._stop_if_idle(instance)
        state = self._functions.get(instance.function)
        if state is not None:
            self._dispatch(state)

    def _retire(self, instance: Instance, now: bool = False) -> None:
        """Out of service: no new calls. Its container goes when its last call ends (or ``now``).

        Calls waiting for the function get another instance made if need be.
        """
        state = self._functions.get(instance.function)
        if state is not None and instance in state.instances:
            state.instances.remove(instance)
        instance.retired = True
        if now and not instance.stopped:
            self._stop(instance)
        self._stop_if_idle(instance)
        if state is not None and not self._closing:
            self._ensure_min(state)
            self._scale_up(state)

    def _stop_if_idle(self, instance: Instance) -> None:
        if instance.inflight == 0 and not instance.stopped:
            self._stop(instance)

    def _stop(self, instance: Instance) -> None:
        instance.stopped = True
        if instance in self._alive:
            self._alive.discard(instance)
            lived = self._clock() - instance.accounted
            self._gone_seconds[instance.function] = self._gone_seconds.get(instance.function, 0.0) + lived
        self._background.stop(instance.container)

    # -- upkeep (the reaper calls these) -----------------------------------------

    def reap_idle(self) -> int:
        """Remove, per function, one instance idle past its idle timeout; return how many."""
        now = self._clock()
        reaped = 0
        for name, state in list(self._functions.items()):
            idle_limit = state.fn.idle_timeout or self.idle_timeout
            if len(state.instances) > state.fn.min_instances:
                idle = [i for i in state.instances if i.inflight == 0 and now - i.last_used >= idle_limit]
                if idle:
                    oldest = min(idle, key=lambda i: i.last_used)
                    log.info("removing an idle instance of %s", name)
                    self._retire(oldest)
                    reaped += 1
            if not state.instances and not state.starting and not state.waiters and state.fn.min_instances == 0:
                del self._functions[name]
        return reaped

    async def check_health(self) -> int:
        """Probe the idle instances that are due (HEALTH_INTERVAL, longer with more than
        HEALTH_MAX_RATE x HEALTH_INTERVAL instances) and the pooled containers; replace those that
        fail; return how many."""
        probed_at = self._clock()
        instances = [
            i
            for s in self._functions.values()
            for i in s.instances
            if i.inflight == 0 and (i.health_failures or probed_at - max(i.probed, i.last_used) >= HEALTH_INTERVAL)
        ]
        for instance in instances:
            instance.probed = probed_at
        pooled = self._envs.ready()
        slots = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def probe(container: Container) -> bool:
            async with slots:
                return await self._backend.healthy(container)

        results = await asyncio.gather(
            *(probe(i.container) for i in instances),
            *(probe(c) for c in pooled),
        )
        replaced = 0
        for instance, ok in zip(instances, results[: len(instances)], strict=True):
            if instance.last_used > probed_at:
                continue  # it served a call during the probe: a slow answer proves nothing
            instance.health_failures = 0 if ok else instance.health_failures + 1
            if instance.health_failures >= HEALTH_FAILURES and not instance.retired and instance.inflight == 0:
                log.warning("an instance of %s stopped answering its health check; replacing it", instance.function)
                self._retire(instance)
                replaced += 1
        for container, ok in zip(pooled, results[len(instances) :], strict=True):
            if not ok:
                log.warning("a pooled container of %s stopped answering; replacing it", container.environment)
                self._envs.discard_ready(container)
                replaced += 1
        for state in self._functions.values():
            self._ensure_min(state)
        return replaced

    # -- background work and shutdown ----------------------------------------

    async def settle(self) -> None:
        """Wait until background work (refills, removals, specializations) is done."""
        await self._background.settle()

    async def shutdown(self) -> None:
        """Stop everything this pool started, including containers still starting."""
        self._closing = True
        self._envs.close()
        for state in self._functions.values():
            self._fail_waiters(state, ShuttingDown("faasd is shutting down"))
            for instance in list(state.instances):
                self._retire(instance, now=True)
        self._functions.clear()
        await self._background.settle()
        for task in list(self._log_tasks):
            task.cancel()
        await asyncio.gather(*self._log_tasks, return_exceptions=True)
        if self._logs is not None:
            await self._logs.close()  # writes what is queued, then the writer ends
        try:
            await self._backend.remove_managed()
        except EngineUnavailable as exc:
            log.warning("could not sweep containers at shutdown: %s", exc)

    # -- metering and read-only views -------------------------------------------

    def take_instance_seconds(self) -> dict[str, float]:
        """Seconds instances lived (idle or busy) since the last take, per function; for the usage meter."""
        now = self._clock()
        seconds, self._gone_seconds = self._gone_seconds, {}
        for instance in self._alive:
            seconds[instance.function] = seconds.get(instance.function, 0.0) + now - instance.accounted
            instance.accounted = now
        return seconds

    def instance_states(self) -> dict[str, dict[str, int]]:
        """Per function: instances starting, idle and busy, and calls waiting for one."""
        states: dict[str, dict[str, int]] = {}
        for name, state in self._functions.items():
            busy = sum(1 for i in state.instances if i.inflight)
            states[name] = {
                "starting": state.starting,
                "idle": len(state.instances) - busy,
                "busy": busy,
                "waiting": sum(1 for w in state.waiters if not w.done()),
            }
        return states

    def instances_of(self, name: str) -> list[dict[str, Any]]:
        """The function's instances in service, for the admin API."""
        state = self._functions.get(name)
        now = self._clock()
        return [
            {
                "id": i.container.id[:12],
                "state": "busy" if i.inflight else "idle",
                "inflight": i.inflight,
                "calls": i.calls,
                "age_seconds": round(now - i.created, 3),
                "idle_seconds": round(now - i.last_used, 3) if not i.inflight else 0.0,
            }
            for i in (state.instances if state else [])
        ]

    # -- read-only views ----------------------------------------------------

    def environment_status(self, name: str) -> dict[str, Any]:
        specialized = sum(1 for s in self._functions.values() for i in s.instances if i.container.environment == name)
        return {**self._envs.status(name), "specialized": specialized}

    def function_status(self, name: str) -> dict[str, int]:
        state = self._functions.get(name)
        if state is None:
            return {"instances": 0, "starting": 0, "inflight": 0, "waiting": 0}
        return {
            "instances": len(state.instances),
            "starting": state.starting,
            "inflight": sum(i.inflight for i in state.instances),
            "waiting": sum(1 for w in state.waiters if not w.done()),
        }

    def queued_calls(self) -> int:
        """Calls waiting for an instance now, all functions together."""
        return self._queued

    def instance_count(self, function: str) -> int:
        state = self._functions.get(function)
        return len(state.instances) if state else 0

    def ready_count(self, environment: str) -> int:
        return self._envs.ready_count(environment)

    def pool_sizes(self) -> dict[str, tuple[int, int, int]]:
        """Per environment: (configured pool size, ready, starting)."""
        return self._envs.sizes()

    def container_starts(self) -> dict[str, list[int]]:
        """Per environment: [containers started, starts that failed] since faasd started."""
        return self._envs.starts
