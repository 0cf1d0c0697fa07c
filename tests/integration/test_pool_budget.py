"""Pools that follow bursts within a memory budget, on the real engine.

The pool manager runs in the test's own process on a DockerBackend (its own
owner label, the firewall off: nothing here is about isolation) with a clock
the test moves, so that "unused for the idle timeout" needs no waiting; and a
real faasd is killed with -9 and stopped with SIGTERM with extras in its
pools. No timing is asserted; every wait is bounded polling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import docker
import pytest
import requests

from faasd.core.entities import Environment, Function
from faasd.core.settings import Settings
from faasd.engines.docker import DockerBackend
from faasd.pool.manager import PoolManager
from tests.integration.harness import FaasdProcess, wait_for

HELLO_JS = 'module.exports = async () => "hello";\n'
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MEMORY_MB = 128  # each pooled container's limit: the budget counts this much per extra
WINDOW = 60.0  # the pool's idle timeout: extras whose demand is older go


class MovableClock:
    """time.monotonic(), plus whatever the test adds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def hello(name: str) -> Function:
    return Function(name, "nodejs", f"{name}.js", "", 30, "hello-sha", len(HELLO_JS), 1, NOW, NOW)


def owned(engine: docker.DockerClient, owner: str) -> list[str]:
    found = engine.api.containers(all=True, filters={"label": f"faasd.owner={owner}"})
    return [str(c["Id"]) for c in found if c.get("State") not in ("removing", "exited", "dead")]


async def until(condition: Callable[[], bool], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def owner(engine: docker.DockerClient) -> Iterator[str]:
    label = f"budget-{secrets.token_hex(4)}"
    yield label
    for cid in owned(engine, label):  # whatever a failed test left
        engine.api.remove_container(cid, force=True, v=True)


async def test_a_burst_grows_the_pool_within_its_budget_and_unused_extras_go(
    engine: docker.DockerClient, owner: str, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path, owner_label=owner, firewall="off", container_memory_mb=MEMORY_MB)
    session = aiohttp.ClientSession()
    backend = DockerBackend(settings, session)
    clock = MovableClock()
    budget_mb = 2 * MEMORY_MB  # two extra containers, all environments together
    pool = PoolManager(
        backend,
        lambda fn: HELLO_JS.encode(),
        idle_timeout=WINDOW,
        clock=clock,
        pool_memory_budget_mb=budget_mb,
        container_memory_mb=MEMORY_MB,
    )
    held: list[int] = []  # the extras' memory at every look, pooled or starting

    def look() -> int:
        poolsize = 1
        _target, ready, starting = pool.pool_sizes()["nodejs"]
        held.append(max(0, ready + starting - poolsize) * MEMORY_MB)
        return ready

    try:
        await backend.prepare()
        await backend.images.start()
        pool.set_environment(Environment("nodejs", "faasd/runtime-nodejs:latest", 1, NOW, NOW))
        await until(lambda: look() == 1, "the pool of 1 to fill")

        # A burst of 4 first calls: 3 beyond the pool, 2 allowed by the budget.
        leases = await asyncio.gather(*(pool.lease(hello(f"f{i}")) for i in range(4)))
        for lease in leases:
            lease.release()
        await until(lambda: look() == 3 and pool.pool_sizes()["nodejs"][2] == 0, "the pool to grow to 1 + 2")
        assert pool.environment_status("nodejs")["pool_target"] == 3
        assert max(held) <= budget_mb
        # On the engine: the 4 instances and the 3 pooled containers, nothing more.
        await until(lambda: len(owned(engine, owner)) == 4 + 3, "4 instances and 3 pooled containers")

        # The next burst takes the ready ones: none is started on its path, and still within the budget.
        starts_before = sum(ok for ok, _failed in pool.container_starts().values())
        leases = await asyncio.gather(*(pool.lease(hello(f"g{i}")) for i in range(3)))
        assert all(lease.cold for lease in leases)
        assert sum(ok for ok, _failed in pool.container_starts().values()) == starts_before
        for lease in leases:
            lease.release()
        await until(lambda: look() == 3 and pool.pool_sizes()["nodejs"][2] == 0, "the pool to refill to 3")
        assert max(held) <= budget_mb

        # Unused for the idle timeout: the extras are removed from the engine; the pool keeps its 1.
        clock.offset += WINDOW + 1
        pool.fill_all()
        await until(lambda: look() == 1, "the extras to leave the pool")
        await until(lambda: len(owned(engine, owner)) == 7 + 1, "the extras' containers to be removed")
        assert pool.environment_status("nodejs")["pool_target"] == 1
    finally:
        await pool.shutdown()
        left = await backend.count_managed()
        await backend.aclose()
        await session.close()
    assert left == 0  # shutdown removed instances, pooled containers and extras


def test_a_faasd_with_grown_pools_leaves_no_container_after_kill_9_and_sigterm(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = start_faasd(state_dir=state, default_poolsize=1, pool_memory_budget_mb=1024)
    assert first.env_status("nodejs").get("pool_budget_mb") == 1024, "--pool-memory-budget-mb reaches the pool"
    names = [f"grow-{i}" for i in range(4)]
    for name in names:
        first.create_function(name, "nodejs", HELLO_JS)
    with concurrent.futures.ThreadPoolExecutor(len(names)) as workers:
        answers = list(workers.map(lambda n: requests.get(f"{first.url}/function/{n}", timeout=60), names))
    assert [a.status_code for a in answers] == [200] * len(names)

    def grown() -> bool:
        nodejs = first.env_status("nodejs")
        return bool(nodejs["pool_target"] > 1 and nodejs["pool_ready"] == nodejs["pool_target"])

    wait_for(grown, "the nodejs pool to grow past its size", timeout=90)
    target = first.env_status("nodejs")["pool_target"]
    assert (target - 1) * 256 <= 1024
    orphans = {c.id for c in first.containers()}
    assert len(orphans) >= len(names) + target  # instances, and the grown pool
    first.kill9()

    second = start_faasd(state_dir=state, default_poolsize=1, pool_memory_budget_mb=1024)
    # Swept at the start: nothing of the killed faasd is left; the new one's pools are at their size.
    wait_for(lambda: not orphans & {c.id for c in second.containers()}, "the orphans to be removed", timeout=30)
    assert second.env_status("nodejs")["pool_target"] == 1
    assert second.stop() == 0
    wait_for(lambda: second.containers() == [], "every container to be removed at SIGTERM", timeout=30)
