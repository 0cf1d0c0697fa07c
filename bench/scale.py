"""Registry scale: one faasd holding 10,000 functions and 10,000 routes (issue 16).

A faasd of the phase's own (bench/faasd_proc.py: free loopback port,
temporary state dir, pool size 0: no container starts, no function is
called). Through its admin API:

- N functions (half nodejs, half python), each with code of its own (so N
  code blobs on disk), then N routes, one to each function, half static
  (``/s<run>/static<i>/items``) and half with a path parameter
  (``/s<run>/things<i>/{id}/detail``);
- the first EDGE creates of each kind and the last EDGE are sent one after
  the other on one keep-alive connection, each timed: a create that stays
  O(1) in what is registered has the same p50 at the end as at the start
  (the ratio last / first; target at most RATIO_TARGET for routes). The
  creates in between go over CONNECTIONS keep-alive connections at once, to
  bound the phase's time;
- faasd's VmRSS once all are made;
- faasd stopped (SIGTERM) and started again on the same state dir: the time
  from its spawn to its first 200 on ``/healthz`` (polled every 5 ms; faasd
  answers it once the registry is loaded and the listener is up), the
  registry's load as faasd's log says it, that the last route and function
  answer by name, and VmRSS again (targets: under 3 s, at most 200 MB);
- ``RouteTable.match`` timed in-process with N routes of the same shapes (ns
  per call over random paths: static hit, parametrized hit, 404 miss; target
  under 5 us).

Every loop is bounded by count and by the phase's time bound (what was made
by then is measured; the counts are in the table). faasd is stopped with
SIGTERM and its state dir goes, whatever happened.

    .venv/bin/python -m bench.scale            # N = 10,000
    .venv/bin/python -m bench.scale --quick    # N = 400
"""

from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.common import HELLO, BenchError, Client, Deadline, exit_on_sigterm, percentile, wait_for
from bench.controlplane import MatchResult, match_cost
from bench.faasd_proc import Faasd
from bench.memory import rss_mib

COUNT = 10_000  # functions, and as many routes
QUICK_COUNT = 400
EDGE = 500  # creates timed one at a time at the start and at the end, per kind
CONNECTIONS = 4  # for the creates in between
DEFAULT_LIMIT = 300.0  # seconds for the whole phase
START_TIMEOUT = 60.0
POLL = 0.005  # seconds between two /healthz polls at the restart
# Targets (issue 16).
RATIO_TARGET = 1.5  # route create p50, last EDGE / first EDGE
RSS_TARGET_MB = 200.0
START_TARGET_S = 3.0
MATCH_TARGET_NS = 5000.0
_LOADED = re.compile(r"registry loaded: .* in (?P<ms>[\d.]+) ms")


@dataclass(frozen=True)
class ScaleResult:
    asked: int  # functions, and as many routes
    functions: int  # made
    routes: int  # made
    connections: int
    functions_s: float  # wall time of all the function creates
    routes_s: float
    function_first: list[float]  # ms, the first creates, one at a time
    function_last: list[float]  # ms, the last ones
    route_first: list[float]
    route_last: list[float]
    rss_made: float  # MiB, all made
    start_s: float  # the restart: spawn to the first 200 on /healthz
    load_ms: float  # the registry's load, as faasd logs it (NaN: not logged)
    found: bool  # after the restart, the last route and function answer by name
    rss_started: float  # MiB, right after the restart
    match: MatchResult

    @property
    def route_ratio(self) -> float:
        return _ratio(self.route_last, self.route_first)


def _ratio(last: list[float], first: list[float]) -> float:
    if not last or not first:
        return math.nan
    return percentile(last, 50) / percentile(first, 50)


def _mb(mib: float) -> float:
    return mib * 1.048576


def _function_body(run_id: str, i: int) -> dict[str, Any]:
    env = "python" if i % 2 else "nodejs"
    comment = "#" if env == "python" else "//"
    return {"name": f"sc-{run_id}-{i}", "environment": env, "code": f"{HELLO[env]}{comment} {i}\n"}


def _route_body(run_id: str, i: int) -> dict[str, Any]:
    url = f"/s{run_id}/static{i}/items" if i % 2 == 0 else f"/s{run_id}/things{i}/{{id}}/detail"
    return {"name": f"sc-{run_id}-{i}", "method": "GET", "url": url, "function": f"sc-{run_id}-{i}"}


def _timed(admin: Client, path: str, bodies: Iterator[dict[str, Any]], deadline: Deadline) -> list[float]:
    """Create one after the other; each create's ms."""
    took = []
    for body in bodies:
        if deadline.passed():
            break
        began = time.perf_counter()
        admin.json("POST", path, body, expect=201)
        took.append((time.perf_counter() - began) * 1000)
    return took


def _parallel(faasd: Faasd, path: str, bodies: Iterator[dict[str, Any]], connections: int, deadline: Deadline) -> int:
    """Create over ``connections`` keep-alive connections at once; how many were made."""
    lock = threading.Lock()
    made = [0]
    errors: list[BaseException] = []

    def work() -> None:
        client = faasd.client()
        try:
            while not deadline.passed() and not errors:
                with lock:
                    body = next(bodies, None)
                if body is None:
                    return
                client.json("POST", path, body, expect=201)
                with lock:
                    made[0] += 1
        except BaseException as exc:  # the phase reports it
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=work, name=f"scale-create-{k}") for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return made[0]


def _create(
    faasd: Faasd,
    admin: Client,
    path: str,
    body: Callable[[int], dict[str, Any]],
    count: int,
    edge: int,
    connections: int,
    deadline: Deadline,
) -> tuple[int, float, list[float], list[float]]:
    """``count`` creates: the first and last ``edge`` timed one at a time, those between in parallel.
    (made, seconds, first ms, last ms)."""
    began = time.perf_counter()
    first = _timed(admin, path, (body(i) for i in range(edge)), deadline)
    middle = _parallel(faasd, path, (body(i) for i in range(edge, count - edge)), connections, deadline)
    made = len(first) + middle
    last = []
    if made == count - edge:  # all the others were made: the last ones show the cost at full size
        last = _timed(admin, path, (body(i) for i in range(count - edge, count)), deadline)
    return made + len(last), time.perf_counter() - began, first, last


class _HealthPoller:
    """Polls /healthz every POLL s in a thread from before the spawn: the first 200's time."""

    def __init__(self, faasd: Faasd) -> None:
        self._client = faasd.client(timeout=1)
        self._stop = threading.Event()
        self.began = time.perf_counter()
        self.answered = math.nan
        self._thread = threading.Thread(target=self._run, name="scale-healthz", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._client.request("GET", "/healthz")[0] == 200:
                    self.answered = time.perf_counter()
                    break
            except OSError:
                self._client.close()
            self._stop.wait(POLL)
        self._client.close()

    def close(self) -> float:
        """Seconds from the start to the first 200 (NaN: none); after a start, that is a poll away."""
        self._thread.join(1.0)
        self._stop.set()
        self._thread.join()
        return self.answered - self.began


def _restart(faasd: Faasd, run_id: str, made: int) -> tuple[float, float, bool, float]:
    """Stop faasd, start it again on its state dir: (seconds to /healthz, load ms, found, RSS MiB)."""
    code = faasd.stop()
    if code != 0:
        raise BenchError(f"faasd exited with {code} on SIGTERM: {faasd.log_tail(5)}")
    poller = _HealthPoller(faasd)
    try:
        faasd.start(timeout=START_TIMEOUT)
    finally:
        start_s = poller.close()
    rss = rss_mib(faasd.pid)
    found_load = _LOADED.search(faasd.log_path.read_text(errors="replace"))  # a start writes the log anew
    load_ms = float(found_load["ms"]) if found_load else math.nan
    admin = faasd.client()
    try:
        last = made - 1
        found = made == 0 or all(
            admin.request("GET", f"/v1/{kind}/sc-{run_id}-{last}")[0] == 200 for kind in ("functions", "triggers/http")
        )
    finally:
        admin.close()
    return start_s, load_ms, found, rss


def measure(
    faasd_cmd: str,
    count: int,
    run_id: str,
    limit: float = DEFAULT_LIMIT,
    connections: int = CONNECTIONS,
    edge: int = EDGE,
) -> ScaleResult:
    """Start a faasd of the phase's own, fill its registry, restart it, measure; stop it."""
    deadline = Deadline(limit, "registry scale")
    edge = min(edge, count // 4)
    faasd = Faasd(faasd_cmd, poolsize=0, idle_timeout=900, log_level="info")
    try:
        faasd.start()
        admin = faasd.client()
        try:
            wait_for(lambda: bool(faasd.status(admin)["environments"]), 30, "the stock environments")
            phase = Deadline(deadline.left() * 0.45, "function creates")
            functions, functions_s, function_first, function_last = _create(
                faasd, admin, "/v1/functions", lambda i: _function_body(run_id, i), count, edge, connections, phase
            )
            phase = Deadline(deadline.left() * 0.75, "route creates")
            routes, routes_s, route_first, route_last = _create(
                faasd,
                admin,
                "/v1/triggers/http",
                lambda i: _route_body(run_id, i),
                functions,
                edge,
                connections,
                phase,
            )
        finally:
            admin.close()
        rss_made = rss_mib(faasd.pid)
        start_s, load_ms, found, rss_started = _restart(faasd, run_id, routes)
    finally:
        code = faasd.stop()
        tail = faasd.log_tail(5)
        faasd.close()
    if code not in (0, None):
        raise BenchError(f"faasd exited with {code} on SIGTERM: {tail}")
    match = match_cost(count, run_id)
    return ScaleResult(
        count,
        functions,
        routes,
        connections,
        functions_s,
        routes_s,
        function_first,
        function_last,
        route_first,
        route_last,
        rss_made,
        start_s,
        load_ms,
        found,
        rss_started,
        match,
    )


# -- the table ------------------------------------------------------------------------------------


def _verdict(met: bool | None) -> str:
    return {None: "", True: "yes", False: "**no**"}[met]


def _check(value: float, ok: Callable[[float], bool]) -> bool | None:
    return None if math.isnan(value) else ok(value)


def _p50s(first: list[float], last: list[float]) -> str:
    if not first:
        return "n/a"
    if not last:
        return f"{percentile(first, 50):.2f} ms / n/a (not all made in time)"
    ratio = _ratio(last, first)
    return f"{percentile(first, 50):.2f} ms / {percentile(last, 50):.2f} ms = {ratio:.2f} x"


def _made(made: int, asked: int, seconds: float, connections: int) -> str:
    rate = made / seconds if seconds > 0 else math.nan
    of = "" if made == asked else f" of {asked:,}"
    return f"{made:,}{of} in {seconds:.1f} s ({rate:,.0f}/s; {connections} connections between the timed ends)"


def table(result: ScaleResult) -> str:
    r, n = result, f"{result.asked:,}"
    m = r.match
    ratio_met = _check(r.route_ratio, lambda v: v <= RATIO_TARGET)
    made_met = _check(r.rss_made, lambda v: _mb(v) <= RSS_TARGET_MB)
    start_met = _check(r.start_s, lambda v: v < START_TARGET_S)
    started_met = _check(r.rss_started, lambda v: _mb(v) <= RSS_TARGET_MB)
    worst = max(m.static_ns, m.param_ns, m.miss_ns)
    match_met = _check(worst, lambda v: v < MATCH_TARGET_NS)
    load = "n/a (not logged)" if math.isnan(r.load_ms) else f"{r.load_ms:,.0f} ms"
    edge = len(r.route_first)
    lines = [
        "| metric | value | target | met |",
        "|---|---|---|---|",
        f"| functions created (`POST /v1/functions`, each its own code) "
        f"| {_made(r.functions, r.asked, r.functions_s, r.connections)} | | |",
        f"| - function create p50, first {len(r.function_first)} / last {len(r.function_last)} (one at a time) "
        f"| {_p50s(r.function_first, r.function_last)} | | |",
        f"| routes created (`POST /v1/triggers/http`, half `{{param}}`) "
        f"| {_made(r.routes, r.functions, r.routes_s, r.connections)} | | |",
        f"| **route create p50, first {edge} / last {len(r.route_last)}** (one at a time) "
        f"| {_p50s(r.route_first, r.route_last)} | <= {RATIO_TARGET:g} x | {_verdict(ratio_met)} |",
        f"| faasd RSS with {r.functions:,} functions and {r.routes:,} routes | {r.rss_made:.1f} MiB "
        f"({_mb(r.rss_made):.0f} MB) | <= {RSS_TARGET_MB:.0f} MB | {_verdict(made_met)} |",
        f"| **restart: spawn to the first 200 on /healthz** | {r.start_s:.2f} s | < {START_TARGET_S:g} s "
        f"| {_verdict(start_met)} |",
        f"| - the registry's load in it (faasd's log) | {load} | | |",
        f"| - the last function and route answer by name | {'yes' if r.found else 'no'} | yes | {_verdict(r.found)} |",
        f"| faasd RSS right after the restart | {r.rss_started:.1f} MiB ({_mb(r.rss_started):.0f} MB) "
        f"| <= {RSS_TARGET_MB:.0f} MB | {_verdict(started_met)} |",
        f"| route match with {n} routes, in-process: static / parametrized / miss "
        f"| {m.static_ns:,.0f} / {m.param_ns:,.0f} / {m.miss_ns:,.0f} ns | < {MATCH_TARGET_NS / 1000:g} us "
        f"| {_verdict(match_met)} |",
    ]
    return "\n".join(lines)


def summary_line(result: ScaleResult) -> str:
    return (
        f"A faasd of its own (pool size 0): {result.asked:,} functions and as many routes created through the API, "
        f"the first and last {len(result.route_first)} of each one at a time; then stopped and started again on "
        "its state dir. `python -m bench.scale` runs this alone."
    )


def history_cell(result: ScaleResult) -> str:
    """Route create last / first, restart s, RSS MiB after it, worst match ns (the history column)."""
    worst = max(result.match.static_ns, result.match.param_ns, result.match.miss_ns)
    return f"{result.route_ratio:.2f} x / {result.start_s:.2f} s / {result.rss_started:.0f} MiB / {worst:,.0f} ns"


# -- alone: python -m bench.scale ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT} functions and routes")
    p.add_argument("--count", type=int, help=f"functions, and as many routes ({COUNT:,}; quick {QUICK_COUNT})")
    p.add_argument("--connections", type=int, default=CONNECTIONS, help="connections of the creates in between")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    args = p.parse_args(argv)
    count = args.count if args.count is not None else (QUICK_COUNT if args.quick else COUNT)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(args.faasd_cmd, count, secrets.token_hex(3), args.limit, args.connections)
    except (BenchError, OSError) as exc:
        print(f"scale: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
