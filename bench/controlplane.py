"""Control plane: functions and routes created per second through the API; route matching cost.

Creation is sequential over one keep-alive connection (what a deploy script
does). Route matching is timed in-process on faasd.routing.RouteTable with as
many routes as were registered, half static and half parametrized.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

from bench.common import HELLO, Deadline
from bench.faasd_proc import Faasd

MATCH_ITERATIONS = 50_000  # per kind of path
MATCH_TIME_LIMIT = 2.0  # seconds per kind of path


@dataclass(frozen=True)
class CreateResult:
    functions: int
    functions_per_s: float
    routes: int
    routes_per_s: float


@dataclass(frozen=True)
class MatchResult:
    routes: int
    static_ns: float
    param_ns: float
    miss_ns: float


def route_specs(count: int, run_id: str) -> list[tuple[str, str]]:
    """(method, url) pairs: even ones static, odd ones with a path parameter."""
    specs = []
    for i in range(count):
        if i % 2 == 0:
            specs.append(("GET", f"/r{run_id}/static{i}/items"))
        else:
            specs.append(("GET", f"/r{run_id}/things{i}/{{id}}/detail"))
    return specs


def create_many(faasd: Faasd, run_id: str, count: int, limit: float) -> CreateResult:
    """``count`` functions, then one route to each; both timed; bounded by ``limit`` seconds."""
    deadline = Deadline(limit / 2, "function creations")
    admin = faasd.client()
    names: list[str] = []
    try:
        began = time.perf_counter()
        for i in range(count):
            if deadline.passed():  # report what was made (the count is in the table)
                break
            env = "python" if i % 2 else "nodejs"
            name = f"cp-{run_id}-{i}"
            admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, expect=201)
            names.append(name)
        functions_s = time.perf_counter() - began
        deadline = Deadline(limit / 2, "route creations")
        routes = 0
        began = time.perf_counter()
        for name, (method, url) in zip(names, route_specs(len(names), run_id), strict=True):
            if deadline.passed():
                break
            admin.json("POST", "/v1/triggers/http", {"method": method, "url": url, "function": name}, expect=201)
            routes += 1
        routes_s = time.perf_counter() - began
    finally:
        admin.close()
    return CreateResult(len(names), len(names) / functions_s, routes, routes / routes_s)


def match_cost(count: int, run_id: str = "x") -> MatchResult:
    """ns per RouteTable.match: a static hit, a parametrized hit and a miss (404), averaged over paths."""
    from faasd.core.errors import FaasdError
    from faasd.dataplane.routing import RouteTable

    specs = route_specs(count, run_id)
    table = RouteTable((method, url, f"fn{i}") for i, (method, url) in enumerate(specs))
    static_paths = [url for _, url in specs if "{" not in url]
    param_paths = [url.replace("{id}", "42") for _, url in specs if "{" in url]
    # A miss as long as the parametrized routes: the table has to try every one of them.
    miss_paths = [f"/r{run_id}/nothing{i}/42/detail" for i in range(max(1, count // 2))]
    rng = random.Random(6)

    def cost(paths: list[str]) -> float:
        if not paths:
            return float("nan")
        sample = [rng.choice(paths) for _ in range(100)]
        done = 0
        deadline = time.monotonic() + MATCH_TIME_LIMIT
        began = time.perf_counter_ns()
        for _ in range(MATCH_ITERATIONS // len(sample)):
            for path in sample:
                with contextlib.suppress(FaasdError):
                    table.match("GET", path)
            done += len(sample)
            if time.monotonic() > deadline:
                break
        return (time.perf_counter_ns() - began) / max(1, done)

    return MatchResult(count, cost(static_paths), cost(param_paths), cost(miss_paths))
