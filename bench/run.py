"""`make bench`: run every phase against a faasd of our own, print the table, write BENCHMARKS.md.

    .venv/bin/python -m bench            # full run (~30 min), rewrites BENCHMARKS.md
    .venv/bin/python -m bench --quick    # tiny samples, writes nothing (CI)

Phases run in this order, each bounded in count and time; a phase that fails
is reported as failed and the others still run (exit status 1):
pool-warm cold starts, warm path (+ RSS under load), burst, no-pool cold
starts (pool size 0 from there on), control plane (+ RSS with the registry
full), route matching in-process, isolation (container start and warm call on
a plain bridge vs an isolated one; bench/isolation.py, also runnable alone);
then, once that faasd has stopped, packages (a faasd of its own: cold and
cached builds and code-only redeploys through `faas deploy DIR`, offline
dependencies; bench/packages.py, also runnable alone); then events (a faasd of
its own, pool size 1: asynchronous calls' accept to start on an idle queue,
deliveries per second, a 1 s timer's jitter; bench/events.py, also runnable
alone); then mq (a faasd and a Redis of its own: messages per second through a
Redis Streams trigger, publish to answer latency; bench/mq.py, also runnable
alone); then metrics cost (pairs of faasd of its own side by side, pool size 1,
one with `--call-metrics false`: warm req/s with and without counting every
call, alternating rounds; bench/metrics_cost.py, also runnable alone); then
the dev loop (a faasd of its own and `faas dev FILE`: from saving the file to
the new code answering; bench/devloop.py, also runnable alone); then registry
scale (a faasd of its own, pool size 0: 10,000 functions and routes, route
creates at the start and the end, restart to /healthz, RSS, route matching;
bench/scale.py, also runnable alone); last, density (a faasd of its own: 500
warm instances at once, its RSS, the warm p50 with 500 alive against one,
memory per idle instance; bench/density.py, also runnable alone); then
cluster (faasd nodes of its own on SQLite and on a PostgreSQL of its own:
registry writes, a change from one node to another, async failover after a
kill -9; bench/cluster.py, also runnable alone).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from bench import (
    burst,
    cluster,
    coldstart,
    controlplane,
    density,
    devloop,
    events,
    isolation,
    loadgen,
    metrics_cost,
    mq,
    packages,
    plots,
    report,
    scale,
    warm,
)
from bench.common import ENVIRONMENTS, BenchError, Client, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd
from bench.memory import rss_mib

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine(engine: Engine) -> report.Machine:
    commit = _cmd(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if _cmd(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += "-dirty"
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    free_g = _cmd(["free", "-g"]).splitlines()
    total_g = free_g[1].split()[1] if len(free_g) > 1 else f"{mem_kib // 1024 // 1024}"
    try:
        docker_version = str(engine.client.version().get("Version", "?"))
    except Exception:
        docker_version = "?"
    return report.Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cores=os.cpu_count() or 0,
        memory=f"{total_g} GiB (free -g; {mem_kib / 1024 / 1024:.1f} GiB MemTotal)",
        commit=commit,
        kernel=f"Linux {platform.release()}",
        docker=docker_version,
        python=platform.python_version(),
        load_generator=(_cmd(["sh", "-c", "wrk -v 2>&1 | head -1"]) or "wrk")
        if loadgen.have_wrk()
        else "bounded asyncio client (wrk not installed)",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny samples and loads; writes no BENCHMARKS.md")
    p.add_argument("--samples", type=int, help="pool-warm first calls per environment (30; quick 3)")
    p.add_argument("--nopool-samples", type=int, help="no-pool and bare starts per environment (30; quick 2)")
    p.add_argument("--warm-duration", type=float, help="seconds of each loaded warm run (10; quick 1)")
    p.add_argument("--latency-duration", type=float, help="seconds of each one-connection run (3; quick 1)")
    p.add_argument("--warm-rounds", type=int, help="rounds the warm durations are split into (3; quick 1)")
    p.add_argument("--connections", type=int, default=50, help="connections of the loaded warm runs")
    p.add_argument("--warm-env", default="nodejs", choices=ENVIRONMENTS)
    p.add_argument("--burst-functions", type=int, help="new functions of the burst (20; quick 4)")
    p.add_argument("--burst-calls", type=int, help="concurrent first calls of the burst (200; quick 20)")
    p.add_argument("--registry", type=int, help="functions and routes registered (1000; quick 50)")
    p.add_argument("--isolation-samples", type=int, help="isolation: container starts per side and env (15; quick 3)")
    p.add_argument("--isolation-rounds", type=int, help="isolation: 1 s warm rounds per side (8; quick 1)")
    p.add_argument(
        "--packages-samples", type=int, help="packages: builds and redeploys per figure and environment (5; quick 1)"
    )
    p.add_argument("--async-calls", type=int, help="events: asynchronous calls on an idle queue (100; quick 10)")
    p.add_argument("--async-burst", type=int, help="events: asynchronous calls submitted at once (2000; quick 100)")
    p.add_argument("--timer-ticks", type=int, help="events: ticks of the 1 s timer (20; quick 3)")
    p.add_argument("--mq-messages", type=int, help="mq: messages published at once per trigger (5000; quick 200)")
    p.add_argument("--mq-latency", type=int, help="mq: messages published one at a time (200; quick 20)")
    p.add_argument("--metrics-rounds", type=int, help="metrics cost: loaded rounds per side, alternating (8; quick 1)")
    p.add_argument("--metrics-seconds", type=int, help="metrics cost: whole seconds of each loaded run (2; quick 1)")
    p.add_argument(
        "--metrics-sessions", type=int, help="metrics cost: faasd pairs the rounds are split into (4; quick 1)"
    )
    p.add_argument("--devloop-samples", type=int, help="dev loop: saves measured through `faas dev` (10; quick 2)")
    p.add_argument("--scale-count", type=int, help="registry scale: functions and routes (10000; quick 400)")
    p.add_argument("--density-instances", type=int, help="density: warm instances held at once (500; quick 40)")
    p.add_argument("--cluster-count", type=int, help="cluster: registry writes of each kind (200; quick 20)")
    p.add_argument("--density-rounds", type=int, help="density: warm rounds per B-A-B block (8; quick 2)")
    p.add_argument("--poolsize", type=int, default=3, help="faasd --default-poolsize for the pool-warm phases")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    p.add_argument("--output", type=Path, help="file to write (default BENCHMARKS.md; quick: none)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--label", default="", help="a note for the history row, e.g. 'before the new data plane'")
    args = p.parse_args(argv)
    full = {
        "samples": 30,
        "nopool_samples": 30,
        "warm_duration": 10.0,
        "latency_duration": 3.0,
        "warm_rounds": 3,
        "burst_functions": 20,
        "burst_calls": 200,
        "registry": 1000,
        "isolation_samples": 15,
        "isolation_rounds": 8,
        "packages_samples": 5,
        "async_calls": 100,
        "async_burst": 2000,
        "timer_ticks": 20,
        "mq_messages": 5000,
        "mq_latency": 200,
        "metrics_rounds": 8,
        "metrics_seconds": 2,
        "metrics_sessions": 4,
        "devloop_samples": 10,
        "scale_count": scale.COUNT,
        "density_instances": 500,
        "density_rounds": 8,
        "cluster_count": cluster.COUNT,
    }
    quick = {
        "samples": 3,
        "nopool_samples": 2,
        "warm_duration": 1.0,
        "latency_duration": 1.0,
        "warm_rounds": 1,
        "burst_functions": 4,
        "burst_calls": 20,
        "registry": 50,
        "isolation_samples": 3,
        "isolation_rounds": 1,
        "packages_samples": 1,
        "async_calls": 10,
        "async_burst": 100,
        "timer_ticks": 3,
        "mq_messages": 200,
        "mq_latency": 20,
        "metrics_rounds": 1,
        "metrics_seconds": 1,
        "metrics_sessions": 1,
        "devloop_samples": 2,
        "scale_count": scale.QUICK_COUNT,
        "density_instances": 40,
        "density_rounds": 2,
        "cluster_count": cluster.QUICK_COUNT,
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output is None and not args.quick:
        args.output = ROOT / "BENCHMARKS.md"
    return args


class Runner:
    def __init__(self, results: report.Results) -> None:
        self.results = results
        self.began = time.monotonic()

    def phase(self, name: str, fn: Callable[[], T]) -> T | None:
        at = time.monotonic() - self.began
        print(f"[{at:6.1f} s] {name} ...", file=sys.stderr, flush=True)
        try:
            result = fn()
        except Exception as exc:
            self.results.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
            return None
        print(f"[{time.monotonic() - self.began:6.1f} s] {name} done", file=sys.stderr, flush=True)
        return result


def draw_figures(results: report.Results, folder: Path) -> None:
    """The burst's timeline and the warm path's latency distribution as PNG files (next to BENCHMARKS.md
    on a full run; under build/bench on a quick one, to prove they draw)."""
    if not plots.available():
        print("matplotlib is not installed: no figures (pip install -e '.[dev]')", file=sys.stderr)
        return
    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path] = {}
    if results.burst is not None and results.burst.samples:
        b = results.burst
        series = burst.timeline(b)
        left = {k: v for k, v in series.items() if k != "calls answered"}
        drawn["the burst: containers and calls answered over time"] = plots.timeline(
            left,
            folder / "BENCHMARKS.burst.png",
            f"burst: {b.calls} first calls over {b.functions} new functions (completion {b.completion_ms:,.0f} ms)",
            right={"calls answered": series["calls answered"]},
            ylabel="containers",
            right_label="calls answered",
        )
    if results.warm is not None:
        distribution = warm.latency_distribution(results.warm)
        if distribution:
            drawn["the warm path's latency distribution"] = plots.latency_distribution(
                distribution,
                folder / "BENCHMARKS.warm-latency.png",
                f"warm {results.warm.environment} hello under load (c{results.warm.connections}): "
                "latency by percentile",
            )
    results.figures = {caption: os.path.relpath(path, ROOT) for caption, path in drawn.items()}
    for path in drawn.values():
        print(f"figure: {path}", file=sys.stderr)


def delete_all_functions(admin: Client) -> None:
    listed = admin.json("GET", "/v1/functions")
    items = listed.get("items", []) if isinstance(listed, dict) else listed or []
    for fn in items:
        status, raw = admin.request("DELETE", f"/v1/functions/{fn['name']}?force=true")
        if status not in (200, 204, 404):
            raise BenchError(f"DELETE function {fn['name']}: {status} {raw[:200]!r}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = secrets.token_hex(3)
    began = time.monotonic()
    engine = Engine(run_id)
    results = report.Results(machine(engine), args.quick, args.label)
    results.load_before = os.getloadavg()[0]
    runner = Runner(results)
    faasd = Faasd(args.faasd_cmd, poolsize=args.poolsize, idle_timeout=900)
    try:
        faasd.start()
        admin = faasd.client()
        wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to fill at start", 0.1)
        images = {env["name"]: env["image"] for env in faasd.status(admin)["environments"]}
        images = {env: images[env] for env in ENVIRONMENTS}

        def pool_warm(env: str) -> coldstart.ColdResult:
            return coldstart.pool_warm(faasd, engine, env, args.samples, run_id, limit=45)

        time.sleep(1.0)
        results.rss_idle = rss_mib(faasd.pid)

        for env in ENVIRONMENTS:
            cold = runner.phase(f"pool-warm cold start {env}", partial(pool_warm, env))
            if cold is not None:
                results.pool_warm.append(cold)
        results.warm = runner.phase(
            "warm path",
            lambda: warm.warm_path(
                faasd,
                engine,
                args.warm_env,
                images[args.warm_env],
                run_id,
                args.warm_duration,
                args.latency_duration,
                args.connections,
                args.warm_rounds,
            ),
        )
        results.burst = runner.phase(
            "burst", lambda: burst.burst(faasd, run_id, args.burst_functions, args.burst_calls)
        )
        runner.phase("clean up functions", lambda: delete_all_functions(admin))
        results.no_pool = (
            runner.phase(
                "no-pool cold start (and bare starts)",
                lambda: coldstart.no_pool(faasd, engine, images, args.nopool_samples, run_id, limit=75),
            )
            or []
        )
        results.created = runner.phase(
            "control plane", lambda: controlplane.create_many(faasd, run_id, args.registry, limit=60)
        )
        if results.created is not None:
            time.sleep(0.5)
            results.rss_registered = rss_mib(faasd.pid)
        results.match = runner.phase("route matching", lambda: controlplane.match_cost(args.registry))
        results.isolation = runner.phase(
            "isolation",
            lambda: isolation.measure(images, run_id, args.isolation_samples, args.isolation_rounds, limit=90),
        )
        admin.close()
    except (BenchError, OSError) as exc:
        results.errors["set-up"] = f"{type(exc).__name__}: {exc}"
        print(f"faasd log tail:\n{faasd.log_tail()}", file=sys.stderr)
    finally:
        code = faasd.stop()
        if code not in (0, None):
            results.errors["faasd exit"] = f"faasd exited with {code} on SIGTERM: {faasd.log_tail(5)}"
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"removed {leftover} containers left after faasd stopped", file=sys.stderr)
        faasd.close()
        engine.close()
    # After the main faasd has stopped: these phases start a faasd of their own.
    results.packages = runner.phase(
        "packages",
        lambda: packages.measure(args.faasd_cmd, args.poolsize, args.packages_samples, run_id, limit=300),
    )
    results.events = runner.phase(
        "events",
        lambda: events.measure(
            args.faasd_cmd, args.async_calls, args.async_burst, args.timer_ticks, run_id, limit=events.DEFAULT_LIMIT
        ),
    )
    results.mq = runner.phase(
        "mq",
        lambda: mq.measure(args.faasd_cmd, args.mq_messages, args.mq_latency, run_id, limit=mq.DEFAULT_LIMIT),
    )
    results.metrics_cost = runner.phase(
        "metrics cost",
        lambda: metrics_cost.measure(
            args.faasd_cmd,
            args.metrics_rounds,
            args.metrics_seconds,
            run_id,
            limit=metrics_cost.DEFAULT_LIMIT,
            connections=args.connections,
            env=args.warm_env,
            sessions=args.metrics_sessions,
        ),
    )
    results.devloop = runner.phase(
        "dev loop",
        lambda: devloop.measure(args.faasd_cmd, args.devloop_samples, run_id, limit=devloop.DEFAULT_LIMIT),
    )
    results.scale = runner.phase(
        "registry scale",
        lambda: scale.measure(args.faasd_cmd, args.scale_count, run_id, limit=scale.DEFAULT_LIMIT),
    )
    results.density = runner.phase(
        "density",
        lambda: density.measure(
            args.faasd_cmd, args.density_instances, args.density_rounds, run_id, limit=density.DEFAULT_LIMIT
        ),
    )
    results.cluster = runner.phase(
        "cluster",
        lambda: cluster.measure(
            args.cluster_count,
            cluster.QUICK_CALLS if args.quick else cluster.CALLS,
            5.0 if args.quick else 0.0,
            run_id,
            limit=cluster.DEFAULT_LIMIT,
        ),
    )
    results.elapsed_s = time.monotonic() - began
    results.load_after = os.getloadavg()[0]
    draw_figures(results, ROOT if args.output is not None and not args.no_write else ROOT / "build" / "bench")
    print()
    print(report.header(results))
    print()
    print(report.table(results))
    if args.output is not None and not args.no_write:
        report.write(args.output, results)
        print(f"\nwritten to {args.output}")
    return 1 if results.errors else 0
