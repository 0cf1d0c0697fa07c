"""The results table: printed, and written to BENCHMARKS.md with a growing history.

BENCHMARKS.md keeps three parts: a fixed introduction, the latest run (between
markers, replaced on every run) and a history table (one row appended per run,
never rewritten), so before/after figures of later changes sit side by side.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.burst import BurstResult
from bench.burst import rows as burst_rows
from bench.cluster import ClusterResult
from bench.cluster import history_cell as cluster_history
from bench.cluster import summary_line as cluster_summary
from bench.cluster import table as cluster_table
from bench.coldstart import ColdResult
from bench.controlplane import CreateResult, MatchResult
from bench.density import DensityResult
from bench.density import history_cell as density_history
from bench.density import summary_line as density_summary
from bench.density import table as density_table
from bench.devloop import TARGET_MS as DEVLOOP_TARGET_MS
from bench.devloop import DevloopResult
from bench.devloop import history_cell as devloop_history
from bench.devloop import summary_line as devloop_summary
from bench.devloop import table as devloop_table
from bench.devloop import value_text as devloop_text
from bench.events import EventsResult
from bench.events import history_cell as events_history
from bench.events import summary_line as events_summary
from bench.events import table as events_table
from bench.isolation import IsolationResult
from bench.isolation import summary_line as isolation_summary
from bench.isolation import table as isolation_table
from bench.metrics_cost import COUNT_TOLERANCE as METRICS_COUNT_TOLERANCE
from bench.metrics_cost import TARGET_PCT as METRICS_COST_PCT
from bench.metrics_cost import MetricsCostResult
from bench.metrics_cost import cost_text as metrics_cost_text
from bench.metrics_cost import history_cell as metrics_cost_history
from bench.metrics_cost import summary_line as metrics_cost_summary
from bench.metrics_cost import table as metrics_cost_table
from bench.mq import MqResult
from bench.mq import history_cell as mq_history
from bench.mq import summary_line as mq_summary
from bench.mq import table as mq_table
from bench.packages import PackagesResult
from bench.packages import history_cell as packages_history
from bench.packages import summary_line as packages_summary
from bench.packages import table as packages_table
from bench.scale import ScaleResult
from bench.scale import history_cell as scale_history
from bench.scale import summary_line as scale_summary
from bench.scale import table as scale_table
from bench.warm import RATIO_TARGETS, WarmResult
from bench.warm import extra_rows as warm_extra_rows

LATEST_START = "<!-- bench:latest:start -->"
LATEST_END = "<!-- bench:latest:end -->"
HISTORY_MARK = "<!-- bench:history (rows are appended below this line) -->"

# Targets of issue 6 for a 2-core machine.
POOL_WARM_P50 = {"python": 10.0, "nodejs": 15.0}
POOL_WARM_P99 = 40.0
NO_POOL_RATIO = 1.2
WARM_RATIO = 0.5
ADDED_P50_MS = 0.5

HISTORY_COLUMNS = (
    "date",
    "commit",
    "label",
    "pool-warm node p50/p99 ms",
    "pool-warm py p50/p99 ms",
    "no-pool/bare node",
    "no-pool/bare py",
    "warm req/s faasd (x direct)",
    "added p50 ms",
    "burst ms / errors",
    "RSS idle/1k/load MiB",
    "fn/s",
    "match ns",
    "pkg redeploy node/py ms",
    "async start ms / deliveries/s / timer ms",
    "mq msg/s / latency p50/p99 ms",
    "metrics cost % / req/s with / without",
    "dev save to answer p50/p90 ms",
    "scale 10k: route create last/first, start s, RSS MiB, match ns",
    "density 500: RSS / warm p50 x 1 instance",
    "cluster: PG route create / propagation p99 / failover",
)


@dataclass
class Machine:
    date: str
    cores: int
    memory: str
    commit: str
    kernel: str
    docker: str
    python: str
    load_generator: str


@dataclass
class Results:
    machine: Machine
    quick: bool
    label: str = ""
    pool_warm: list[ColdResult] = field(default_factory=list)
    no_pool: list[ColdResult] = field(default_factory=list)
    warm: WarmResult | None = None
    burst: BurstResult | None = None
    rss_idle: float = math.nan
    rss_registered: float = math.nan
    created: CreateResult | None = None
    match: MatchResult | None = None
    isolation: IsolationResult | None = None
    packages: PackagesResult | None = None
    events: EventsResult | None = None
    mq: MqResult | None = None
    metrics_cost: MetricsCostResult | None = None
    devloop: DevloopResult | None = None
    scale: ScaleResult | None = None
    density: DensityResult | None = None
    cluster: ClusterResult | None = None
    errors: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)  # caption -> PNG path, relative to BENCHMARKS.md
    elapsed_s: float = math.nan
    # 1-minute load average at start and end: other work on a shared machine shows here.
    load_before: float = math.nan
    load_after: float = math.nan


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    target: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("yes" if self.met else "**no**")


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _x(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} x"


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _ok(value: float, limit: float, above: bool = False) -> bool | None:
    if math.isnan(value):
        return None
    return value >= limit if above else value <= limit


def rows(r: Results) -> list[Row]:
    out: list[Row] = []
    for c in r.pool_warm:
        limit = POOL_WARM_P50.get(c.environment, POOL_WARM_P50["nodejs"])
        s = c.faasd
        out.append(
            Row(
                f"1. pool-warm first call, {c.environment}, p50 (n={s.count})",
                _ms(s.p50),
                f"<= {limit:g} ms",
                _ok(s.p50, limit),
            )
        )
        out.append(
            Row(
                f"1. pool-warm first call, {c.environment}, p99 (max {_ms(s.max)})",
                _ms(s.p99),
                f"<= {POOL_WARM_P99:g} ms",
                _ok(s.p99, POOL_WARM_P99),
            )
        )
    for c in r.no_pool:
        bare = c.bare
        if bare is None:
            continue
        ratio = _ratio(c.faasd.p50, bare.p50)
        out.append(
            Row(
                f"2. bare container start to first 200, {c.environment}, p50 (n={bare.count})",
                f"{_ms(bare.p50)} (p99 {_ms(bare.p99)})",
                "reference",
            )
        )
        out.append(
            Row(
                f"2. no-pool first call, {c.environment}, p50 (n={c.faasd.count})",
                f"{_ms(c.faasd.p50)} (p99 {_ms(c.faasd.p99)}) = {_x(ratio)} bare",
                f"<= {NO_POOL_RATIO:g} x bare",
                _ok(ratio, NO_POOL_RATIO),
            )
        )
    if r.warm is not None:
        w = r.warm
        direct = w.targets.get("direct")
        for name, label in (
            ("direct", "direct to the container"),
            ("proxy", "minimal aiohttp proxy"),
            ("faasd", "faasd"),
        ):
            t = w.targets.get(name)
            if t is None or direct is None:
                continue
            ratio = _ratio(t.loaded.rps, direct.loaded.rps)
            is_faasd = name == "faasd"
            target = RATIO_TARGETS.get(w.connections, WARM_RATIO)  # issue 16's at c50
            out.append(
                Row(
                    f"3. warm {w.environment} hello, {label}: req/s (c{w.connections})",
                    f"{t.loaded.rps:,.0f} = {_x(ratio)} direct"
                    + (f", {t.loaded.errors} errors" if t.loaded.errors else ""),
                    f">= {target:g} x direct" if is_faasd else "reference",
                    _ok(ratio, target, above=True) if is_faasd else None,
                )
            )
            out.append(
                Row(
                    f"3. warm, {label}: p50 / p99 under load (c{w.connections})",
                    f"{_ms(t.loaded.p50_ms)} / {_ms(t.loaded.p99_ms)} = "
                    f"{_x(_ratio(t.loaded.p50_ms, direct.loaded.p50_ms))} / "
                    f"{_x(_ratio(t.loaded.p99_ms, direct.loaded.p99_ms))} direct",
                )
            )
            out.append(
                Row(
                    f"3. warm, {label}: p50 / p99 on one connection",
                    f"{_ms(t.unloaded.p50_ms)} / {_ms(t.unloaded.p99_ms)} = "
                    f"{_x(_ratio(t.unloaded.p50_ms, direct.unloaded.p50_ms))} / "
                    f"{_x(_ratio(t.unloaded.p99_ms, direct.unloaded.p99_ms))} direct",
                )
            )
        faasd = w.targets.get("faasd")
        if faasd is not None and direct is not None:
            added = faasd.unloaded.p50_ms - direct.unloaded.p50_ms
            out.append(
                Row(
                    "3. warm, faasd's added p50 over direct (one connection)",
                    f"{added:+.3f} ms",
                    f"<= {ADDED_P50_MS:g} ms",
                    _ok(added, ADDED_P50_MS),
                )
            )
            out.append(
                Row(
                    f"3. warm, faasd's added p50 over direct under load (c{w.connections})",
                    f"{faasd.loaded.p50_ms - direct.loaded.p50_ms:+.3f} ms",
                )
            )
        out += [Row(*row) for row in warm_extra_rows(w)]
    if r.burst is not None:
        out += [Row(*row) for row in burst_rows(r.burst)]
    if not math.isnan(r.rss_idle):
        out.append(Row("5. faasd RSS idle (pools full)", f"{r.rss_idle:.1f} MiB"))
    if r.warm is not None and r.warm.faasd_peak_rss_mib:
        out.append(Row("5. faasd RSS peak under the warm load", f"{r.warm.faasd_peak_rss_mib:.1f} MiB"))
    if r.created is not None and not math.isnan(r.rss_registered):
        out.append(
            Row(
                f"5. faasd RSS with {r.created.functions:,} functions and {r.created.routes:,} routes",
                f"{r.rss_registered:.1f} MiB",
            )
        )
    if r.created is not None:
        made = r.created
        out.append(
            Row(f"6. functions created per second (sequential, {made.functions:,})", f"{made.functions_per_s:,.0f}/s")
        )
        out.append(Row(f"6. routes created per second (sequential, {made.routes:,})", f"{made.routes_per_s:,.0f}/s"))
    if r.match is not None:
        m = r.match
        out.append(
            Row(
                f"6. route match with {m.routes:,} routes: static / parametrized / miss",
                f"{m.static_ns:,.0f} / {m.param_ns:,.0f} / {m.miss_ns:,.0f} ns",
            )
        )
    if r.metrics_cost is not None:
        mc = r.metrics_cost
        out.append(
            Row(
                f"8. warm {mc.environment} hello: throughput cost of counting every call "
                f"(with vs `--call-metrics false`, c{mc.connections})",
                metrics_cost_text(mc),
                f"<= {METRICS_COST_PCT:g} %",
                mc.met,
            )
        )
        out.append(
            Row(
                "8. calls counted on `/metrics` (with) vs requests wrk completed; counted without",
                f"{mc.counted_2xx:,.0f} vs {mc.requests('with'):,}; {mc.uncounted:,.0f}",
                f"within {METRICS_COUNT_TOLERANCE * 100:g} %; 0",
                mc.counting_ok and mc.uncounted == 0,
            )
        )
    if r.devloop is not None:
        d = r.devloop
        out.append(
            Row(
                f"9. `faas dev`: save to the new code's answer, code-only change of a {d.environment} file, p50 / p90",
                devloop_text(d),
                f"p90 < {DEVLOOP_TARGET_MS / 1000:g} s",
                d.met,
            )
        )
    for phase, message in r.errors.items():
        out.append(Row(f"failed phase: {phase}", message[:160].replace("\n", " "), "runs", False))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(r: Results) -> str:
    lines = ["| metric | value | target | met |", "|---|---|---|---|"]
    lines += [f"| {_cell(x.metric)} | {_cell(x.value)} | {_cell(x.target)} | {x.verdict} |" for x in rows(r)]
    for caption, path in r.figures.items():
        lines += ["", f"![{caption}]({path})"]
    if r.isolation is not None:
        lines += ["", "### Isolation", "", isolation_summary(r.isolation), "", isolation_table(r.isolation)]
    if r.packages is not None:
        lines += ["", "### Packages", "", packages_summary(r.packages), "", packages_table(r.packages)]
    if r.events is not None:
        lines += ["", "### Events", "", events_summary(r.events), "", events_table(r.events)]
    if r.mq is not None:
        lines += ["", "### Message queues", "", mq_summary(r.mq), "", mq_table(r.mq)]
    if r.metrics_cost is not None:
        mc = r.metrics_cost
        lines += ["", "### Metrics cost", "", metrics_cost_summary(mc), "", metrics_cost_table(mc)]
    if r.devloop is not None:
        lines += ["", "### Dev loop", "", devloop_summary(r.devloop), "", devloop_table(r.devloop)]
    if r.scale is not None:
        lines += ["", "### Registry scale", "", scale_summary(r.scale), "", scale_table(r.scale)]
    if r.density is not None:
        lines += ["", "### Density", "", density_summary(r.density), "", density_table(r.density)]
    if r.cluster is not None:
        lines += ["", "### Several nodes", "", cluster_summary(r.cluster), "", cluster_table(r.cluster)]
    return "\n".join(lines)


def header(r: Results) -> str:
    m = r.machine
    mode = "quick mode (tiny samples; proves the suite runs, not the figures)" if r.quick else "full run"
    return (
        f"- date: {m.date}; {mode}; took {r.elapsed_s:.0f} s; "
        f"load average {r.load_before:.1f} at start, {r.load_after:.1f} at end\n"
        f"- machine: {m.cores} cores, {m.memory} memory; {m.kernel}; Docker {m.docker}; Python {m.python}\n"
        f"- commit: {m.commit}" + (f"; label: {r.label}" if r.label else "") + "\n"
        f"- load generator: {m.load_generator}"
        + (f"; warm path's direct target: {r.warm.direct_source}" if r.warm else "")
    )


def history_row(r: Results) -> str:
    def cold(env: str) -> str:
        c = next((c for c in r.pool_warm if c.environment == env), None)
        return f"{c.faasd.p50:.1f} / {c.faasd.p99:.1f}" if c else ""

    def nopool(env: str) -> str:
        c = next((c for c in r.no_pool if c.environment == env), None)
        return f"{_ratio(c.faasd.p50, c.bare.p50):.2f}" if c and c.bare else ""

    warm, added = "", ""
    if r.warm is not None and {"faasd", "direct"} <= set(r.warm.targets):
        f, d = r.warm.targets["faasd"], r.warm.targets["direct"]
        warm = f"{f.loaded.rps:,.0f} ({_ratio(f.loaded.rps, d.loaded.rps):.2f})"
        added = f"{f.unloaded.p50_ms - d.unloaded.p50_ms:.2f}"
    burst = f"{r.burst.completion_ms:.0f} / {r.burst.errors}" if r.burst else ""
    peak = r.warm.faasd_peak_rss_mib if r.warm else math.nan
    rss = f"{r.rss_idle:.0f} / {r.rss_registered:.0f} / {peak:.0f}"
    fns = f"{r.created.functions_per_s:.0f}" if r.created else ""
    match = f"{r.match.static_ns:.0f} / {r.match.param_ns:.0f}" if r.match else ""
    label = r.label + (" (quick)" if r.quick else "")
    cells = (
        r.machine.date,
        r.machine.commit,
        label,
        cold("nodejs"),
        cold("python"),
        nopool("nodejs"),
        nopool("python"),
        warm,
        added,
        burst,
        rss,
        fns,
        match,
        packages_history(r.packages) if r.packages else "",
        events_history(r.events) if r.events else "",
        mq_history(r.mq) if r.mq else "",
        metrics_cost_history(r.metrics_cost) if r.metrics_cost else "",
        devloop_history(r.devloop) if r.devloop else "",
        scale_history(r.scale) if r.scale else "",
        density_history(r.density) if r.density else "",
        cluster_history(r.cluster) if r.cluster else "",
    )
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


INTRO = """# faasd benchmarks

`make bench` starts its own faasd (free loopback port, temporary state dir,
pool size 3), measures the six figures of issue 6 against it and against
references measured in the same run, prints the table and rewrites the
"Latest run" section below; it also appends one row to "History". It sends
traffic only to loopback and to the containers faasd and the suite start,
bounds every loop by count and time, and removes every container it started
(faasd's by its `faasd.owner` label, its own by `faasd.bench.run`). It takes
about 4-5 minutes; each phase also has a time bound (pool-warm 45 s per
environment, no-pool 75 s, control plane 60 s, isolation starts 90 s), so on a busy machine a phase
stops early and its row shows the n it reached. `make bench-quick` runs every phase with tiny samples and
writes nothing here: it proves the suite runs, never that faasd is fast.
`.venv/bin/python -m bench --help` lists the knobs (samples, durations,
`--label` for the history row, `--faasd-cmd` to measure another build).

What each figure is:

1. **Pool-warm cold start**: with the environment's pool full, create a new
   function and time its first call end to end (`GET /function/<name>` on a
   kept-alive loopback connection). Between samples the suite waits until the
   pools are full again and the previous sample's container is removed.
2. **No-pool cold start**: the same with pool size 0 (the first call waits
   for a container start), interleaved sample by sample with a bare
   container start of the same image by the Docker SDK (create + start with
   faasd's own container options, then `GET /healthz` every 2 ms until 200).
3. **Warm path**: a hello function (nodejs) behind a route, loaded with `wrk
   -t2 -c50`, next to the very container faasd specialized called at its own
   address ("direct"), and next to `bench/miniproxy.py` (aiohttp, one pooled
   ClientSession) in front of it; each also over one connection (`-t1 -c1`):
   latency without queueing. After a 1 s warm-up each, 3 rounds of 3 s loaded
   + 1 s one-connection per target, the targets in a rotating order; every
   figure is the median over the rounds. The added-latency target is judged on that one-connection p50
   (under a saturating load the p50 is queueing, i.e. throughput again).
4. **Burst**: 20 new functions (10 nodejs, 10 python) created while the pools
   (3 each) are full, then 200 first calls sent at once (10 per function, one
   connection each); completion is from the first send to the last answer.
5. **faasd memory**: VmRSS of the faasd process idle with full pools, its
   peak during the loaded warm run, and after 1,000 functions and 1,000
   routes are registered (not called).
6. **Control plane**: 1,000 `POST /v1/functions`, then 1,000
   `POST /v1/triggers/http` (half static, half `{param}` URLs), sequential on
   one keep-alive connection; and `faasd.routing.RouteTable.match` timed
   in-process with the same 1,000 routes (ns per call, averaged over random
   paths: static hit, parametrized hit, 404 miss).
7. **Isolation** (its own table): what faasd's container isolation costs.
   Two networks made for the run: a plain bridge (Docker's defaults, no
   faasd chain) and an isolated one as faasd makes its own (inter-container
   traffic off, faasd's `HostFirewall` chains set up on it). Per environment:
   15 container starts per side, alternating (create + start with faasd's
   options and specialization token, then `GET /healthz` every 5 ms until
   200, as faasd starts one; p50 / p90), and one specialized hello container
   per side called straight from the host: 8 rounds of 1 s `wrk -t1 -c10`
   and 1 s `wrk -t1 -c1` per side, the side order alternating (means over
   the rounds; the last column shows the spread of each pair's own ratio).
   `.venv/bin/python -m bench.isolation` runs it alone and prints its table.
8. **Metrics cost** (its own table): what counting every call (`/metrics`,
   usage, the dashboard) costs on the warm path. Two faasd processes side by
   side (pool size 1), one with `--call-metrics false`, the same nodejs hello
   behind a route on each; after a 1 s warm-up each, rounds of 2 s `wrk -t2
   -c50` per side, one faasd loaded at a time, the side order alternating
   (ABBA); 8 rounds in all, split between 4 such pairs started one after the
   other, the start order swapped (two faasd side by side can differ by
   themselves); cost = (1 - with / without) of the mean req/s, target at
   most 3 %; faasd's own CPU per request (user + sys) is shown too.
   `/metrics` of both proves one counted every call wrk completed (within
   2 %) and the other none. `.venv/bin/python -m bench.metrics_cost` runs it
   alone and prints its table.
9. **Dev loop** (its own table): `faas dev FILE --env python` (the installed
   `faas`, in a subprocess, against a faasd of the phase's own, pool size 3)
   on a one-file function; 10 times, once the pools are full again, the file
   is written with a new marker and its route polled every 10 ms until it
   answers it: save to the new code's answer (the watcher, faas dev's 50 ms
   wait for the end of a burst of saves, the update, the new revision's first
   call), p50 / p90 against the target of under one second (judged on the
   p90); faas dev's own figure for each redeploy is shown next to it; Ctrl-C
   must leave nothing behind. `.venv/bin/python -m bench.devloop` runs it
   alone and prints its table.

10. **Registry scale** (its own table): a faasd of its own with pool size 0
   (no container starts, nothing called) gets 10,000 functions (half nodejs,
   half python, each its own code blob) and 10,000 routes (one per function,
   half static, half with a `{param}` segment) through the admin API. The
   first and the last 500 creates of each kind are sent one at a time on one
   keep-alive connection and timed (those between over 4 connections): a
   write that stays O(1) in what is registered keeps the last / first p50
   ratio near 1 (target at most 1.5 x for routes). Then faasd's VmRSS; then
   faasd stopped (SIGTERM) and started again on the same state dir: spawn to
   the first 200 on `/healthz` (target under 3 s), the registry load faasd
   logs, the last function and route answering by name, and VmRSS again
   (target at most 200 MB). Last, `RouteTable.match` in-process with 10,000
   routes of the same shapes (ns per call: static hit, parametrized hit,
   404 miss; target under 5 us). `.venv/bin/python -m bench.scale` runs it
   alone (`--quick`: 400 of each).

11. **Density** (its own table): a faasd of its own (pool size 3, idle
   timeout one hour) gets 500 functions, half nodejs, half python, each
   called once and so kept warm: 500 instances alive at once. faasd's VmRSS
   (target at most 150 MB) and open descriptors with them; warm calls to one
   function (`wrk -t1 -c1`, rounds of 1 s) with only its instance alive, with
   all 500, and with one again once the others are deleted (B-A-B): the
   500-alive p50 against the mean of the two one-alive blocks (target within
   10 %); memory per idle instance per runtime from `docker stats` for a
   sample, and its containerd-shim. `.venv/bin/python -m bench.density` runs
   it alone (`--quick`: 40 instances).

12. **Several nodes** (its own table): faasd processes of the phase's own
   and a PostgreSQL server of its own (Debian's, in a temporary directory,
   fsync on). Registry writes: 200 function creates and 200 route creates,
   one at a time, on a faasd with its own SQLite file and on one with a
   PostgreSQL database (p50 / p99). Propagation: two nodes on one registry
   (a shared SQLite file, then PostgreSQL), 50 route creates and 50
   function updates through node A, each timed from A's answer until B
   serves it (polled every 2 ms; target under 1 s). Failover: two nodes on
   PostgreSQL, 40 asynchronous calls of 0.2 s through A, A killed with
   SIGKILL once it finished a few: from the kill to B's first attempt on
   one of A's calls (target: within the lease, 30 s by default, plus B's
   1 s claim period) and to the last call succeeding, and how many were
   delivered twice (those running on A: at least once).
   `.venv/bin/python -m bench.cluster` runs it alone.

The machine is often shared: absolute figures move by tens of percent
between runs; the ratios measured in the same run move much less.
"""


KEPT_START = "<!-- bench:kept:start (written by hand; make bench keeps it) -->"
KEPT_END = "<!-- bench:kept:end -->"


def write(path: Path, r: Results) -> None:
    latest = f"{LATEST_START}\n{header(r)}\n\n{table(r)}\n{LATEST_END}"
    history_rows: list[str] = []
    kept = ""
    if path.exists():
        old = path.read_text()
        # Sections measured by hand, outside `make bench` (e.g. bench/install_time.sh): kept as they are.
        if KEPT_START in old and KEPT_END in old:
            kept = KEPT_START + old.split(KEPT_START, 1)[1].split(KEPT_END, 1)[0] + KEPT_END + "\n\n"
        if HISTORY_MARK in old:
            tail = old.split(HISTORY_MARK, 1)[1]
            history_rows = [
                line for line in tail.splitlines() if line.startswith("| ") and re.match(r"\| \d{4}-", line)
            ]
    history_rows.append(history_row(r))
    text = (
        f"{INTRO}\n## Latest run\n\n{latest}\n\n{kept}## History\n\n"
        "One row per `make bench` run, oldest first; figures as in the table above "
        "(`match ns` = static / parametrized; `async start ms / deliveries/s / timer ms` = "
        "idle-queue accept to start p50 / deliveries per second / timer scheduled time to start p50; "
        "`mq msg/s / latency p50/p99 ms` = messages per second through a Redis trigger with maxconcurrency 50 / "
        "publish to answer p50 / p99; `metrics cost % / req/s with / without` = throughput cost of counting "
        "every call, then the mean req/s with counting and with `--call-metrics false`; "
        "`dev save to answer p50/p90 ms` = `faas dev`: from saving a file to the new code answering).\n\n"
        f"{HISTORY_MARK}\n"
        f"| {' | '.join(HISTORY_COLUMNS)} |\n|{'---|' * len(HISTORY_COLUMNS)}\n" + "\n".join(history_rows) + "\n"
    )
    path.write_text(text)
