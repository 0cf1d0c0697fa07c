"""Metrics cost: what counting every call (/metrics, usage, the dashboard) costs on the warm path.

faasd counts every call its data plane answers (``faasd.observe.calls``,
recorded when the call ends). ``--call-metrics false`` turns that counting off
and leaves everything else as it is. The phase measures the two side by side:

- two faasd processes of the phase's own (bench/faasd_proc.py: free loopback
  ports, temporary state dirs, pool size 1), started together and both up for
  the whole session: "with" (the default, counting on) and "without"
  (``--call-metrics false``);
- on each, the same hello function (nodejs by default, as the warm path) behind
  the same HTTP route, checked to answer 200 through faasd's port;
- a 1 s warm-up of each (``wrk -t2 -c50``), then rounds of a loaded run of
  S s per side (``wrk -t2 -c50``, as the warm path's loaded run), one faasd
  loaded at a time, the side order alternating by round (with/without, then
  without/with: ABBA, an even R balances who goes first);
- R rounds in all, split between 4 sessions, one after the other: each a pair
  of faasd processes started afresh, the one started first swapped. Two faasd
  processes side by side differ by themselves for as long as they run: in
  A/A runs (``--aa``: the same flags on both) one pair's req/s differed by up
  to 18 % for its whole session, either way, and by little in others; a
  neighbour's load on a shared machine moves the figures by as much. So the
  cost is taken over several pairs, and the table shows each session's ratio;
- per side: the mean over the rounds of req/s and of the p99 (and p50) under
  load; with / without of the means; each round's own pair ratio (the two
  runs back to back): median and [min-max], how much of the ratio is noise;
  the cost = (1 - with / without) x 100 %, judged against the target of at
  most 3 % of throughput;
- faasd's own CPU per request: user + sys of the loaded faasd process
  (``/proc/<pid>/stat``, clock ticks) over each loaded run, divided by the
  requests wrk completed in it; the total over the rounds per side. On a
  shared machine, where a neighbour's burst moves req/s by tens of percent,
  this moves much less: it shows what the counting itself costs;
- proof that the sides differ as meant: ``/metrics`` (admin token) of each is
  read after the warm-up and after the rounds; on "with",
  ``faasd_function_calls_total{code="2xx",function=...}`` must have grown by
  the requests wrk completed over the rounds, within 2 % (wrk counts only
  completed requests; a call in flight when wrk stops may still be counted);
  on "without" the function has no such sample (or 0).

wrk's ``-d`` takes whole seconds, so S is a whole number. Every step is bounded
(a round that could not finish before the phase's time bound is not run; n is
in the table). The functions are deleted; both faasd processes are stopped with
SIGTERM (they remove their containers), anything left with their
``faasd.owner`` labels is removed, and their state dirs go, whatever happened.

    .venv/bin/python -m bench.metrics_cost            # R=8 rounds of 2 s per side, 4 sessions
    .venv/bin/python -m bench.metrics_cost --quick    # R=1 round of 1 s per side, 1 session
    .venv/bin/python -m bench.metrics_cost --aa       # both sides counting: the noise floor
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import docker.errors

from bench import loadgen
from bench.common import ENVIRONMENTS, HELLO, BenchError, Client, Deadline, exit_on_sigterm, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd

DEFAULT_LIMIT = 180.0  # seconds for the whole phase
POOLSIZE = 1
CONNECTIONS = 50
THREADS = 2  # wrk -t, as the warm path's loaded run
WARMUP_SECONDS = 1
SETTLE = 0.5  # seconds between the end of a load and reading /metrics: the last calls have ended
TARGET_PCT = 3.0  # the requirement: counting costs at most 3 % of throughput
COUNT_TOLERANCE = 0.02  # the counted calls match wrk's completed requests within 2 %
WRK_SLACK = 1.5  # seconds a wrk run takes beyond its -d (start, connections, report)
SESSIONS = 4  # pairs of faasd processes, one after the other, the start order swapped
SESSION_SETUP = 30.0  # seconds a pair takes to start, fill its pools, deploy and warm up, at most

SIDES = ("with", "without")
SIDE_TITLES = {"with": "counting on (default)", "without": "`--call-metrics false`"}
AA_TITLE = "counting on too (A/A: the noise floor)"
SIDE_ARGS: dict[str, list[str]] = {"with": [], "without": ["--call-metrics", "false"]}
CALLS_METRIC = "faasd_function_calls_total"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class MetricsCostResult:
    environment: str
    poolsize: int
    connections: int
    threads: int
    seconds: int  # of each loaded run
    rounds_asked: int
    sessions_asked: int
    aa: bool  # an A/A run: "without" counted too (both default), so the ratio shows the noise alone
    loads: dict[str, list[loadgen.Load]]  # side -> one run per round, in round order
    first: list[str]  # side loaded first, per round
    session: list[int]  # the session (pair of faasd processes) of each round
    started_first: list[str]  # side started first, per session
    cpu: dict[str, list[float]]  # side -> faasd's CPU seconds (user + sys) over each loaded run
    counted: dict[str, dict[str, float]]  # side -> code class -> calls /metrics counted over the rounds
    owners: list[dict[str, str]]  # per session: side -> faasd.owner label

    @property
    def sessions(self) -> int:
        return len(self.started_first)

    def session_ratio(self, k: int) -> float:
        """with / without of the session's mean req/s."""
        rps = {side: [r.rps for r, s in zip(self.loads[side], self.session, strict=False) if s == k] for side in SIDES}
        if not (rps["with"] and rps["without"]):
            return math.nan
        return _ratio(statistics.fmean(rps["with"]), statistics.fmean(rps["without"]))

    @property
    def rounds(self) -> int:
        return min(len(self.loads["with"]), len(self.loads["without"]))

    def mean(self, side: str, figure: str) -> float:
        runs = self.loads[side][: self.rounds]
        return statistics.fmean(getattr(run, figure) for run in runs) if runs else math.nan

    def requests(self, side: str) -> int:
        return sum(run.requests for run in self.loads[side][: self.rounds])

    def errors(self, side: str) -> int:
        return sum(run.errors for run in self.loads[side][: self.rounds])

    @property
    def ratio(self) -> float:
        """with / without of the mean req/s."""
        return _ratio(self.mean("with", "rps"), self.mean("without", "rps"))

    @property
    def cost_pct(self) -> float:
        return (1.0 - self.ratio) * 100.0

    def cpu_us(self, side: str) -> float:
        """faasd's CPU microseconds per completed request, over all the side's rounds."""
        done = self.requests(side)
        return sum(self.cpu[side][: self.rounds]) / done * 1e6 if done else math.nan

    @property
    def cpu_ratio(self) -> float:
        return _ratio(self.cpu_us("with"), self.cpu_us("without"))

    @property
    def cpu_pair_ratios(self) -> list[float]:
        per = {
            side: [_ratio(c * 1e6, run.requests) for c, run in zip(self.cpu[side], self.loads[side], strict=False)]
            for side in SIDES
        }
        return [_ratio(w, o) for w, o in zip(per["with"], per["without"], strict=False)]

    @property
    def pair_ratios(self) -> list[float]:
        """Each round's with / without req/s (the two runs back to back)."""
        return [_ratio(w.rps, o.rps) for w, o in zip(self.loads["with"], self.loads["without"], strict=False)]

    @property
    def counted_2xx(self) -> float:
        return self.counted["with"].get("2xx", 0.0)

    @property
    def count_error(self) -> float:
        """How far the counting side's 2xx count lies from wrk's completed requests (a fraction)."""
        done = self.requests("with")
        return self.counted_2xx / done - 1.0 if done else math.nan

    @property
    def counting_ok(self) -> bool:
        return not math.isnan(self.count_error) and abs(self.count_error) <= COUNT_TOLERANCE

    @property
    def uncounted(self) -> float:
        """Calls the non-counting side's /metrics shows for its function (0 when it has no sample)."""
        return sum(self.counted["without"].values())

    @property
    def met(self) -> bool | None:
        return None if self.aa or math.isnan(self.cost_pct) else self.cost_pct <= TARGET_PCT


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


# -- /metrics ------------------------------------------------------------------------------------


def calls_counted(text: str, function: str) -> dict[str, float]:
    """code class -> ``faasd_function_calls_total`` of ``function`` in a Prometheus text exposition."""
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(CALLS_METRIC):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group("name") != CALLS_METRIC:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        if labels.get("function") == function:
            code = labels.get("code", "?")
            counts[code] = counts.get(code, 0.0) + float(match.group("value"))
    return counts


def scrape(faasd: Faasd, admin: Client, function: str) -> dict[str, float]:
    status, raw = admin.request("GET", "/metrics")
    if status != 200:
        raise BenchError(f"GET /metrics of {faasd.url}: {status} {raw[:200]!r}")
    return calls_counted(raw.decode(errors="replace"), function)


def cpu_seconds(pid: int) -> float:
    """user + sys CPU seconds of a process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": fields 3.. of proc(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {code: value - before.get(code, 0.0) for code, value in after.items() if value != before.get(code, 0.0)}


# -- the phase ---------------------------------------------------------------------------------


def _deploy(faasd: Faasd, admin: Client, env: str, name: str, path: str) -> None:
    admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, expect=201)
    admin.json("POST", "/v1/triggers/http", {"method": "GET", "url": path, "function": name}, expect=201)
    status, body = admin.request("GET", path)
    if status != 200:
        raise BenchError(f"{faasd.url}{path}: {status} {body[:200]!r}")


@dataclass
class _Runs:
    """What the sessions gather, round by round."""

    loads: dict[str, list[loadgen.Load]] = field(default_factory=lambda: {side: [] for side in SIDES})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    first: list[str] = field(default_factory=list)
    session: list[int] = field(default_factory=list)
    started_first: list[str] = field(default_factory=list)
    counted: dict[str, dict[str, float]] = field(default_factory=lambda: {side: {} for side in SIDES})
    owners: list[dict[str, str]] = field(default_factory=list)


def _session(
    faasd_cmd: str,
    poolsize: int,
    env: str,
    run_id: str,
    k: int,
    rounds: int,
    seconds: int,
    connections: int,
    deadline: Deadline,
    runs: _Runs,
    aa: bool = False,
) -> None:
    """One pair of faasd processes, started in the session's order, measured for ``rounds`` rounds, stopped."""
    order = SIDES if k % 2 == 0 else SIDES[::-1]  # which of the two starts first alternates by session
    engine = Engine(run_id)
    args = {side: [] if aa else SIDE_ARGS[side] for side in SIDES}
    sides = {side: Faasd(faasd_cmd, poolsize=poolsize, idle_timeout=900, extra_args=args[side]) for side in order}
    name = f"mcost-{run_id}-{k}"
    path = f"/bench/{name}"
    admins: dict[str, Client] = {}
    codes: dict[str, int | None] = {}
    tails: dict[str, str] = {}
    try:
        for side, faasd in sides.items():
            faasd.start()
            admins[side] = faasd.client()
        runs.started_first.append(order[0])
        runs.owners.append({side: faasd.owner for side, faasd in sides.items()})
        for side, faasd in sides.items():
            admin = admins[side]
            wait_for(
                partial(faasd.pools_full, admin, ENVIRONMENTS),
                max(1.0, min(90.0, deadline.left())),
                f"the pools of the '{side}' faasd to fill at start",
                0.1,
            )
            _deploy(faasd, admin, env, name, path)
        urls = {side: f"{faasd.url}{path}" for side, faasd in sides.items()}
        for url in urls.values():
            loadgen.run(url, WARMUP_SECONDS, connections, THREADS)  # warm-up: connections, JIT, caches
        time.sleep(SETTLE)
        before = {side: scrape(sides[side], admins[side], name) for side in SIDES}
        for _ in range(rounds):
            if deadline.left() < 2 * (seconds + WRK_SLACK) + SETTLE + 5:
                break  # report the rounds done so far (n is in the table)
            # Across sessions too: with first, then without first, and so on (ABBA).
            loaded = SIDES if len(runs.first) % 2 == 0 else SIDES[::-1]
            runs.first.append(loaded[0])
            runs.session.append(k)
            for side in loaded:
                pid = sides[side].pid
                used = cpu_seconds(pid)
                runs.loads[side].append(loadgen.run(urls[side], seconds, connections, THREADS))
                runs.cpu[side].append(cpu_seconds(pid) - used)
        time.sleep(SETTLE)
        for side in SIDES:
            for code, value in _delta(scrape(sides[side], admins[side], name), before[side]).items():
                runs.counted[side][code] = runs.counted[side].get(code, 0.0) + value
    finally:
        for admin in admins.values():
            with contextlib.suppress(OSError):
                admin.request("DELETE", f"/v1/functions/{name}?force=true")
            admin.close()
        for side, faasd in sides.items():
            codes[side] = faasd.stop()
            leftover = engine.cleanup(faasd.owner)
            if leftover:
                print(f"metrics cost: removed {leftover} containers of '{side}' left after it stopped", file=sys.stderr)
            tails[side] = faasd.log_tail(5)
            faasd.close()
        engine.close()
    for side in SIDES:
        if codes[side] not in (0, None):
            raise BenchError(f"the '{side}' faasd exited with {codes[side]} on SIGTERM: {tails[side]}")


def measure(
    faasd_cmd: str,
    rounds: int,
    seconds: int,
    run_id: str,
    limit: float = DEFAULT_LIMIT,
    connections: int = CONNECTIONS,
    env: str = "nodejs",
    poolsize: int = POOLSIZE,
    sessions: int = SESSIONS,
    aa: bool = False,
) -> MetricsCostResult:
    """``sessions`` pairs of faasd processes one after the other, the rounds split between them; cleans up."""
    deadline = Deadline(limit, "metrics cost")
    seconds = max(1, int(seconds))
    rounds = max(1, rounds)
    sessions = max(1, min(sessions, rounds))
    runs = _Runs()
    for k in range(sessions):
        if k and deadline.left() < SESSION_SETUP + 2 * (seconds + WRK_SLACK):
            break  # no time for another pair: the rounds done so far (n is in the table)
        share = rounds // sessions + (1 if k < rounds % sessions else 0)
        _session(faasd_cmd, poolsize, env, run_id, k, share, seconds, connections, deadline, runs, aa)
    if not runs.first:
        raise BenchError(f"no round fits in the time bound ({limit:.0f} s)")
    return MetricsCostResult(
        environment=env,
        poolsize=poolsize,
        connections=connections,
        threads=THREADS,
        seconds=seconds,
        rounds_asked=rounds,
        sessions_asked=sessions,
        aa=aa,
        loads=runs.loads,
        first=runs.first,
        session=runs.session,
        started_first=runs.started_first,
        cpu=runs.cpu,
        counted=runs.counted,
        owners=runs.owners,
    )


# -- the table ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _x(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f} x"


def _rounds(n: int) -> str:
    return f"{n} round" + ("" if n == 1 else "s")


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f} %"


def spread(result: MetricsCostResult) -> str:
    """The rounds' own with / without ratios: median [min-max]."""
    ratios = sorted(r for r in result.pair_ratios if not math.isnan(r))
    if not ratios:
        return ""
    return f"{statistics.median(ratios):.3f} [{ratios[0]:.3f}-{ratios[-1]:.3f}]"


def cost_text(result: MetricsCostResult) -> str:
    """The cost in one line: for the main table's value."""
    r = result
    return (
        f"{r.cost_pct:.1f} % ({r.mean('with', 'rps'):,.0f} vs {r.mean('without', 'rps'):,.0f} req/s, "
        f"mean of {r.rounds} x {r.seconds} s"
        + (f" in {r.sessions} sessions" if r.sessions > 1 else "")
        + f"; rounds' ratios {spread(r)}; "
        f"faasd CPU per request {_pct((r.cpu_ratio - 1) * 100)})"
    )


def table(result: MetricsCostResult) -> str:
    r = result
    run = (
        f"wrk -t{r.threads} -c{r.connections}, mean of {r.rounds} x {r.seconds} s"
        + (f" in {r.sessions} sessions" if r.sessions > 1 else "")
        + (f"; {r.rounds_asked} asked, stopped by the time bound" if r.rounds < r.rounds_asked else "")
    )
    lines = [
        f"| metric | {SIDE_TITLES['with']} | {AA_TITLE if r.aa else SIDE_TITLES['without']} | with / without "
        "| rounds' own ratios: median [min-max] |",
        "|---|---|---|---|---|",
    ]
    errors = {side: f" ({r.errors(side)} errors)" if r.errors(side) else "" for side in SIDES}
    rps = {side: r.mean(side, "rps") for side in SIDES}
    lines.append(
        f"| **warm {r.environment} hello through faasd: req/s** ({run}) "
        f"| {rps['with']:,.0f}{errors['with']} | {rps['without']:,.0f}{errors['without']} "
        f"| {_x(r.ratio)} | {spread(r)} |"
    )
    for figure, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        mean = {side: r.mean(side, figure) for side in SIDES}
        pairs = [_ratio(w, o) for w, o in zip(*([getattr(x, figure) for x in r.loads[s]] for s in SIDES), strict=False)]
        pairs = sorted(p for p in pairs if not math.isnan(p))
        own = f"{statistics.median(pairs):.3f} [{pairs[0]:.3f}-{pairs[-1]:.3f}]" if pairs else ""
        lines.append(
            f"| warm, {label} under load ({run}) | {_ms(mean['with'])} | {_ms(mean['without'])} "
            f"| {_x(_ratio(mean['with'], mean['without']))} | {own} |"
        )
    cpu = {side: r.cpu_us(side) for side in SIDES}
    own_cpu = sorted(x for x in r.cpu_pair_ratios if not math.isnan(x))
    lines.append(
        f"| faasd's own CPU (user + sys) per request, over the rounds ({run}) "
        f"| {cpu['with']:.1f} us | {cpu['without']:.1f} us | {_x(r.cpu_ratio)} "
        f"| {f'{statistics.median(own_cpu):.3f} [{own_cpu[0]:.3f}-{own_cpu[-1]:.3f}]' if own_cpu else ''} |"
    )
    if r.sessions > 1:
        each = ", ".join(
            f"{_x(r.session_ratio(k))} ({_rounds(r.session.count(k))}, {r.started_first[k]} started first)"
            for k in range(r.sessions)
        )
        lines.append(f"| req/s with / without per session (a pair of faasd processes of its own) | | | {each} | |")
    verdict = "A/A, none" if r.aa else "n/a" if r.met is None else ("yes" if r.met else "**no**")
    costs = sorted((1 - x) * 100 for x in r.pair_ratios if not math.isnan(x))
    lines.append(
        "| **cost of counting: (1 - with / without) x 100 of req/s** "
        f"| | | **{_pct(r.cost_pct)}** (target <= {TARGET_PCT:g} %: {verdict}) "
        f"| {f'{_pct(costs[0])} to {_pct(costs[-1])}' if costs else ''} |"
    )
    lines.append(f"| requests wrk completed over the rounds | {r.requests('with'):,} | {r.requests('without'):,} | | |")
    other = ", ".join(f"{code} {v:,.0f}" for code, v in sorted(r.counted["with"].items()) if code != "2xx")
    lines.append(
        f'| `{CALLS_METRIC}{{code="2xx"}}` of the function on `/metrics`, grown over the rounds '
        f"| {r.counted_2xx:,.0f} = {_pct(r.count_error * 100)} of wrk's "
        f"(within {COUNT_TOLERANCE * 100:g} %: {'yes' if r.counting_ok else '**no**'})"
        + (f"; other codes: {other} (wrk stopping with calls in flight)" if other else "")
        + (
            f" | {r.counted['without'].get('2xx', 0.0):,.0f} (A/A: counted too) | | |"
            if r.aa
            else f" | {r.uncounted:,.0f} (none: {'yes' if r.uncounted == 0 else '**no**'}) | | |"
        )
    )
    return "\n".join(lines)


def summary_line(result: MetricsCostResult) -> str:
    r = result
    return (
        f"Two faasd processes of its own side by side (pool size {r.poolsize}): one counting "
        "every call (the default), one with `--call-metrics false`; the same hello function behind the same "
        f"route on each, a 1 s warm-up each, then {r.rounds} round(s) of {r.seconds} s loaded per side "
        f"(`wrk -t{r.threads} -c{r.connections}`), one faasd loaded at a time, the side order alternating "
        "(ABBA); figures are means over the rounds, the last column the spread of each round's own ratio. "
        + (
            f"The rounds are split between {r.sessions} sessions, each a pair started afresh, the start order "
            "swapped: two faasd processes side by side can differ by themselves for a whole session (A/A runs, "
            "`--aa`, the same flags on both: up to 18 % in req/s, either way). "
            if r.sessions > 1
            else ""
        )
        + "faasd's own CPU per request is its user + sys over the loaded runs / the requests wrk completed. "
        "`/metrics` of both read after the warm-up and after the rounds proves the one counted every call "
        "and the other none. `python -m bench.metrics_cost` runs this alone."
    )


def history_cell(result: MetricsCostResult) -> str:
    """Cost % / with req/s / without req/s (history column)."""
    r = result
    if math.isnan(r.cost_pct):
        return ""
    return f"{r.cost_pct:.1f} / {r.mean('with', 'rps'):.0f} / {r.mean('without', 'rps'):.0f}"


# -- alone: python -m bench.metrics_cost ----------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.metrics_cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1 round of 1 s per side")
    p.add_argument("--rounds", type=int, help="loaded rounds per side, the order alternating (8; quick 1)")
    p.add_argument("--sessions", type=int, help="pairs of faasd started one after the other (4; quick 1)")
    p.add_argument("--seconds", type=int, help="seconds of each loaded run, whole (wrk -d) (2; quick 1)")
    p.add_argument("--connections", type=int, default=CONNECTIONS, help="connections of the loaded runs")
    p.add_argument("--env", default="nodejs", choices=ENVIRONMENTS, help="environment of the hello function")
    p.add_argument("--poolsize", type=int, default=POOLSIZE, help="faasd --default-poolsize")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--aa", action="store_true", help="both sides counting (an A/A run): the ratio is noise alone")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    args = p.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 8)
    seconds = args.seconds if args.seconds is not None else (1 if args.quick else 2)
    sessions = args.sessions if args.sessions is not None else (1 if args.quick else SESSIONS)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(
            args.faasd_cmd,
            rounds,
            seconds,
            secrets.token_hex(3),
            args.limit,
            args.connections,
            args.env,
            args.poolsize,
            sessions,
            args.aa,
        )
    except (BenchError, docker.errors.DockerException, OSError) as exc:
        print(f"metrics cost: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    generator = "wrk" if loadgen.have_wrk() else "bounded asyncio client (wrk not installed)"
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores; load generator {generator}"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    print(f"\ncost: {cost_text(result)}")
    detail = "; ".join(
        f"{'W' if f == 'with' else 'O'} first: {w.rps:,.0f}/{o.rps:,.0f} req/s {w.p99_ms:.2f}/{o.p99_ms:.2f} ms "
        f"{cw / w.requests * 1e6:.0f}/{co / o.requests * 1e6:.0f} us CPU"
        for f, w, o, cw, co in zip(
            result.first,
            result.loads["with"],
            result.loads["without"],
            result.cpu["with"],
            result.cpu["without"],
            strict=False,
        )
        if w.requests and o.requests
    )
    print(f"rounds (with/without): {detail}", file=sys.stderr)
    for k, (owners, first) in enumerate(zip(result.owners, result.started_first, strict=False)):
        print(f"session {k}: {first} started first; faasd owner labels {owners}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
