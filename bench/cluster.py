"""Several nodes (issue 17): registry writes on SQLite and on PostgreSQL, a change from one node to
another, and asynchronous work taken over after a node is killed.

Everything runs on faasd processes of the phase's own (bench/faasd_proc.py) and a PostgreSQL server of
its own (tests/postgres.py: Debian's server in a temporary directory, fsync on):

- **registry writes**: one faasd (pool size 0: no container starts) on its own SQLite file, then one on
  a PostgreSQL database; N function creates (each its own code) and N route creates, one at a time on
  one keep-alive connection, each timed from send to answer (p50 / p99). A write is the row, its change
  row for the other nodes and, on SQLite, the fsync of the WAL (`synchronous=FULL`).
- **propagation**: two nodes on one registry (a SQLite file they share, then PostgreSQL): a change made
  through A until B serves it (bench/cluster_sync.py: route creates and function updates).
- **failover**: two nodes on PostgreSQL (pool size 1), ``--async-lease`` as given (faasd's default,
  30 s, unless told); C asynchronous calls of 0.2 s each submitted through A (A holds each from its
  insert); once A has finished a few, A is killed with SIGKILL. From the kill: the first attempt B starts
  on one of A's calls (the lease running out, then B's claim, every second), and the last of the C
  calls succeeding; how many were delivered twice (those A was running when it died: at least once).

    .venv/bin/python -m bench.cluster            # N = 200, C = 40, faasd's lease
    .venv/bin/python -m bench.cluster --quick    # N = 20, C = 10, lease 5 s
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import cluster_sync
from bench.common import HELLO, BenchError, Client, Deadline, exit_on_sigterm, percentile, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd
from faasd.engines.firewall import HostFirewall

COUNT = 200
QUICK_COUNT = 20
CALLS = 40
QUICK_CALLS = 10
DEFAULT_LIMIT = 600.0
SLOW = 'import time\n\ndef main():\n    time.sleep(0.2)\n    return "done"\n'


@dataclass
class Writes:
    registry: str
    functions: list[float] = field(default_factory=list)  # seconds
    routes: list[float] = field(default_factory=list)


@dataclass
class Failover:
    calls: int
    lease: float
    done_by_a: int = 0  # succeeded before the kill
    first_takeover: float = float("nan")  # seconds from the kill to B's first attempt on one of A's calls
    all_done: float = float("nan")  # seconds from the kill to the last call succeeding
    twice: int = 0  # calls with more than one attempt
    succeeded: int = 0


@dataclass
class ClusterResult:
    count: int
    writes: list[Writes] = field(default_factory=list)
    propagation: list[cluster_sync.Result] = field(default_factory=list)
    failover: Failover | None = None


@contextlib.contextmanager
def postgres_server() -> Iterator[Any]:
    from tests.postgres import running_postgres

    with running_postgres(durable=True) as server:
        yield server


def _timed(client: Client, method: str, path: str, body: Any, expect: int) -> float:
    began = time.perf_counter()
    client.json(method, path, body, expect=expect)
    return time.perf_counter() - began


def writes(database: str, registry: str, count: int, deadline: Deadline) -> Writes:
    node = Faasd("", poolsize=0, idle_timeout=120, extra_args=["--database", database] if database else [])
    out = Writes(registry)
    try:
        node.start()
        client = node.client()
        for i in range(count):
            deadline.check()
            code = HELLO["nodejs"].replace("hello", f"hello {i}")
            body = {"name": f"w{i}", "environment": "nodejs", "code": code}
            out.functions.append(_timed(client, "POST", "/v1/functions", body, 201))
        for i in range(count):
            deadline.check()
            body = {"name": f"r{i}", "url": f"/w/{i}", "function": f"w{i}"}
            out.routes.append(_timed(client, "POST", "/v1/triggers/http", body, 201))
        client.close()
        return out
    finally:
        node.stop()
        node.close()


def _epoch(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else float("nan")


def failover(database: str, calls: int, lease: float, run_id: str, deadline: Deadline) -> Failover:
    args = ["--database", database] + (["--async-lease", f"{lease:g}"] if lease else [])
    a = Faasd("", poolsize=1, idle_timeout=300, extra_args=args)
    b = Faasd("", poolsize=1, idle_timeout=300, extra_args=args)
    engine = Engine(run_id)
    result = Failover(calls, lease or 30.0)
    try:
        a.start()
        b.start()
        ca, cb = a.client(), b.client()
        ca.json("POST", "/v1/functions", {"name": "slow", "environment": "python", "code": SLOW}, expect=201)
        wait_for(lambda: cb.request("GET", "/v1/functions/slow")[0] == 200, 10, "B to know the function")
        for _ in range(calls):
            status, raw = ca.request("POST", "/async-function/slow", {"x": 1})
            if status != 202:
                raise BenchError(f"async call through A: {status} {raw[:200]!r}")

        def done(client: Client) -> list[dict[str, Any]]:
            listed = client.json("GET", "/v1/invocations?function=slow&status=succeeded&limit=1000")
            return list(listed["items"])

        wait_for(lambda: len(done(ca)) >= 2, 120, "A to finish its first calls", interval=0.02)
        os.kill(a.pid, signal.SIGKILL)
        killed = time.time()
        a.proc.wait(10)  # type: ignore[union-attr]
        result.done_by_a = len(done(cb))
        bound = result.lease + 60 + calls * 0.2
        wait_for(lambda: len(done(cb)) >= calls or deadline.passed(), bound, "B to finish every call", interval=0.1)
        finished = done(cb)
        result.succeeded = len(finished)
        if result.succeeded < calls:
            raise BenchError(f"only {result.succeeded} of {calls} calls succeeded after A was killed")
        starts = [
            _epoch(attempt["started_at"]) for call in finished for attempt in call["attempts"] if attempt["started_at"]
        ]
        after = [s - killed for s in starts if s >= killed]
        result.first_takeover = min(after) if after else float("nan")
        result.all_done = max(_epoch(call["attempts"][-1]["finished_at"]) for call in finished) - killed
        result.twice = sum(1 for call in finished if len(call["attempts"]) > 1)
        ca.close()
        cb.close()
        return result
    finally:
        for node in (a, b):
            node.stop()  # SIGTERM (A: when the phase failed before its kill)
        for node in (a, b):
            engine.cleanup(node.owner)
            HostFirewall(node.owner).teardown()  # a faasd killed with -9 leaves its (inert) chains
            node.close()
        engine.close()


def measure(count: int, calls: int, lease: float, run_id: str, limit: float = DEFAULT_LIMIT) -> ClusterResult:
    deadline = Deadline(limit, "cluster")
    result = ClusterResult(count)
    with tempfile.TemporaryDirectory(prefix="faasd-bench-cluster-") as folder:
        result.writes.append(writes("", "SQLite (its own file)", count, deadline))
        shared = f"sqlite:///{Path(folder) / 'shared.db'}"
        result.propagation += cluster_sync.measure(shared, "SQLite file (shared)", min(count, 50))
    with postgres_server() as server:
        result.writes.append(writes(server.url(server.create_database()), "PostgreSQL", count, deadline))
        url = server.url(server.create_database())
        result.propagation += cluster_sync.measure(url, "PostgreSQL", min(count, 50))
        result.failover = failover(server.url(server.create_database()), calls, lease, run_id, deadline)
    return result


def _ms(seconds: list[float]) -> str:
    values = sorted(s * 1000 for s in seconds)
    return f"{percentile(values, 50):.1f} / {percentile(values, 99):.1f} ms" if values else "n/a"


def table(r: ClusterResult) -> str:
    lines = ["| metric | value | target | met |", "|---|---|---|---|"]
    for w in r.writes:
        lines.append(
            f"| registry write on {w.registry}: function create, p50 / p99 (n={len(w.functions)}) "
            f"| {_ms(w.functions)} | | |"
        )
        lines.append(f"| - route create, p50 / p99 (n={len(w.routes)}) | {_ms(w.routes)} | | |")
    for p in r.propagation:
        values = sorted(s * 1000 for s in p.samples)
        p99 = percentile(values, 99)
        lines.append(
            f"| **a change through node A served by node B**, {p.registry}, {p.kind}: p50 / p99 / max "
            f"(n={len(values)}) | {percentile(values, 50):.0f} / {p99:.0f} / {values[-1]:.0f} ms | < 1 s "
            f"| {'yes' if values[-1] < 1000 else '**no**'} |"
        )
    f = r.failover
    if f is not None:
        lines += [
            f"| **async failover**: node A killed -9 holding {f.calls - f.done_by_a} of {f.calls} calls "
            f"(lease {f.lease:g} s): kill to B's first attempt on one of them | {f.first_takeover:.1f} s "
            f"| <= lease + 1 s | {'yes' if f.first_takeover <= f.lease + 1 else '**no**'} |",
            f"| - kill to the last of the {f.calls} calls succeeded | {f.all_done:.1f} s | | |",
            f"| - calls succeeded / delivered more than once (running on A when it died) | {f.succeeded} / {f.twice} "
            f"| {f.calls} / at least once | {'yes' if f.succeeded == f.calls else '**no**'} |",
        ]
    return "\n".join(lines)


def summary_line(r: ClusterResult) -> str:
    return (
        f"faasd processes of the phase's own on a PostgreSQL server of its own (fsync on): {r.count} function and "
        f"{r.count} route creates one at a time on SQLite and on PostgreSQL; two nodes on one registry, a change "
        "through A until B serves it (bench/cluster_sync.py); two nodes on PostgreSQL, async calls through A, A "
        "killed -9. `python -m bench.cluster` runs this alone."
    )


def history_cell(r: ClusterResult) -> str:
    """PostgreSQL route create p50 / propagation p99 on PostgreSQL / failover to first takeover."""
    pg = next((w for w in r.writes if w.registry == "PostgreSQL"), None)
    prop = [p for p in r.propagation if p.registry == "PostgreSQL"]
    cells = []
    if pg is not None and pg.routes:
        cells.append(f"{percentile(sorted(s * 1000 for s in pg.routes), 50):.1f} ms")
    if prop:
        cells.append(f"{max(percentile(sorted(s * 1000 for s in p.samples), 99) for p in prop):.0f} ms")
    if r.failover is not None:
        cells.append(f"{r.failover.first_takeover:.1f} s")
    return " / ".join(cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20 writes, 10 async calls, lease 5 s")
    p.add_argument("--count", type=int, help=f"writes of each kind ({COUNT}; quick {QUICK_COUNT})")
    p.add_argument("--calls", type=int, help=f"async calls through the killed node ({CALLS}; quick {QUICK_CALLS})")
    p.add_argument("--lease", type=float, help="faasd --async-lease, seconds (faasd's default; quick 5)")
    args = p.parse_args(argv)
    exit_on_sigterm()
    count = args.count or (QUICK_COUNT if args.quick else COUNT)
    calls = args.calls or (QUICK_CALLS if args.quick else CALLS)
    lease = args.lease if args.lease is not None else (5.0 if args.quick else 0.0)
    began = time.monotonic()
    try:
        result = measure(count, calls, lease, secrets.token_hex(3))
    except (BenchError, OSError) as exc:
        print(f"cluster: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"- took {time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"- {summary_line(result)}\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
