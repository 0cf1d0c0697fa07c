"""Burst: many concurrent first calls across new functions, more functions than the pools hold.

The functions are created first (half nodejs, half python) while the pools are
full; then every call is sent at once (one connection each). Completion time is
from the first send to the last answer; an error is any answer other than 200
"hello" or a failed request.

Beside it, in the same run:

- **the engine's own parallel start** (the reference): as many containers as
  faasd had to start during the burst (its instances beyond those the pools
  held at the start; the same environments' images), created, started,
  inspected for their address and probed until ``GET /healthz`` answers 200,
  all at once, one thread each, with faasd's own container options (limits,
  lockdown, log rotation, the deploy volume, a specialization token) on
  faasd's network. Measured once before the burst and once after it (faasd's
  removals and refills settled in between), the reference is their mean and
  the ratio is the burst's completion over it. The suite's containers carry
  ``faasd.bench=burst`` and ``faasd.bench.run=<run id>`` and are removed after
  each reference, outside its timing, and by label at the end.
- **a timeline**: ``GET /v1/status`` every 50 ms from just before the first
  send to a second after the last answer (the burst's instances in service,
  those starting, the pools' ready containers), each call's answer time, and
  the references' containers ready over time; :func:`timeline` turns a result
  into named series of (seconds since the first send, value) to plot. One
  status request costs faasd about a millisecond (its mean is in the result).

Every wait is bounded (the calls by ``limit``, each reference by
``REFERENCE_LIMIT``); the burst's functions are deleted at the end, whatever
happened.

    .venv/bin/python -m bench.burst                 # 20 functions, 200 calls, pools of 3
    .venv/bin/python -m bench.burst --quick         # 4 functions, 20 calls
    .venv/bin/python -m bench.burst --budget-mb 4096 --repeat   # a second burst after the pools grew
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import math
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import docker
import docker.errors

from bench.common import ENVIRONMENTS, HELLO, BenchError, Client, Summary, exit_on_sigterm, ms, wait_for
from bench.engine import NETWORK, Engine
from bench.faasd_proc import Faasd

CALL_TIMEOUT = 60.0
SAMPLE_EVERY = 0.05  # seconds between two status samples of the timeline
SAMPLE_AFTER = 1.0  # seconds the timeline goes on after the last answer
REFERENCE_LIMIT = 60.0  # seconds one engine reference may take
PROBE_EVERY = 0.005  # the reference's readiness probe, as faasd's (faasd/engines/docker.py READY_POLL)
SETTLE_TIMEOUT = 90.0
POOLSIZE = 3
# Issue 16's targets: p99 and completion, or completion within 1.2 x the engine's own parallel start.
TARGET_P99_MS = 1500.0
TARGET_COMPLETION_MS = 2000.0
TARGET_RATIO = 1.2


@dataclass(frozen=True)
class Reference:
    """The engine starting ``containers`` containers at once, as faasd starts one."""

    containers: int
    wall_ms: float  # first create to the last container's first 200
    ready_at: tuple[float, ...]  # seconds from the start at which each answered, sorted
    step_ms: dict[str, float]  # median per step over the containers: create, start, inspect, ready
    errors: int
    first_error: str = ""


@dataclass(frozen=True)
class BurstResult:
    functions: int
    calls: int
    completion_ms: float
    latency: Summary
    errors: int
    first_error: str
    # The burst's instances, and how many of them faasd had to start (the rest came from the pools).
    instances: int = 0
    started: int = 0
    pool_ready_before: int = 0  # pooled containers ready at the first send, all environments
    references: tuple[Reference, ...] = ()  # the engine's parallel starts of `started` containers
    answered_at: tuple[float, ...] = ()  # seconds from the first send, each call's answer, sorted
    # Status samples: (seconds from the first send, instances, starting, pool ready, pool starting)
    samples: tuple[tuple[float, int, int, int, int], ...] = ()
    status_ms: float = math.nan  # a status sample's mean round trip (what the timeline costs faasd)
    budget_mb: int = 0  # faasd's --pool-memory-budget-mb (as its status says)
    label: str = ""  # "first burst", "second burst (the pools grown by the first)"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reference_ms(self) -> float:
        done = [r.wall_ms for r in self.references if r.errors == 0]
        return sum(done) / len(done) if done else math.nan

    @property
    def ratio(self) -> float:
        ref = self.reference_ms
        return self.completion_ms / ref if ref and not math.isnan(ref) else math.nan

    @property
    def met(self) -> bool:
        """Issue 16: p99 < 1.5 s and completion < 2 s, or completion within 1.2 x the engine's parallel start."""
        if self.errors:
            return False
        fast = self.latency.p99 < TARGET_P99_MS and self.completion_ms < TARGET_COMPLETION_MS
        return fast or (not math.isnan(self.ratio) and self.ratio <= TARGET_RATIO)


def timeline(result: BurstResult) -> dict[str, list[tuple[float, float]]]:
    """Named series of (seconds since the first send, value), to plot the burst against the engine."""
    series: dict[str, list[tuple[float, float]]] = {
        "calls answered": [(0.0, 0.0)] + [(t, float(i + 1)) for i, t in enumerate(result.answered_at)],
        "instances in service": [(t, float(n)) for t, n, _s, _r, _ps in result.samples],
        "instances starting": [(t, float(s)) for t, _n, s, _r, _ps in result.samples],
        "pool ready": [(t, float(r)) for t, _n, _s, r, _ps in result.samples],
        "pool starting": [(t, float(ps)) for t, _n, _s, _r, ps in result.samples],
        "containers alive (instances + pool)": [(t, float(n + r)) for t, n, _s, r, _ps in result.samples],
    }
    for i, ref in enumerate(result.references, 1):
        name = f"engine reference {i}: containers answering"
        series[name] = [(0.0, 0.0)] + [(t, float(k + 1)) for k, t in enumerate(ref.ready_at)]
    return series


# -- the engine's own parallel start --------------------------------------------------------------


def _container_options(run_id: str, network: str) -> tuple[dict[str, Any], str]:
    """faasd's _create options (faasd/engines/docker.py) with the suite's labels; and its token variable."""
    from docker.types import LogConfig, Mount

    from faasd.core.entities import DEFAULT_CPU_MILLIS
    from faasd.core.settings import Settings
    from faasd.core.specialize import DEPLOY_ROOT
    from faasd.engines import docker as faasd_docker

    settings = Settings()
    host = {
        "network_mode": network,
        "cpu_period": faasd_docker.CPU_PERIOD,
        "cpu_quota": DEFAULT_CPU_MILLIS * faasd_docker.CPU_PERIOD // 1000,
        "log_config": LogConfig(
            type="json-file",
            config={"max-size": settings.container_log_max_size, "max-file": str(settings.container_log_max_files)},
        ),
        "mem_limit": f"{settings.container_memory_mb}m",
        "memswap_limit": f"{settings.container_memory_mb}m",
        "pids_limit": 128,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": "rw,size=64m,mode=1777"},
        "mounts": [Mount(DEPLOY_ROOT, None, type="volume")],
    }
    return host, faasd_docker.TOKEN_ENV


def _accepts(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((address, port))
        except OSError:
            return False
    return True


def _healthy(address: str, port: int) -> bool:
    import http.client

    conn = http.client.HTTPConnection(address, port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def engine_reference(images: list[str], run_id: str, network: str = NETWORK) -> Reference:
    """Start one container of each image in ``images`` at once (a thread each); remove them after."""
    from faasd.engines.docker import RUNTIME_PORT

    count = len(images)
    if count == 0:
        return Reference(0, 0.0, (), {}, 0)
    client = docker.from_env(timeout=REFERENCE_LIMIT, max_pool_size=count + 4)
    api = client.api
    host_options, token_env = _container_options(run_id, network)
    labels = {"faasd.bench": "burst", "faasd.bench.run": run_id}
    go = threading.Event()
    ids: list[str] = []
    errors: list[str] = []
    steps: dict[str, list[float]] = {"create": [], "start": [], "inspect": [], "ready": []}
    ready_at: list[float] = []
    lock = threading.Lock()
    began = 0.0

    def one(i: int, image: str) -> None:
        go.wait()
        t0 = time.perf_counter()
        try:
            created = api.create_container(
                image,
                detach=True,
                name=f"faasd-bench-burst-{run_id}-{secrets.token_hex(3)}-{i}",
                labels=labels,
                environment={"PORT": str(RUNTIME_PORT), token_env: secrets.token_urlsafe(32)},
                user="1000:1000",
                host_config=api.create_host_config(**host_options),
                networking_config=api.create_networking_config({network: api.create_endpoint_config()}),
            )
            cid = str(created["Id"])
            with lock:
                ids.append(cid)
            t1 = time.perf_counter()
            api.start(cid)
            t2 = time.perf_counter()
            address = str(api.inspect_container(cid)["NetworkSettings"]["Networks"][network]["IPAddress"])
            t3 = time.perf_counter()
            deadline = t0 + REFERENCE_LIMIT
            while not (_accepts(address, RUNTIME_PORT) and _healthy(address, RUNTIME_PORT)):
                if time.perf_counter() > deadline:
                    raise BenchError(f"container {cid[:12]} did not answer within {REFERENCE_LIMIT:.0f} s")
                time.sleep(PROBE_EVERY)
            t4 = time.perf_counter()
        except (docker.errors.DockerException, OSError, BenchError, KeyError) as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            ready_at.append(t4 - began)
            for name, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                steps[name].append(ms(value))

    try:
        with concurrent.futures.ThreadPoolExecutor(count) as workers:
            futures = [workers.submit(one, i, image) for i, image in enumerate(images)]
            time.sleep(0.05)  # every thread waiting on the event
            began = time.perf_counter()
            go.set()
            concurrent.futures.wait(futures, timeout=REFERENCE_LIMIT + 10)
        wall = ms(max(ready_at)) if ready_at and not errors else math.nan
    finally:
        with concurrent.futures.ThreadPoolExecutor(8) as removers:
            list(removers.map(lambda cid: _remove(api, cid), list(ids)))
        for summary in api.containers(all=True, filters={"label": f"faasd.bench.run={run_id}"}):
            _remove(api, summary["Id"])
        client.close()
    medians = {name: sorted(values)[len(values) // 2] for name, values in steps.items() if values}
    return Reference(count, wall, tuple(sorted(ready_at)), medians, len(errors), errors[0] if errors else "")


def _remove(api: Any, cid: str) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        api.remove_container(cid, force=True, v=True)


# -- the burst ------------------------------------------------------------------------------------------


class _Sampler:
    """GET /v1/status every SAMPLE_EVERY s in a thread, on its own connection."""

    def __init__(self, faasd: Faasd, names: set[str]) -> None:
        self.client = faasd.client(timeout=10)
        self.names = names
        self.rows: list[tuple[float, int, int, int, int]] = []  # perf_counter time, ...
        self.costs: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="burst-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                status = self.client.json("GET", "/v1/status")
            except (BenchError, OSError, ValueError):
                self._stop.wait(SAMPLE_EVERY)
                continue
            took = time.perf_counter() - t
            fns = [f for f in status.get("functions", []) if f["name"] in self.names]
            envs = [e for e in status.get("environments", []) if e["name"] in ENVIRONMENTS]
            self.rows.append(
                (
                    t + took / 2,
                    sum(f.get("instances", 0) for f in fns),
                    sum(f.get("starting", 0) for f in fns),
                    sum(e.get("pool_ready", 0) for e in envs),
                    sum(e.get("pool_starting", 0) for e in envs),
                )
            )
            self.costs.append(ms(took))
            self._stop.wait(max(0.0, SAMPLE_EVERY - took))

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


async def _fire(
    url: str, names: list[str], per_function: int, limit: float
) -> tuple[float, float, list[float], list[float], list[str]]:
    """Every call at once; returns (first send as perf_counter, completion ms, latencies, answer times, errors)."""
    latencies: list[float] = []
    answered: list[float] = []
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
            end = time.perf_counter()
            latencies.append(ms(end - began))
            answered.append(end)

        tasks = [asyncio.ensure_future(call(name)) for name in names for _ in range(per_function)]
        await asyncio.sleep(0)
        began = time.perf_counter()
        start.set()
        _done, pending = await asyncio.wait(tasks, timeout=limit)
        for task in pending:
            task.cancel()
            errors.append("a call did not finish within the burst's time bound")
        completion = ms(time.perf_counter() - began)
    return began, completion, latencies, [t - began for t in answered], errors


def _status_by_name(admin: Client, faasd: Faasd) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    status = faasd.status(admin)
    return (
        {e["name"]: e for e in status["environments"]},
        {f["name"]: f for f in status["functions"]},
    )


def pools_at_target(faasd: Faasd, admin: Client) -> bool:
    """Every stock pool holds its target (its poolsize, plus the extras a budget lets it keep), none starting."""
    envs, _ = _status_by_name(admin, faasd)
    return all(
        envs[name].get("pool_ready") == envs[name].get("pool_target", envs[name]["poolsize"])
        and envs[name].get("pool_starting", 0) == 0
        for name in ENVIRONMENTS
        if name in envs
    )


def _settle(faasd: Faasd, admin: Client, engine: Engine | None) -> None:
    """The pools at their target and faasd's removals done, so that the engine is quiet."""
    wait_for(lambda: pools_at_target(faasd, admin), SETTLE_TIMEOUT, "the pools to fill", 0.05)
    if engine is not None:
        envs, _ = _status_by_name(admin, faasd)
        pooled = sum(int(envs[name].get("pool_ready", 0)) for name in ENVIRONMENTS if name in envs)
        others = sum(int(f.get("instances", 0)) for f in faasd.status(admin)["functions"])
        if not engine.wait_owned_count(faasd.owner, pooled + others, SETTLE_TIMEOUT):
            raise BenchError("faasd's removals did not finish before the engine reference")


def burst(
    faasd: Faasd,
    run_id: str,
    functions: int,
    calls: int,
    limit: float = 120.0,
    reference: bool = True,
    label: str = "",
) -> BurstResult:
    """The burst, with the engine's parallel start of as many containers before and after it (``reference``)."""
    admin = faasd.client()
    names = [f"burst-{run_id}-{i}" for i in range(functions)]
    engine = Engine(run_id) if reference else None
    images: dict[str, str] = {}
    refs: list[Reference] = []
    started_images: list[str] = []
    try:
        _settle(faasd, admin, engine)
        for i, name in enumerate(names):
            env = ENVIRONMENTS[i % len(ENVIRONMENTS)]
            admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, expect=201)
        _settle(faasd, admin, engine)
        envs, _ = _status_by_name(admin, faasd)
        images = {name: str(envs[name]["image"]) for name in ENVIRONMENTS}
        ready_before = {name: int(envs[name].get("pool_ready", 0)) for name in ENVIRONMENTS}
        budget = int(envs[ENVIRONMENTS[0]].get("pool_budget_mb", 0))
        # The same containers as faasd will need, known only after the burst: take the count the
        # functions need at one instance each (their concurrency is above the calls per function).
        per_env_need = {env: sum(1 for i in range(functions) if ENVIRONMENTS[i % 2] == env) for env in ENVIRONMENTS}
        first_images = [
            images[env] for env in ENVIRONMENTS for _ in range(max(0, per_env_need[env] - ready_before[env]))
        ]
        if reference and first_images:
            refs.append(engine_reference(first_images, f"{run_id}-a"))
            _settle(faasd, admin, engine)
            envs, _ = _status_by_name(admin, faasd)
            ready_before = {name: int(envs[name].get("pool_ready", 0)) for name in ENVIRONMENTS}
        per_function = max(1, calls // functions)
        with _Sampler(faasd, set(names)) as sampler:
            time.sleep(2 * SAMPLE_EVERY)
            began, completion, latencies, answered, errors = asyncio.run(_fire(faasd.url, names, per_function, limit))
            time.sleep(SAMPLE_AFTER)
        _, fns = _status_by_name(admin, faasd)
        made = {env: 0 for env in ENVIRONMENTS}
        for i, name in enumerate(names):
            made[ENVIRONMENTS[i % 2]] += int(fns.get(name, {}).get("instances", 0))
        pooled = {env: min(made[env], ready_before[env]) for env in ENVIRONMENTS}
        started_images = [images[env] for env in ENVIRONMENTS for _ in range(made[env] - pooled[env])]
    finally:
        for name in names:
            with contextlib.suppress(OSError, BenchError):
                admin.request("DELETE", f"/v1/functions/{name}?force=true")
    try:
        if reference and started_images:
            _settle(faasd, admin, engine)
            refs.append(engine_reference(started_images, f"{run_id}-b"))
    finally:
        if engine is not None:
            engine.cleanup(None)
            engine.close()
        admin.close()
    samples = tuple((t - began, n, s, r, ps) for t, n, s, r, ps in sampler.rows)
    return BurstResult(
        functions,
        per_function * functions,
        completion,
        Summary.of(latencies),
        len(errors),
        errors[0] if errors else "",
        instances=sum(made.values()),
        started=len(started_images),
        pool_ready_before=sum(ready_before.values()),
        references=tuple(refs),
        answered_at=tuple(sorted(answered)),
        samples=samples,
        status_ms=sum(sampler.costs) / len(sampler.costs) if sampler.costs else math.nan,
        budget_mb=budget,
        label=label,
    )


# -- the table -------------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f} ms"


def rows(result: BurstResult) -> list[tuple[str, str, str, bool | None]]:
    """(metric, value, target, met) rows for BENCHMARKS.md's table."""
    r = result
    what = f"{r.calls} concurrent first calls over {r.functions} new functions"
    refs = " / ".join(_ms(x.wall_ms) for x in r.references)
    out: list[tuple[str, str, str, bool | None]] = [
        (
            f"4. burst{f' ({r.label})' if r.label else ''}: {what}, completion",
            _ms(r.completion_ms),
            f"< {TARGET_COMPLETION_MS / 1000:g} s, or <= {TARGET_RATIO} x the engine's parallel start",
            r.met,
        ),
        ("4. burst: per-call p50 / p99", f"{_ms(r.latency.p50)} / {_ms(r.latency.p99)}", "p99 < 1.5 s", None),
        (
            f"4. burst: instances made / from the pools / started by faasd "
            f"(pools ready at the first send: {r.pool_ready_before})",
            f"{r.instances} / {r.instances - r.started} / {r.started}",
            "",
            None,
        ),
    ]
    if r.references:
        steps = r.references[-1].step_ms
        step_text = ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
        out.append(
            (
                f"4. burst: the engine starting the same {r.started} containers at once (before / after the burst; "
                f"median per container: {step_text} ms)",
                refs,
                "reference",
                None,
            )
        )
        out.append(
            (
                "4. burst: completion / the engine's parallel start (their mean)",
                f"{r.ratio:.2f} x ({_ms(r.completion_ms)} / {_ms(r.reference_ms)})",
                f"<= {TARGET_RATIO} x",
                None if math.isnan(r.ratio) else r.ratio <= TARGET_RATIO,
            )
        )
    out.append(
        (
            "4. burst: errors",
            str(r.errors) + (f" (first: {r.first_error[:80]})" if r.errors else ""),
            "0",
            r.errors == 0,
        )
    )
    return out


def table(results: list[BurstResult]) -> str:
    lines = ["| metric | value | target | met |", "|---|---|---|---|"]
    for result in results:
        for metric, value, target, met in rows(result):
            verdict = {None: "", True: "yes", False: "**no**"}[met]
            lines.append(f"| {metric} | {value} | {target} | {verdict} |")
    return "\n".join(lines)


def timeline_text(result: BurstResult, every: float = 0.25) -> str:
    """The timeline as text: one line per ``every`` seconds (the status sample nearest before it)."""
    lines = ["  t (s)  answered  instances  starting  pool ready  pool starting  engine ref (answering)"]
    end = max([result.completion_ms / 1000] + [t for t, *_ in result.samples])
    ref = result.references[0].ready_at if result.references else ()
    t = 0.0
    while t <= end + 1e-9:
        before = [row for row in result.samples if row[0] <= t]
        _, n, s, r, ps = before[-1] if before else (0.0, 0, 0, 0, 0)
        done = sum(1 for x in result.answered_at if x <= t)
        engine = sum(1 for x in ref if x <= t)
        lines.append(f"  {t:5.2f}  {done:8d}  {n:9d}  {s:8d}  {r:10d}  {ps:13d}  {engine:6d}")
        t += every
    return "\n".join(lines)


def _wait_grown(faasd: Faasd) -> None:
    admin = faasd.client()
    try:
        wait_for(lambda: pools_at_target(faasd, admin), SETTLE_TIMEOUT, "the pools to grow", 0.05)
    finally:
        admin.close()


# -- alone: python -m bench.burst ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.burst", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="4 functions, 20 calls")
    p.add_argument("--functions", type=int, help="new functions (20; quick 4)")
    p.add_argument("--calls", type=int, help="concurrent first calls (200; quick 20)")
    p.add_argument("--poolsize", type=int, default=POOLSIZE, help="faasd --default-poolsize")
    p.add_argument("--budget-mb", type=int, default=0, help="faasd --pool-memory-budget-mb (0: off)")
    p.add_argument("--repeat", action="store_true", help="a second burst once the pools reached their target")
    p.add_argument("--rounds", type=int, default=1, help="bursts (each with its references), one after the other")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    p.add_argument("--faasd-arg", action="append", default=[], help="one more faasd argument (repeatable)")
    p.add_argument("--timeline", action="store_true", help="print each burst's timeline (every 0.25 s)")
    args = p.parse_args(argv)
    functions = args.functions or (4 if args.quick else 20)
    calls = args.calls or (20 if args.quick else 200)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    run_id = secrets.token_hex(3)
    extra = [*args.faasd_arg] + (["--pool-memory-budget-mb", str(args.budget_mb)] if args.budget_mb else [])
    faasd = Faasd(args.faasd_cmd, poolsize=args.poolsize, idle_timeout=900, extra_args=extra)
    engine = Engine(run_id)
    results: list[BurstResult] = []
    try:
        faasd.start()
        for k in range(args.rounds):
            results.append(burst(faasd, f"{run_id}{k}", functions, calls, label=f"round {k + 1}"))
            if args.repeat:
                _wait_grown(faasd)
                results.append(
                    burst(faasd, f"{run_id}{k}r", functions, calls, label=f"round {k + 1}, again (pools grown)")
                )
    except (BenchError, OSError) as exc:
        print(f"burst: {type(exc).__name__}: {exc}\nfaasd log tail:\n{faasd.log_tail()}", file=sys.stderr)
        return 1
    finally:
        code = faasd.stop()
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"burst: removed {leftover} containers left after faasd stopped", file=sys.stderr)
        faasd.close()
        engine.close()
    if code not in (0, None):
        print(f"burst: faasd exited with {code} on SIGTERM", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores; pools of {args.poolsize}; "
        f"budget {args.budget_mb} MB; faasd args: {' '.join(extra) or '(none)'}\n"
    )
    print(table(results))
    if args.timeline:
        for result in results:
            print(f"\n{result.label}: timeline (status sample {result.status_ms:.1f} ms each)\n")
            print(timeline_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
