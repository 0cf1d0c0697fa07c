"""Burst: many concurrent first calls across new functions, more functions than the pools hold.

The functions are created first (half nodejs, half python) while the pools are
full; then every call is sent at once. Completion time is from the first send
to the last answer; an error is any answer other than 200 "hello" or a failed
request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.common import ENVIRONMENTS, HELLO, Summary, ms, wait_for
from bench.faasd_proc import Faasd

CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class BurstResult:
    functions: int
    calls: int
    completion_ms: float
    latency: Summary
    errors: int
    first_error: str


async def _fire(url: str, names: list[str], per_function: int, limit: float) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = asyncio.Event()

        async def call(name: str) -> None:
            await start.wait()
            began = time.perf_counter()
            try:
                async with session.get(f"{url}/function/{name}") as response:
                    body = await response.read()
                    if response.status != 200 or body.strip() != b"hello":
                        errors.append(f"{name}: {response.status} {body[:120]!r}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"{name}: {exc!r}")
            latencies.append(ms(time.perf_counter() - began))

        tasks = [asyncio.ensure_future(call(name)) for name in names for _ in range(per_function)]
        await asyncio.sleep(0)
        began = time.perf_counter()
        start.set()
        _done, pending = await asyncio.wait(tasks, timeout=limit)
        for task in pending:
            task.cancel()
            errors.append("a call did not finish within the burst's time bound")
        completion = ms(time.perf_counter() - began)
    return completion, latencies, errors


def burst(faasd: Faasd, run_id: str, functions: int, calls: int, limit: float = 120.0) -> BurstResult:
    admin = faasd.client()
    names = [f"burst-{run_id}-{i}" for i in range(functions)]
    try:
        wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 60, "pools to fill before the burst", 0.05)
        for i, name in enumerate(names):
            env = ENVIRONMENTS[i % len(ENVIRONMENTS)]
            admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, expect=201)
        wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 60, "pools to fill before the burst", 0.05)
        per_function = max(1, calls // functions)
        completion, latencies, errors = asyncio.run(_fire(faasd.url, names, per_function, limit))
    finally:
        for name in names:
            admin.request("DELETE", f"/v1/functions/{name}?force=true")
        admin.close()
    return BurstResult(
        functions,
        per_function * functions,
        completion,
        Summary.of(latencies),
        len(errors),
        errors[0] if errors else "",
    )
