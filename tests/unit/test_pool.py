"""The pool's bookkeeping against the in-memory backend."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from faasd.core.entities import Environment, Function
from faasd.core.errors import EngineUnavailable, FaasdError, Overloaded, TooManyRequests
from faasd.pool.backend import Container, LogLine
from faasd.pool.envpool import StartGate
from faasd.pool.logs import FunctionLogs
from faasd.pool.manager import HEALTH_INTERVAL, PoolManager
from tests.fakes import FakeBackend

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def env(name: str = "nodejs", poolsize: int = 3, image: str = "img:1") -> Environment:
    return Environment(name, image, poolsize, NOW, NOW)


def fn(name: str = "hello", environment: str = "nodejs", revision: int = 1, **limits: Any) -> Function:
    return Function(name, environment, f"{name}.js", "", 60, "sha", 1, revision, NOW, NOW, **limits)


async def quiesce(pool: PoolManager) -> None:
    """Let every ready task run and all background work finish."""
    for _ in range(3):
        for _ in range(5):
            await asyncio.sleep(0)
        await pool.settle()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pool(backend: FakeBackend, clock: Clock) -> PoolManager:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock)
    manager.set_environment(env())
    await manager.settle()
    return manager


async def test_pool_fills_to_its_size(pool: PoolManager, backend: FakeBackend) -> None:
    assert pool.ready_count("nodejs") == 3
    assert backend.starts == 3


async def test_first_call_takes_a_pooled_container_and_the_pool_refills(
    pool: PoolManager, backend: FakeBackend
) -> None:
    lease = await pool.lease(fn())
    # The call got a container that was already running: no start on its path.
    assert lease.url.startswith("http://fake/c")
    assert backend.specialized == {lease.instance.container.id: "hello"}
    lease.release()
    await pool.settle()
    assert pool.ready_count("nodejs") == 3
    assert backend.starts == 4
    assert pool.instance_count("hello") == 1


async def test_warm_calls_reuse_the_instance(pool: PoolManager, backend: FakeBackend) -> None:
    first = await pool.lease(fn())
    first.release()
    second = await pool.lease(fn())
    second.release()
    assert first.instance is second.instance
    assert backend.specializations == 1


async def test_concurrent_first_calls_share_one_specialization(pool: PoolManager, backend: FakeBackend) -> None:
    backend.specialize_gate = asyncio.Event()
    waiting = [asyncio.create_task(pool.lease(fn())) for _ in range(10)]
    await asyncio.sleep(0)
    backend.specialize_gate.set()
    leases = await asyncio.gather(*waiting)
    assert backend.specializations == 1
    assert len({id(lease.instance) for lease in leases}) == 1
    assert leases[0].instance.inflight == 10
    for lease in leases:
        lease.release()
    assert leases[0].instance.inflight == 0


async def test_a_specialized_container_never_serves_another_function(pool: PoolManager, backend: FakeBackend) -> None:
    a = await pool.lease(fn("a"))
    b = await pool.lease(fn("b"))
    assert a.instance.container.id != b.instance.container.id
    assert backend.specialized[a.instance.container.id] == "a"
    assert backend.specialized[b.instance.container.id] == "b"


async def test_empty_pool_starts_a_container_on_demand(backend: FakeBackend, clock: Clock) -> None:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock)
    manager.set_environment(env(poolsize=0))
    lease = await manager.lease(fn())
    assert backend.starts == 1
    assert backend.specialized == {lease.instance.container.id: "hello"}


async def test_a_dead_pooled_container_is_replaced_by_the_next(pool: PoolManager, backend: FakeBackend) -> None:
    backend.gone.add("c1")
    lease = await pool.lease(fn())
    assert lease.instance.container.id == "c2"
    await pool.settle()
    assert "c1" not in backend.running


async def test_idle_instances_are_reaped_but_never_in_flight(
    pool: PoolManager, backend: FakeBackend, clock: Clock
) -> None:
    busy = await pool.lease(fn("busy"))
    idle = await pool.lease(fn("idle"))
    idle.release()
    clock.now += 121
    assert pool.reap_idle() == 1
    await pool.settle()
    assert pool.instance_count("idle") == 0
    assert idle.instance.container.id not in backend.running
    assert pool.instance_count("busy") == 1
    assert busy.instance.container.id in backend.running
    busy.release()
    clock.now += 60
    assert pool.reap_idle() == 0  # released 60 s ago: not idle long enough yet
    clock.now += 61
    assert pool.reap_idle() == 1


async def test_update_lets_calls_in_flight_finish_then_removes_old_instance(
    pool: PoolManager, backend: FakeBackend
) -> None:
    old = await pool.lease(fn(revision=1))
    pool.function_changed(fn(revision=2))
    new = await pool.lease(fn(revision=2))
    assert new.instance is not old.instance
    await pool.settle()
    assert old.instance.container.id in backend.running  # still serving its call
    old.release()
    await pool.settle()
    assert old.instance.container.id not in backend.running
    assert new.instance.container.id in backend.running


async def test_a_stale_revision_is_not_served(pool: PoolManager) -> None:
    old = await pool.lease(fn(revision=1))
    old.release()
    new = await pool.lease(fn(revision=2))
    assert new.instance is not old.instance
    assert pool.instance_count("hello") == 1


async def test_discard_destroys_the_instance_and_the_next_call_gets_a_fresh_one(
    pool: PoolManager, backend: FakeBackend
) -> None:
    lease = await pool.lease(fn())
    lease.discard()
    lease.release()
    await pool.settle()
    assert lease.instance.container.id not in backend.running
    again = await pool.lease(fn())
    assert again.instance is not lease.instance


async def test_poolsize_changes_take_effect(pool: PoolManager, backend: FakeBackend) -> None:
    pool.set_environment(env(poolsize=5))
    await pool.settle()
    assert pool.ready_count("nodejs") == 5
    pool.set_environment(env(poolsize=1))
    await pool.settle()
    assert pool.ready_count("nodejs") == 1
    assert len(backend.running) == 1


async def test_image_change_replaces_the_pooled_containers(pool: PoolManager, backend: FakeBackend) -> None:
    before = set(backend.running)
    pool.set_environment(env(image="img:2"))
    await pool.settle()
    assert pool.ready_count("nodejs") == 3
    assert not before & set(backend.running)


async def test_engine_failures_surface_and_the_pool_recovers(backend: FakeBackend, clock: Clock) -> None:
    backend.fail_starts = True
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock)
    manager.set_environment(env(poolsize=0))
    with pytest.raises(Exception, match="engine unreachable"):
        await manager.lease(fn())
    backend.fail_starts = False
    lease = await manager.lease(fn())
    assert lease.instance.container.id in backend.running


async def test_shutdown_removes_every_container(pool: PoolManager, backend: FakeBackend) -> None:
    await pool.lease(fn("a"))
    await pool.lease(fn("b"))
    await pool.shutdown()
    assert backend.running == {}
    with pytest.raises(Exception, match="shutting down"):
        await pool.lease(fn("c"))


async def test_status_counts(pool: PoolManager) -> None:
    await pool.lease(fn("a"))
    await pool.settle()
    status = pool.environment_status("nodejs")
    assert status["pool_ready"] == 3
    assert status["specialized"] == 1


async def test_concurrency_is_enforced_and_the_function_scales_out(pool: PoolManager, backend: FakeBackend) -> None:
    limited = fn(concurrency=1, max_instances=2, queue_timeout=30)
    calls = [asyncio.create_task(pool.lease(limited)) for _ in range(5)]
    await quiesce(pool)
    done = [c for c in calls if c.done()]
    assert len(done) == 2  # two instances, one call each; three wait
    assert pool.instance_count("hello") == 2
    assert {d.result().instance.inflight for d in done} == {1}
    first = done[0].result()
    first.release()
    await quiesce(pool)
    assert sum(c.done() for c in calls) == 3
    assert first.instance.inflight == 1  # the freed slot went to a waiting call
    for call in calls:
        if call.done():
            call.result().release()
    await asyncio.gather(*calls)
    assert backend.specializations == 2


async def test_at_max_instances_calls_get_429_after_the_queue_timeout(pool: PoolManager) -> None:
    limited = fn(concurrency=1, max_instances=1, queue_timeout=0)
    held = await pool.lease(limited)
    with pytest.raises(TooManyRequests) as refused:
        await pool.lease(limited)
    assert refused.value.headers == {"Retry-After": "1"}
    assert "max_instances (1)" in refused.value.message
    held.release()
    (await pool.lease(limited)).release()


async def test_least_loaded_instance_gets_the_call(pool: PoolManager) -> None:
    two = fn(concurrency=2, max_instances=2)
    a = await pool.lease(two)
    b = await pool.lease(two)
    assert a.instance is b.instance
    c = await pool.lease(two)  # the first is full: a second instance is made
    assert c.instance is not a.instance
    a.release()
    b.release()
    d = await pool.lease(two)
    assert d.instance is a.instance  # 0 in flight against 1


async def test_a_caller_that_gives_up_while_waiting_does_not_leak_a_slot(pool: PoolManager) -> None:
    one = fn(concurrency=1, max_instances=1, queue_timeout=30)
    held = await pool.lease(one)
    waiting = asyncio.create_task(pool.lease(one))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    held.release()
    assert held.instance.inflight == 0
    (await pool.lease(one)).release()


async def test_min_instances_are_made_and_never_reaped(pool: PoolManager, clock: Clock) -> None:
    warm = fn("warm", min_instances=2)
    pool.function_changed(warm)
    await pool.settle()
    assert pool.instance_count("warm") == 2
    clock.now += 10_000
    assert pool.reap_idle() == 0
    assert pool.instance_count("warm") == 2


async def test_idle_instances_are_removed_one_at_a_time(pool: PoolManager, clock: Clock) -> None:
    wide = fn(concurrency=1, max_instances=3)
    leases = [await pool.lease(wide) for _ in range(3)]
    for lease in leases:
        lease.release()
    clock.now += 121
    assert [pool.reap_idle() for _ in range(4)] == [1, 1, 1, 0]


async def test_a_function_idle_timeout_overrides_the_default(pool: PoolManager, clock: Clock) -> None:
    quick = fn(idle_timeout=5)
    (await pool.lease(quick)).release()
    clock.now += 6
    assert pool.reap_idle() == 1


async def test_an_instance_failing_its_health_check_is_replaced(
    pool: PoolManager, backend: FakeBackend, clock: Clock
) -> None:
    lease = await pool.lease(fn())
    lease.release()
    backend.gone.add(lease.instance.container.id)
    assert await pool.check_health() == 0  # just used: not due for a probe
    clock.now += HEALTH_INTERVAL
    assert await pool.check_health() == 0  # one failure is forgiven
    assert await pool.check_health() == 1
    await pool.settle()
    assert pool.instance_count("hello") == 0
    assert lease.instance.container.id not in backend.running
    fresh = await pool.lease(fn())
    assert fresh.instance is not lease.instance


async def test_a_failed_start_fails_the_waiting_calls_at_once(backend: FakeBackend, clock: Clock) -> None:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock)
    manager.set_environment(env(poolsize=0))
    backend.fail_starts = True
    calls = [asyncio.create_task(manager.lease(fn())) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all("engine unreachable" in str(r) for r in results)


async def test_deleting_a_function_fails_its_waiting_calls(pool: PoolManager) -> None:
    one = fn(concurrency=1, max_instances=1, queue_timeout=30)
    held = await pool.lease(one)
    waiting = asyncio.create_task(pool.lease(one))
    await asyncio.sleep(0)
    pool.remove_function("hello")
    with pytest.raises(Exception, match="was deleted"):
        await waiting
    held.release()
    await pool.settle()


async def test_a_pool_shrunk_while_containers_start_keeps_none_of_them(backend: FakeBackend, clock: Clock) -> None:
    backend.start_gate = asyncio.Event()
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock)
    manager.set_environment(env(poolsize=3))
    await asyncio.sleep(0)
    manager.set_environment(env(poolsize=0))
    backend.start_gate.set()
    await quiesce(manager)
    assert manager.ready_count("nodejs") == 0
    assert backend.running == {}


async def test_lease_now_takes_a_free_slot_without_waiting(pool: PoolManager) -> None:
    one = fn(concurrency=1, max_instances=1)
    assert pool.lease_now(one) is None  # no instance yet: the caller must use lease()
    first = await pool.lease(one)
    assert pool.lease_now(one) is None  # the only slot is taken
    first.release()
    again = pool.lease_now(one)
    assert again is not None and again.instance is first.instance
    assert again.instance.inflight == 1
    again.release()
    assert pool.lease_now(fn(concurrency=1, max_instances=1, revision=2)) is None  # a newer revision


async def test_calls_waiting_during_an_update_get_the_new_version(pool: PoolManager) -> None:
    v1 = fn(concurrency=1, max_instances=1, queue_timeout=30)
    held = await pool.lease(v1)
    waiting = asyncio.create_task(pool.lease(v1))
    await quiesce(pool)
    assert not waiting.done()
    v2 = dataclasses.replace(v1, revision=2)
    pool.function_changed(v2)
    await quiesce(pool)
    assert waiting.done()  # a v2 instance was made for it; the v1 call still runs
    assert waiting.result().instance.version == v2.version
    held.release()
    waiting.result().release()


async def test_a_function_whose_code_cannot_be_read_fails_its_calls_and_recovers(backend: FakeBackend) -> None:
    missing = True

    def load(_fn: Function) -> bytes:
        if missing:
            raise FileNotFoundError("blob gone")
        return b"code"

    manager = PoolManager(backend, load, idle_timeout=120)
    manager.set_environment(env())
    with pytest.raises(EngineUnavailable, match="blob gone"):
        await manager.lease(fn(max_instances=1))
    assert manager.function_status("hello")["starting"] == 0
    missing = False
    (await manager.lease(fn(max_instances=1))).release()


async def test_a_timed_out_instance_finishes_its_other_calls_and_is_stopped_once(
    pool: PoolManager, backend: FakeBackend
) -> None:
    stuck = await pool.lease(fn())
    other = await pool.lease(fn())
    assert stuck.instance is other.instance
    stuck.discard()  # the timeout
    stuck.release()
    await pool.settle()
    container = stuck.instance.container.id
    assert container in backend.running  # the other call still runs on it
    assert pool.instance_count("hello") == 0  # but no new call goes there
    fresh = await pool.lease(fn())
    assert fresh.instance is not stuck.instance
    other.release()
    await pool.settle()
    assert container not in backend.running
    assert backend.stops.count(container) == 1


async def test_upstream_failure_says_why_and_takes_the_instance_out(pool: PoolManager, backend: FakeBackend) -> None:
    lease = await pool.lease(fn())
    backend.exit_reasons[lease.instance.container.id] = "out of memory (limit 64 MB)"
    error = await pool.upstream_failed(lease, "connection reset")
    assert "out of memory (limit 64 MB)" in error.message
    assert pool.instance_count("hello") == 0
    lease.release()
    await pool.settle()
    assert lease.instance.container.id not in backend.running


async def test_a_recreated_function_is_not_served_the_deleted_ones_instances(pool: PoolManager) -> None:
    old = fn(revision=5)
    (await pool.lease(old)).release()
    pool.remove_function("hello")
    later = dataclasses.replace(fn(revision=1), created_at=datetime(2026, 6, 1, tzinfo=UTC))
    lease = await pool.lease(later)
    assert lease.instance.version == later.version
    # A call that matched the deleted function a moment ago does not win it back.
    stale = pool.lease_now(old)
    assert stale is not None and stale.instance is lease.instance
    stale.release()
    lease.release()


# -- bounds: queued calls, code reads, logs, shutdown ------------------------------------


async def test_calls_beyond_max_queued_calls_get_503(backend: FakeBackend, clock: Clock) -> None:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock, max_queued_calls=2)
    manager.set_environment(env())
    await manager.settle()
    one_a = fn("a", concurrency=1, max_instances=1, queue_timeout=30)
    one_b = fn("b", concurrency=1, max_instances=1, queue_timeout=30)
    held_a = await manager.lease(one_a)
    held_b = await manager.lease(one_b)
    waiting = [asyncio.create_task(manager.lease(one_a)), asyncio.create_task(manager.lease(one_b))]
    await quiesce(manager)
    assert manager.queued_calls() == 2  # across both functions
    with pytest.raises(Overloaded) as refused:
        await manager.lease(one_a)
    assert refused.value.status == 503
    assert refused.value.code == "overloaded"
    assert refused.value.headers == {"Retry-After": "1"}
    assert refused.value.message == "faasd holds 2 calls waiting for an instance, its limit; retry later"
    # A call with a free slot never waits, so the cap does not touch it.
    assert manager.lease_now(fn("a", concurrency=1, max_instances=1)) is None
    held_a.release()
    served = await asyncio.wait_for(waiting[0], 10)
    assert manager.queued_calls() == 1
    again = asyncio.create_task(manager.lease(one_a))  # room in the queue again
    await quiesce(manager)
    assert not again.done() and manager.queued_calls() == 2
    served.release()
    (await asyncio.wait_for(again, 10)).release()
    held_b.release()
    (await asyncio.wait_for(waiting[1], 10)).release()
    assert manager.queued_calls() == 0


async def test_a_waiting_call_that_gives_up_leaves_the_queue(backend: FakeBackend, clock: Clock) -> None:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock, max_queued_calls=1)
    manager.set_environment(env())
    one = fn(concurrency=1, max_instances=1, queue_timeout=30)
    held = await manager.lease(one)
    waiting = asyncio.create_task(manager.lease(one))
    await quiesce(manager)
    assert manager.queued_calls() == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert manager.queued_calls() == 0
    held.release()


async def test_code_is_read_off_the_event_loop_and_cached(backend: FakeBackend, clock: Clock) -> None:
    reads: list[int] = []

    def load(_fn: Function) -> bytes:
        reads.append(threading.get_ident())
        return b"code"

    manager = PoolManager(backend, load, idle_timeout=120, clock=clock)
    manager.set_environment(env())
    wide = fn(concurrency=1, max_instances=2)
    first = await manager.lease(wide)
    second = await manager.lease(wide)  # a second instance, the same code
    assert first.instance is not second.instance
    assert len(reads) == 1
    assert reads[0] != threading.get_ident()
    other = dataclasses.replace(fn("other"), code_sha256="sha-other")
    (await manager.lease(other)).release()
    assert len(reads) == 2
    first.release()
    second.release()


async def test_what_an_instance_prints_goes_to_the_log_and_shutdown_flushes_it(
    backend: FakeBackend, clock: Clock, tmp_path: Path
) -> None:
    logs = FunctionLogs(tmp_path / "logs")
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock, logs=logs)
    manager.set_environment(env())
    await manager.settle()
    backend.printed["c1"] = [f"line {n}" for n in range(200)]
    backend.exit_reasons["c1"] = "exited with code 1"
    lease = await manager.lease(fn())
    assert lease.instance.container.id == "c1"
    await manager.shutdown()
    lines = (tmp_path / "logs" / "hello.log").read_text().splitlines()
    assert [line.split(" ", 3)[3] for line in lines] == [f"line {n}" for n in range(200)] + [
        "instance stopped: exited with code 1"
    ]
    assert lines[0].startswith("2026-01-01T00:00:00.000Z c1 stdout ")


async def test_shutdown_leaves_no_task_of_the_pool_behind(backend: FakeBackend, clock: Clock, tmp_path: Path) -> None:
    logs = FunctionLogs(tmp_path / "logs")
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock, logs=logs)
    manager.set_environment(env())
    backend.start_gate = asyncio.Event()  # containers still starting at shutdown
    backend.printed["c1"] = ["hello"]
    calls = [asyncio.create_task(manager.lease(fn(name))) for name in ("a", "b")]
    await asyncio.sleep(0)
    logs.append("a", ["queued at shutdown"])
    shutting = asyncio.create_task(manager.shutdown())
    backend.start_gate.set()
    await asyncio.wait_for(shutting, 10)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, FaasdError) for r in results)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []
    assert backend.running == {}
    assert (tmp_path / "logs" / "a.log").read_text() == "queued at shutdown\n"


async def test_an_instance_that_died_under_a_call_says_why_in_the_log_even_once_removed(
    backend: FakeBackend, clock: Clock, tmp_path: Path
) -> None:
    logs = FunctionLogs(tmp_path / "logs")
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock, logs=logs)
    manager.set_environment(env())
    await manager.settle()
    streams_end = asyncio.Event()

    async def logs_until_gone(container: Container) -> AsyncIterator[LogLine]:
        yield LogLine("2026-01-01T00:00:00.000Z", "stdout", f"hello from {container.id}")
        await streams_end.wait()  # the engine ends the stream some time after the container died

    backend.logs = logs_until_gone  # type: ignore[method-assign]
    died = await manager.lease(fn("died"))
    reaped = await manager.lease(fn("reaped"))
    backend.exit_reasons[died.instance.container.id] = "out of memory (limit 64 MB)"
    await manager.upstream_failed(died, "connection reset")
    died.release()  # faasd removes the dead container before its log stream ends
    reaped.release()
    clock.now += 121
    assert manager.reap_idle() == 1
    await manager.settle()
    assert died.instance.stopped and reaped.instance.stopped
    streams_end.set()
    await manager.shutdown()
    assert (await logs.read("died"))[-1].endswith(" faasd instance stopped: out of memory (limit 64 MB)")
    assert [line.split(" ", 3)[3] for line in await logs.read("reaped")] == [
        f"hello from {reaped.instance.container.id}"
    ]


async def test_every_caller_that_waited_for_a_new_instance_is_cold_and_later_ones_warm(pool: PoolManager) -> None:
    f = fn()
    leases = await asyncio.gather(*(pool.lease(f) for _ in range(5)))
    assert len({id(lease.instance) for lease in leases}) == 1
    assert [lease.cold for lease in leases] == [True] * 5  # all five waited for it to be made
    for lease in leases:
        lease.release()
    warm = pool.lease_now(f)
    assert warm is not None and not warm.cold
    warm.release()
    fc = pool.calls.functions[f.name]
    assert fc.cold_kinds == {"pool-warm": 1, "no-pool": 0}
    assert fc.cold_seconds["pool-warm"].count == 1


async def test_instance_seconds_run_from_service_to_removal_and_are_taken_once(pool: PoolManager, clock: Clock) -> None:
    f = fn()
    lease = await pool.lease(f)
    clock.now += 10
    assert pool.take_instance_seconds() == {f.name: 10}
    clock.now += 5
    pool.remove_function(f.name)  # busy: it lives until its call ends
    clock.now += 2
    lease.release()
    await quiesce(pool)
    clock.now += 100  # gone: no more seconds
    assert pool.take_instance_seconds() == {f.name: 7}
    assert pool.take_instance_seconds() == {}


async def test_calls_ending_after_a_delete_count_for_the_deleted_function(pool: PoolManager) -> None:
    f = fn(memory_mb=512)
    lease = await pool.lease(f)
    pool.remove_function(f.name)
    pool.calls.record(f.name, 200, 0.1, 0.0)  # the call in flight ends after the delete
    lease.release()
    assert f.name not in pool.calls.functions  # its series have ended
    deleted = pool.calls.deleted[f.name]
    assert deleted.calls == 1 and deleted.memory_mb == 512
    pool.function_changed(fn())  # created again: counts start from zero
    assert f.name not in pool.calls.deleted and [n for n, _ in pool.calls.gone] == [f.name]


async def test_a_newdeploy_function_gets_a_container_started_for_it_not_a_pooled_one(
    pool: PoolManager, backend: FakeBackend
) -> None:
    ready_before = pool.ready_count("nodejs")
    lease = await pool.lease(fn(executor="newdeploy"))
    assert lease.cold
    assert pool.ready_count("nodejs") == ready_before  # the pool was not touched
    assert pool.calls.functions["hello"].cold_kinds == {"pool-warm": 0, "no-pool": 1}
    lease.release()


# -- bursts beyond the pool: the start gate, and pools that follow the recent bursts -------------------


async def test_the_start_gate_lets_urgent_starts_before_background_ones() -> None:
    gate = StartGate(2)
    order: list[str] = []

    async def start(name: str, urgent: bool, hold: asyncio.Event) -> None:
        await gate.acquire(urgent)
        order.append(name)
        try:
            await hold.wait()
        finally:
            gate.release(urgent)

    hold = asyncio.Event()
    # A refill alone runs, but never in the last slot: the second waits although one slot is free.
    b1 = asyncio.create_task(start("b1", False, hold))
    b2 = asyncio.create_task(start("b2", False, hold))
    await asyncio.sleep(0)
    assert order == ["b1"] and gate.running == 1
    # A start a call waits for takes the free slot at once, and holds back every refill.
    u1 = asyncio.create_task(start("u1", True, hold))
    u2 = asyncio.create_task(start("u2", True, hold))
    await asyncio.sleep(0)
    assert order == ["b1", "u1"] and gate.waiting() == (1, 1)
    hold.set()
    await asyncio.gather(b1, b2, u1, u2)
    assert order == ["b1", "u1", "u2", "b2"]
    assert gate.running == 0 and gate.waiting() == (0, 0)


async def test_a_cancelled_start_gives_its_place_back() -> None:
    gate = StartGate(1)
    await gate.acquire(True)
    waiting = asyncio.create_task(gate.acquire(True))
    refill = asyncio.create_task(gate.acquire(False))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.release(True)
    await asyncio.wait_for(refill, 1)  # nothing urgent is left: the refill gets the slot
    assert gate.running == 1
    gate.release(False)
    assert gate.running == 0


async def test_a_burst_beyond_the_pool_starts_its_containers_before_the_refills(
    backend: FakeBackend, clock: Clock
) -> None:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=120, clock=clock, start_concurrency=2)
    manager.set_environment(env(poolsize=2))
    await manager.settle()
    backend.began.clear()
    backend.start_gate = asyncio.Event()
    calls = [asyncio.create_task(manager.lease(fn(f"f{i}"))) for i in range(6)]
    for _ in range(10):
        await asyncio.sleep(0)
    backend.start_gate.set()
    leases = await asyncio.gather(*calls)
    await quiesce(manager)
    # Two functions took the pooled containers; the other four started theirs before any refill did.
    assert backend.began == ["f2", "f3", "f4", "f5", "", ""]
    assert manager.ready_count("nodejs") == 2
    for lease in leases:
        lease.release()
    await manager.shutdown()


def budget_pool(backend: FakeBackend, clock: Clock, budget_mb: int, **kwargs: Any) -> PoolManager:
    return PoolManager(
        backend,
        lambda f: b"code",
        idle_timeout=60,
        clock=clock,
        pool_memory_budget_mb=budget_mb,
        container_memory_mb=256,
        **kwargs,
    )


async def burst(manager: PoolManager, environment: str, count: int, prefix: str) -> None:
    leases = await asyncio.gather(*(manager.lease(fn(f"{prefix}{i}", environment)) for i in range(count)))
    for lease in leases:
        lease.release()


async def test_a_pool_grows_after_a_burst_within_its_budget_and_shrinks_when_unused(
    backend: FakeBackend, clock: Clock
) -> None:
    manager = budget_pool(backend, clock, budget_mb=1024)  # 4 extra containers of 256 MB
    manager.set_environment(env(poolsize=2))
    await manager.settle()
    await burst(manager, "nodejs", 5, "a")
    await quiesce(manager)
    # 5 taken at once from a pool of 2: 3 more wanted, all within the budget.
    assert manager.environment_status("nodejs")["pool_target"] == 5
    assert manager.ready_count("nodejs") == 5
    # The next burst of 5 finds them all ready: no container started for one of its functions.
    began = len(backend.began)
    await burst(manager, "nodejs", 5, "b")
    await quiesce(manager)
    assert set(backend.began[began:]) == {""}  # only refills
    # A bigger burst wants more than the budget holds: the pool stops at poolsize + 4.
    await burst(manager, "nodejs", 9, "c")
    await quiesce(manager)
    assert manager.environment_status("nodejs")["pool_target"] == 6
    assert manager.ready_count("nodejs") == 6
    # Unused for the window (the idle timeout, 60 s): the extras go, the pool's own size stays.
    clock.now += 61
    removed_before = len(backend.stops)
    manager.fill_all()
    await quiesce(manager)
    assert manager.ready_count("nodejs") == 2
    assert manager.environment_status("nodejs")["pool_target"] == 2
    assert len(backend.stops) - removed_before == 4
    await manager.shutdown()
    assert backend.running == {}


async def test_the_pools_never_hold_more_than_the_budget_even_while_starting(
    backend: FakeBackend, clock: Clock
) -> None:
    manager = budget_pool(backend, clock, budget_mb=768)  # 3 extra containers in all
    manager.set_environment(env("nodejs", poolsize=1))
    manager.set_environment(env("python", poolsize=1))
    await manager.settle()
    backend.start_gate = asyncio.Event()
    seen: list[int] = []
    running = True

    async def watch() -> None:
        while running:
            sizes = manager.pool_sizes()
            seen.append(sum(max(0, ready + starting - 1) for _t, ready, starting in sizes.values()) * 256)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    calls = [asyncio.create_task(manager.lease(fn(f"n{i}", "nodejs"))) for i in range(6)]
    calls += [asyncio.create_task(manager.lease(fn(f"p{i}", "python"))) for i in range(3)]
    for _ in range(20):
        await asyncio.sleep(0)
    backend.start_gate.set()
    leases = await asyncio.gather(*calls)
    await quiesce(manager)
    running = False
    await watcher
    # Demand: nodejs 6 - 1 = 5 extra, python 3 - 1 = 2 extra; 3 allowed, shared in proportion.
    targets = {name: manager.environment_status(name)["pool_target"] for name in ("nodejs", "python")}
    assert targets == {"nodejs": 1 + 2, "python": 1 + 1}
    assert max(seen) <= 768
    assert manager.environment_status("nodejs")["pool_budget_mb"] == 768
    for lease in leases:
        lease.release()
    await manager.shutdown()
    assert backend.running == {}


async def test_without_a_budget_a_pool_keeps_its_size(pool: PoolManager, backend: FakeBackend) -> None:
    await burst(pool, "nodejs", 8, "a")
    await quiesce(pool)
    assert pool.environment_status("nodejs")["pool_target"] == 3
    assert pool.ready_count("nodejs") == 3


async def test_a_pool_of_size_zero_gets_no_extras_and_a_size_set_by_hand_starts_over(
    backend: FakeBackend, clock: Clock
) -> None:
    manager = budget_pool(backend, clock, budget_mb=4096)
    manager.set_environment(env(poolsize=0))
    await burst(manager, "nodejs", 4, "a")
    await quiesce(manager)
    assert manager.ready_count("nodejs") == 0
    manager.set_environment(env(poolsize=1))
    await quiesce(manager)
    await burst(manager, "nodejs", 4, "b")
    await quiesce(manager)
    assert manager.environment_status("nodejs")["pool_target"] == 4
    # PATCH poolsize: that size, at once, until new demand.
    manager.set_environment(env(poolsize=2))
    await quiesce(manager)
    assert manager.environment_status("nodejs")["pool_target"] == 2
    assert manager.ready_count("nodejs") == 2
    await manager.shutdown()


async def test_shutdown_removes_the_extras_and_the_containers_still_starting(
    backend: FakeBackend, clock: Clock
) -> None:
    manager = budget_pool(backend, clock, budget_mb=2048)
    manager.set_environment(env(poolsize=1))
    await manager.settle()
    await burst(manager, "nodejs", 6, "a")
    backend.start_gate = asyncio.Event()  # the refills toward the grown target hang
    for _ in range(10):
        await asyncio.sleep(0)
    shutdown = asyncio.create_task(manager.shutdown())
    await asyncio.sleep(0)
    backend.start_gate.set()
    await shutdown
    assert backend.running == {}


async def test_idle_instances_are_probed_once_per_interval_a_few_at_a_time(backend: FakeBackend, clock: Clock) -> None:
    manager = PoolManager(backend, lambda f: b"code", idle_timeout=3600, clock=clock)
    manager.set_environment(env(poolsize=0))
    for i in range(30):
        (await manager.lease(fn(f"f{i}"))).release()
    probes: list[str] = []
    in_flight = peak = 0
    healthy = backend.healthy

    async def counting(container: Container) -> bool:
        nonlocal in_flight, peak
        probes.append(container.id)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return await healthy(container)

    backend.healthy = counting  # type: ignore[method-assign]
    await manager.check_health()
    assert probes == []  # every instance just answered a call
    clock.now += HEALTH_INTERVAL
    await manager.check_health()
    assert len(probes) == 30 and peak <= 8
    await manager.check_health()  # probed a moment ago: not again
    assert len(probes) == 30
    # One that answers a call is not probed when the others are.
    clock.now += 10
    (await manager.lease(fn("f0"))).release()
    clock.now += HEALTH_INTERVAL - 10
    await manager.check_health()
    assert len(probes) == 30 + 29
    await manager.shutdown()
