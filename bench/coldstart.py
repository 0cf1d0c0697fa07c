"""Cold starts: a new function's first call, end to end through faasd.

- pool-warm: the environment's pool is full when the function is created, so
  the first call costs one specialization (POST of the code, module load).
- no-pool: pool size 0, so the first call also waits for a container start;
  measured interleaved with a bare container start of the same image (create,
  start, poll GET /healthz until 200) in the same run.

Between samples the suite waits until faasd's pools are full again and the
previous sample's container is gone, so every sample starts from the same state.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from bench.common import HELLO, BenchError, Client, Deadline, Summary, ms, wait_for
from bench.engine import RUNTIME_PORT, Engine
from bench.faasd_proc import Faasd

SETTLE_TIMEOUT = 30.0


@dataclass(frozen=True)
class ColdResult:
    environment: str
    faasd: Summary
    bare: Summary | None = None  # only for no-pool


def first_call(faasd: Faasd, admin: Client, calls: Client, env: str, name: str) -> float:
    """Create ``name`` and time its first call; return milliseconds."""
    admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, expect=201)
    began = time.perf_counter()
    status, body = calls.request("GET", f"/function/{name}")
    elapsed = ms(time.perf_counter() - began)
    if status != 200 or body.strip() != b"hello":
        raise BenchError(f"first call of {name}: {status} {body[:200]!r}")
    return elapsed


def delete_function(admin: Client, name: str) -> None:
    status, raw = admin.request("DELETE", f"/v1/functions/{name}?force=true")
    if status not in (200, 204, 404):
        raise BenchError(f"DELETE function {name}: {status} {raw[:200]!r}")


def settle(faasd: Faasd, admin: Client, engine: Engine, containers: int, full: bool) -> None:
    """Wait until the pools are full (when ``full``) and faasd runs ``containers`` containers."""
    if full:
        wait_for(
            lambda: faasd.pools_full(admin, ("nodejs", "python")),
            SETTLE_TIMEOUT,
            "pools to refill",
            interval=0.01,
        )
    if not engine.wait_owned_count(faasd.owner, containers, SETTLE_TIMEOUT):
        left = [f"{(c.get('Names') or ['?'])[0]} ({c.get('State')})" for c in engine.owned(faasd.owner)]
        raise BenchError(
            f"faasd still runs more than {containers} containers after {SETTLE_TIMEOUT:.0f} s: {', '.join(left)}"
        )


def pool_warm(faasd: Faasd, engine: Engine, env: str, samples: int, run_id: str, limit: float) -> ColdResult:
    deadline = Deadline(limit, f"pool-warm cold starts of {env}")
    admin, calls = faasd.client(), faasd.client()
    settle(faasd, admin, engine, 10**6, full=True)
    base = len(engine.owned(faasd.owner))
    times: list[float] = []
    try:
        for i in range(samples):
            if deadline.passed():  # report the samples taken so far (n is in the table)
                break
            settle(faasd, admin, engine, base, full=True)
            name = f"pw-{env[:2]}-{run_id}-{i}"
            try:
                times.append(first_call(faasd, admin, calls, env, name))
            finally:
                delete_function(admin, name)
    finally:
        admin.close()
        calls.close()
    return ColdResult(env, Summary.of(times))


def bare_start(engine: Engine, image: str, timeout: float = 20.0) -> float:
    """A container start of ``image`` until its first 200 on /healthz; milliseconds."""
    began = time.perf_counter()
    container = engine.start_runtime(image)
    try:
        address = engine.address(container)
        if not address:
            raise BenchError(f"bare container of {image} has no address on {engine.network}")
        deadline = Deadline(timeout, f"bare container of {image} to answer")
        while True:
            conn = http.client.HTTPConnection(address, RUNTIME_PORT, timeout=1)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return ms(time.perf_counter() - began)
            except OSError:
                pass
            finally:
                conn.close()
            deadline.check()
            time.sleep(0.002)
    finally:
        engine.remove(container)


def no_pool(
    faasd: Faasd, engine: Engine, images: dict[str, str], samples: int, run_id: str, limit: float
) -> list[ColdResult]:
    """Pool size 0 for every environment, then faasd and bare starts interleaved."""
    deadline = Deadline(limit, "no-pool cold starts")
    admin, calls = faasd.client(), faasd.client()
    envs = tuple(images)
    faasd_times: dict[str, list[float]] = {env: [] for env in envs}
    bare_times: dict[str, list[float]] = {env: [] for env in envs}
    try:
        # Shrink only once no container is starting: one that finishes starting after
        # the shrink would land in the pool anyway (seen with faasd 0.1.0).
        settle(faasd, admin, engine, 10**6, full=True)
        for env in envs:
            admin.json("PATCH", f"/v1/environments/{env}", {"poolsize": 0})

        def drained() -> bool:
            states = [faasd.environment(admin, e) for e in envs]
            return all(s.get("pool_ready") == 0 and s.get("pool_starting", 0) == 0 for s in states)

        wait_for(drained, SETTLE_TIMEOUT, "pools to drain")
        # The caller deleted every function first: with empty pools faasd runs no container.
        base = 0
        settle(faasd, admin, engine, base, full=False)
        for i in range(samples):
            if deadline.passed():  # report the samples taken so far (n is in the table)
                break
            for env in envs:
                name = f"np-{env[:2]}-{run_id}-{i}"
                try:
                    faasd_times[env].append(first_call(faasd, admin, calls, env, name))
                finally:
                    delete_function(admin, name)
                settle(faasd, admin, engine, base, full=False)
                bare_times[env].append(bare_start(engine, images[env]))
    finally:
        admin.close()
        calls.close()
    return [ColdResult(env, Summary.of(faasd_times[env]), Summary.of(bare_times[env])) for env in envs]
