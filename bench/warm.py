"""Warm path: one hello function under load through faasd, directly, and through a minimal proxy.

All three targets are the same runtime container (the one faasd specialized
for the function), loaded by the same generator in the same run:

- direct: the container's own address on the Docker network;
- proxy: bench/miniproxy.py (aiohttp, one pooled ClientSession) in front of it;
- faasd: a route of the function on faasd's port.

Each target gets a 1 s warm-up, then ``rounds`` rounds of a loaded run
(throughput, latency under load) and a one-connection run (latency without
queueing, the "added latency" figure); each figure is the median over rounds.
faasd and direct also get a loaded run at ``HIGH_CONNECTIONS`` (c200) per
round (the function's concurrency is raised so that one instance takes them
all, as the container does for "direct"); their c50 runs keep wrk's whole
latency distribution
(:func:`latency_distribution`). faasd's own CPU (user + sys from
``/proc/<pid>/stat``) is read around each of its loaded runs: over the rounds,
divided by the requests wrk completed, it is faasd's CPU per call
(``WarmResult.faasd_cpu_us``, by connections).

:func:`extra_rows` gives the rows these add to the table (c200 req/s and
latency, CPU per request), as (metric, value, target, met) tuples.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import subprocess
import sys
from dataclasses import dataclass, field

from bench import loadgen
from bench.common import HELLO, BenchError, Client, free_port, wait_for
from bench.engine import RUNTIME_PORT, Engine
from bench.faasd_proc import Faasd
from bench.memory import RssSampler
from bench.metrics_cost import cpu_seconds

FILENAMES = {"nodejs": "hello.js", "python": "hello.py"}
HIGH_CONNECTIONS = 200  # the second loaded run, faasd and direct only
HIGH_TARGETS = ("direct", "faasd")
DISTRIBUTION_TARGETS = ("direct", "faasd")  # whose c50 runs keep wrk's latency distribution
# Issue 16's targets: faasd's CPU per call, and its throughput against direct at c50 and c200.
CPU_US_TARGET = 30.0
RATIO_TARGETS = {50: 0.85, HIGH_CONNECTIONS: 0.75}


@dataclass(frozen=True)
class TargetResult:
    name: str
    loaded: loadgen.Load
    unloaded: loadgen.Load


@dataclass(frozen=True)
class WarmResult:
    environment: str
    direct_source: str  # whose container "direct" is
    targets: dict[str, TargetResult]
    faasd_peak_rss_mib: float
    connections: int
    # HIGH_TARGETS loaded at high_connections: the median over the rounds.
    high: dict[str, loadgen.Load] = field(default_factory=dict)
    high_connections: int = HIGH_CONNECTIONS
    # connections -> faasd's CPU seconds (user + sys) over its loaded runs / the requests completed, in us.
    faasd_cpu_us: dict[int, float] = field(default_factory=dict)


def latency_distribution(result: WarmResult) -> dict[str, list[tuple[float, float]]]:
    """target -> (percentile, ms) points of its latency under load (c``connections``, median per
    percentile over the rounds): faasd and direct, for a plot of the warm path's distribution."""
    return {name: list(t.loaded.distribution) for name, t in result.targets.items() if t.loaded.distribution}


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def extra_rows(result: WarmResult) -> list[tuple[str, str, str, bool | None]]:
    """The rows the c200 runs and the CPU readings add: (metric, value, target, met)."""
    rows: list[tuple[str, str, str, bool | None]] = []
    env, high = result.environment, result.high_connections
    direct = result.high.get("direct")
    for name, label in (("direct", "direct to the container"), ("faasd", "faasd")):
        load = result.high.get(name)
        if load is None or direct is None:
            continue
        ratio = _ratio(load.rps, direct.rps)
        is_faasd = name == "faasd"
        limit = RATIO_TARGETS[high]
        rows.append(
            (
                f"3. warm {env} hello, {label}: req/s (c{high})",
                f"{load.rps:,.0f} = {ratio:.2f} x direct" + (f", {load.errors} errors" if load.errors else ""),
                f">= {limit:g} x direct" if is_faasd else "reference",
                (ratio >= limit if not math.isnan(ratio) else None) if is_faasd else None,
            )
        )
        rows.append(
            (
                f"3. warm, {label}: p50 / p99 under load (c{high})",
                f"{_ms(load.p50_ms)} / {_ms(load.p99_ms)} = {_ratio(load.p50_ms, direct.p50_ms):.2f} x / "
                f"{_ratio(load.p99_ms, direct.p99_ms):.2f} x direct",
                "",
                None,
            )
        )
    cpu = result.faasd_cpu_us
    if cpu:
        levels = sorted(cpu)
        worst = max(cpu.values())
        rows.append(
            (
                "3. warm, faasd's CPU per request (user + sys) at " + " / ".join(f"c{c}" for c in levels),
                " / ".join(f"{cpu[c]:.1f} us" for c in levels),
                f"<= {CPU_US_TARGET:g} us",
                worst <= CPU_US_TARGET if not math.isnan(worst) else None,
            )
        )
    return rows


def _get(url_host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(url_host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _answers(host: str, port: int, path: str) -> bool:
    try:
        return _get(host, port, path)[0] == 200
    except OSError:
        return False


def own_container(engine: Engine, image: str, env: str) -> str:
    """Start and specialize a container of ``image`` ourselves; return its address."""
    container = engine.start_runtime(image)
    address = engine.address(container)
    wait_for(lambda: _answers(address, RUNTIME_PORT, "/healthz"), 20, "own runtime container")
    client = Client(address, RUNTIME_PORT, timeout=10)
    try:
        client.json("POST", "/v2/specialize", {"filename": FILENAMES[env], "code": HELLO[env], "entrypoint": ""})
    finally:
        client.close()
    return address


def warm_path(
    faasd: Faasd,
    engine: Engine,
    env: str,
    image: str,
    run_id: str,
    duration: float,
    latency_duration: float,
    connections: int,
    rounds: int = 3,
) -> WarmResult:
    admin = faasd.client()
    name = f"warm-{run_id}"
    path = f"/bench/{name}"
    proxy: subprocess.Popen[bytes] | None = None
    try:
        # One instance takes every connection's call, as the container does for "direct": at the
        # default concurrency (50) the c200 runs would scale the function to 4 instances, which
        # would then share the c50 runs too.
        concurrency = max(connections, HIGH_CONNECTIONS)
        spec = {"name": name, "environment": env, "code": HELLO[env], "concurrency": concurrency}
        admin.json("POST", "/v1/functions", spec, expect=201)
        admin.json("POST", "/v1/triggers/http", {"method": "GET", "url": path, "function": name}, expect=201)
        status, body = admin.request("GET", path)
        if status != 200:
            raise BenchError(f"warm function {name}: {status} {body[:200]!r}")
        # faasd renames the container it specialized ~0.5 s later; a faasd that
        # does not is measured against a container the suite specializes itself.
        source = "faasd's instance of the function"
        address = ""
        with contextlib.suppress(BenchError):
            wait_for(lambda: bool(engine.instance_address(faasd.owner, name)), 5, "instance rename", 0.1)
            address = engine.instance_address(faasd.owner, name)
        if not address:
            address, source = own_container(engine, image, env), "a container the suite specialized"
        if not _answers(address, RUNTIME_PORT, path):
            raise BenchError(f"the runtime container at {address} does not answer {path}")
        proxy_port = free_port()
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.miniproxy",
                "--port",
                str(proxy_port),
                "--upstream",
                f"http://{address}:{RUNTIME_PORT}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _answers("127.0.0.1", proxy_port, path), 20, "the minimal proxy to answer", 0.05)
        urls = {
            "direct": f"http://{address}:{RUNTIME_PORT}{path}",
            "proxy": f"http://127.0.0.1:{proxy_port}{path}",
            "faasd": f"{faasd.url}{path}",
        }
        for url in urls.values():
            loadgen.run(url, 1.0, connections)  # warm-up: connections, JIT, caches
        # Rounds, each target once per round in a rotating order, so a neighbour's
        # burst of load on a shared machine hits every target alike; medians per target.
        loaded: dict[str, list[loadgen.Load]] = {t: [] for t in urls}
        unloaded: dict[str, list[loadgen.Load]] = {t: [] for t in urls}
        high: dict[str, list[loadgen.Load]] = {t: [] for t in HIGH_TARGETS}
        cpu: dict[int, list[float]] = {connections: [], HIGH_CONNECTIONS: []}  # faasd's CPU s per run
        done: dict[int, int] = {connections: 0, HIGH_CONNECTIONS: 0}  # requests of those runs

        def load(target: str, conns: int, **options: bool) -> loadgen.Load:
            used = cpu_seconds(faasd.pid) if target == "faasd" else 0.0
            result = loadgen.run(urls[target], duration / rounds, conns, **options)
            if target == "faasd":
                cpu[conns].append(cpu_seconds(faasd.pid) - used)
                done[conns] += result.requests
            return result

        order = list(urls)
        peak = 0.0
        for n in range(rounds):
            for target in order[n % len(order) :] + order[: n % len(order)]:
                url = urls[target]
                with RssSampler(faasd.pid) as sampler:
                    loaded[target].append(load(target, connections, distribution=target in DISTRIBUTION_TARGETS))
                    if target in HIGH_TARGETS:
                        high[target].append(load(target, HIGH_CONNECTIONS))
                if target == "faasd":
                    peak = max(peak, sampler.peak)
                unloaded[target].append(loadgen.run(url, latency_duration / rounds, 1, threads=1))
        targets = {t: TargetResult(t, loadgen.median(loaded[t]), loadgen.median(unloaded[t])) for t in urls}
        cpu_us = {c: sum(cpu[c]) / done[c] * 1e6 if done[c] else math.nan for c in cpu}
        return WarmResult(
            env,
            source,
            targets,
            peak,
            connections,
            high={t: loadgen.median(runs) for t, runs in high.items()},
            high_connections=HIGH_CONNECTIONS,
            faasd_cpu_us=cpu_us,
        )
    finally:
        if proxy is not None:
            proxy.terminate()
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
        admin.request("DELETE", f"/v1/functions/{name}?force=true")
        admin.close()
