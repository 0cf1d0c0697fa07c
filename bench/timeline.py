"""Issue 5's burst, watched: containers and faasd's memory over time.

20 new functions (concurrency 5, max_instances 2), 10 concurrent first calls
each, pools of 3; the number of faasd's containers and its RSS are sampled
every 0.25 s from the first call until the idle instances are reaped (idle
timeout 5 s) and only the pools remain. Bounded: 200 calls, 90 s.

    .venv/bin/python -m bench.timeline
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import aiohttp

from bench.common import ENVIRONMENTS, HELLO, Summary, ms, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd

FUNCTIONS, CALLS_EACH, POOL, IDLE, BOUND = 20, 10, 3, 5.0, 90.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 1024


async def fire(url: str, names: list[str]) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:

        async def call(name: str) -> None:
            nonlocal errors
            began = time.perf_counter()
            async with session.get(f"{url}/function/{name}", timeout=aiohttp.ClientTimeout(total=60)) as answer:
                errors += answer.status != 200
                await answer.read()
            latencies.append(ms(time.perf_counter() - began))

        began = time.perf_counter()
        await asyncio.gather(*(call(n) for n in names for _ in range(CALLS_EACH)))
    return ms(time.perf_counter() - began), latencies, errors


def main() -> None:
    faasd = Faasd("", poolsize=POOL, idle_timeout=IDLE)
    engine = Engine(uuid.uuid4().hex[:6])
    samples: list[tuple[float, int, float]] = []
    stop = threading.Event()
    try:
        faasd.start()
        admin = faasd.client()
        wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 60, "full pools")
        names = [f"tl-{i}" for i in range(FUNCTIONS)]
        for i, name in enumerate(names):
            env = ENVIRONMENTS[i % 2]
            body = {"name": name, "environment": env, "code": HELLO[env], "concurrency": 5, "max_instances": 2}
            admin.json("POST", "/v1/functions", body, expect=201)
        t0 = time.monotonic()

        def sample() -> None:
            while not stop.is_set() and time.monotonic() - t0 < BOUND:
                samples.append((time.monotonic() - t0, len(engine.owned(faasd.owner)), rss_mib(faasd.pid)))
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        completion, latencies, errors = asyncio.run(fire(faasd.url, names))
        wait_for(lambda: len(engine.owned(faasd.owner)) == 2 * POOL, BOUND, "only the pools to remain", 0.25)
        time.sleep(0.5)
        stop.set()
        sampler.join()
        summary = Summary.of(latencies)
        print(
            f"burst: {len(latencies)} calls, {errors} errors, completion {completion:.0f} ms, "
            f"p50 {summary.p50:.0f} ms, p99 {summary.p99:.0f} ms"
        )
        print("t (s)   containers   faasd RSS (MiB)")
        shown = -1.0
        for t, count, rss in samples:
            if t - shown >= 1.0 or t == samples[-1][0]:
                print(f"{t:5.1f}   {count:10d}   {rss:15.1f}")
                shown = t
        print(f"peak containers {max(c for _, c, _ in samples)}, peak RSS {max(r for _, _, r in samples):.1f} MiB")
    finally:
        stop.set()
        faasd.stop()
        engine.cleanup(faasd.owner)
        engine.close()
        faasd.close()


if __name__ == "__main__":
    main()
