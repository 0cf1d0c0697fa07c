"""Warm path: one hello function under load through faasd, directly, and through a minimal proxy.

All three targets are the same runtime container (the one faasd specialized
for the function), loaded by the same generator in the same run:

- direct: the container's own address on the Docker network;
- proxy: bench/miniproxy.py (aiohttp, one pooled ClientSession) in front of it;
- faasd: a route of the function on faasd's port.

Each target gets a 1 s warm-up, then ``rounds`` rounds of a loaded run
(throughput, latency under load) and a one-connection run (latency without
queueing, the "added latency" figure); each figure is the median over rounds.
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
from dataclasses import dataclass

from bench import loadgen
from bench.common import HELLO, BenchError, Client, free_port, wait_for
from bench.engine import RUNTIME_PORT, Engine
from bench.faasd_proc import Faasd
from bench.memory import RssSampler

FILENAMES = {"nodejs": "hello.js", "python": "hello.py"}


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
        admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, expect=201)
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
        order = list(urls)
        peak = 0.0
        for n in range(rounds):
            for target in order[n % len(order) :] + order[: n % len(order)]:
                url = urls[target]
                with RssSampler(faasd.pid) as sampler:
                    loaded[target].append(loadgen.run(url, duration / rounds, connections))
                if target == "faasd":
                    peak = max(peak, sampler.peak)
                unloaded[target].append(loadgen.run(url, latency_duration / rounds, 1, threads=1))
        targets = {t: TargetResult(t, loadgen.median(loaded[t]), loadgen.median(unloaded[t])) for t in urls}
        return WarmResult(env, source, targets, peak, connections)
    finally:
        if proxy is not None:
            proxy.terminate()
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
        admin.request("DELETE", f"/v1/functions/{name}?force=true")
        admin.close()
