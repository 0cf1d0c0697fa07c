"""Density: many warm instances held at once.

A faasd of the phase's own (bench/faasd_proc.py: free loopback port, temporary
state dir, pool size 3, ``--idle-timeout 3600`` so nothing is reaped, and
``--start-concurrency`` as given), N functions (500; quick 40), half nodejs,
half python, each called once (``GET /function/<name>``, at most
``IN_FLIGHT`` first calls at a time) and so kept warm: N instances alive, each
its own container.

- **faasd's memory**: VmRSS idle with full pools, with the one probe instance,
  and with N instances (after a 2 s settle); the growth per instance; its peak
  while the instances were made; faasd's open file descriptors (each instance
  holds its log stream to the engine, and any keep-alive connection to it).
- **warm calls with N instances alive versus one**: the probe function, made
  first, called through faasd on one keep-alive connection (``wrk -t1 -c1``,
  ``ROUND`` s a round): rounds with only the probe's instance alive, then with
  N alive, then with one again once the N-1 others are deleted and their
  containers gone (B-A-B: drift over the phase shows as the two B blocks
  differing); each block's figure is the median of its rounds' p50, and the
  N-alive p50 is compared with the mean of the two one-alive blocks (target:
  within 10 %).
- **memory per idle instance, per runtime**: the engine's own figure (``docker
  stats``: the container's memory usage less its inactive file cache, as the
  CLI shows it) for a sample of ``SAMPLE`` instances per runtime (the API's
  one-shot stats), median and range; and the host's ``containerd-shim`` process
  of each sampled container (VmRSS), which every container has beside it.
- how long the N first calls took (containers per second; the engine's
  starts are the bound), and that all N instances were still alive at the end.

Every loop is bounded by count and by the phase's time bound (instances not
made in time are not made; n is in the table). faasd is stopped with SIGTERM
(it removes its containers; a long grace for N removals), anything left with
its ``faasd.owner`` label is removed, and the state dir goes.

    .venv/bin/python -m bench.density            # 500 instances, 8 rounds per block
    .venv/bin/python -m bench.density --quick    # 40 instances, 2 rounds per block
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import docker
import docker.errors

from bench import loadgen
from bench.common import ENVIRONMENTS, HELLO, BenchError, Deadline, exit_on_sigterm, wait_for
from bench.engine import RUNTIME_PORT, Engine
from bench.faasd_proc import Faasd
from bench.memory import RssSampler, rss_mib

POOLSIZE = 3
IDLE_TIMEOUT = 3600  # seconds: nothing is reaped during the phase
IN_FLIGHT = 16  # first calls at a time while the instances are made
ROUND = 1.0  # seconds of one warm round (wrk -t1 -c1)
SAMPLE = 10  # instances per runtime whose memory is read
SETTLE = 2.0  # seconds after the last first call before faasd's memory is read
IDLE_WINDOW = 20.0  # seconds without calls over which faasd's own CPU is read
RENAME_WAIT = 90.0  # seconds the instances' renames may take (faasd gives names once no start is in flight)
DEFAULT_LIMIT = 900.0  # seconds for the whole phase
TARGET_RSS_MIB = 150.0  # issue 16: faasd's RSS with 500 warm instances
TARGET_P50_RATIO = 1.10  # issue 16: warm p50 with 500 instances within 10 % of one
STOP_TIMEOUT = 240.0  # faasd removes N containers at SIGTERM


@dataclass(frozen=True)
class RuntimeMemory:
    environment: str
    sampled: int
    usage_mib: list[float]  # docker stats' figure per sampled container
    shim_mib: list[float]  # the containerd-shim process of each (host VmRSS), where found

    @property
    def median(self) -> float:
        return statistics.median(self.usage_mib) if self.usage_mib else math.nan

    @property
    def shim_median(self) -> float:
        return statistics.median(self.shim_mib) if self.shim_mib else math.nan


@dataclass(frozen=True)
class DensityResult:
    asked: int  # N
    made: int  # instances made (first calls answered 200)
    alive_at_end: int  # instances faasd reported just before the deletes
    errors: int
    first_error: str
    make_s: float  # first to last first call
    start_concurrency: int
    rss_idle: float  # MiB, pools full, no instance
    rss_one: float  # one instance (the probe)
    rss_all: float  # N instances
    rss_peak: float  # while the instances were made
    rss_after: float  # the others deleted, their containers gone
    fds_one: int
    fds_all: int
    one_before: list[loadgen.Load]  # rounds with one instance alive, before
    all_alive: list[loadgen.Load]  # rounds with N alive
    one_after: list[loadgen.Load]  # rounds with one alive again
    memory: list[RuntimeMemory] = field(default_factory=list)
    # The same rounds straight to the probe's container (the machine's own share of any change).
    direct_before: list[loadgen.Load] = field(default_factory=list)
    direct_all: list[loadgen.Load] = field(default_factory=list)
    direct_after: list[loadgen.Load] = field(default_factory=list)
    cpu_one: float = math.nan  # faasd's CPU without calls, % of one core, one instance
    cpu_all: float = math.nan  # the same with N instances

    @property
    def direct_one(self) -> float:
        blocks = [b for b in (_p50(self.direct_before), _p50(self.direct_after)) if not math.isnan(b)]
        return sum(blocks) / len(blocks) if blocks else math.nan

    @property
    def added_one(self) -> float:
        """faasd's added p50 over direct with one instance alive (the two blocks' mean)."""
        return self.p50_one - self.direct_one

    @property
    def added_all(self) -> float:
        return self.p50_all - _p50(self.direct_all)

    @property
    def per_instance_kib(self) -> float:
        n = self.made - 1
        return (self.rss_all - self.rss_one) * 1024 / n if n > 0 else math.nan

    @property
    def p50_one(self) -> float:
        blocks = [_p50(self.one_before), _p50(self.one_after)]
        blocks = [b for b in blocks if not math.isnan(b)]
        return sum(blocks) / len(blocks) if blocks else math.nan

    @property
    def p50_all(self) -> float:
        return _p50(self.all_alive)

    @property
    def p50_ratio(self) -> float:
        return self.p50_all / self.p50_one if self.p50_one else math.nan


def _p50(rounds: list[loadgen.Load]) -> float:
    return statistics.median(r.p50_ms for r in rounds) if rounds else math.nan


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def _first_calls(url: str, names: list[str], deadline: Deadline) -> tuple[int, list[str], float]:
    """Call each function once, IN_FLIGHT at a time; returns (answered 200, errors, seconds)."""
    ok = 0
    errors: list[str] = []
    gate = asyncio.Semaphore(IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def call(name: str) -> None:
            nonlocal ok
            async with gate:
                if deadline.left() < 30:
                    errors.append(f"{name}: not called, the phase's time bound is near")
                    return
                try:
                    async with session.get(f"{url}/function/{name}") as response:
                        body = await response.read()
                        if response.status == 200 and body.strip() == b"hello":
                            ok += 1
                        else:
                            errors.append(f"{name}: {response.status} {body[:120]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{name}: {exc!r}")

        began = time.perf_counter()
        await asyncio.gather(*(call(name) for name in names))
        return ok, errors, time.perf_counter() - began


def _rounds(url: str, direct: str, count: int, deadline: Deadline) -> tuple[list[loadgen.Load], list[loadgen.Load]]:
    """``count`` rounds through faasd and as many straight to the instance, alternating (which goes first too)."""
    loadgen.run(url, ROUND, 1, 1)  # warm-up rounds, not counted
    loadgen.run(direct, ROUND, 1, 1)
    through: list[loadgen.Load] = []
    straight: list[loadgen.Load] = []
    for k in range(count):
        if deadline.left() < 2 * ROUND + 30:
            break
        for target in (url, direct) if k % 2 == 0 else (direct, url):
            (through if target == url else straight).append(loadgen.run(target, ROUND, 1, 1))
    return through, straight


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_cpu(pid: int, seconds: float = IDLE_WINDOW) -> float:
    """faasd's CPU (user + system) over ``seconds`` without calls, in % of one core."""
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds * 100


def _renamed(engine: Engine, owner: str, prefix: str, count: int) -> bool:
    """Whether ``count`` of faasd's containers carry their function's name (faasd renames them when idle)."""
    names = [n for c in engine.owned(owner) for n in c.get("Names") or []]
    return sum(1 for n in names if n.lstrip("/").startswith(f"faasd-{owner}-{prefix}")) >= count


def _shims() -> dict[str, float]:
    """containerd-shim processes on this host: container id -> VmRSS MiB (root can read them)."""
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or b"containerd-shim" not in argv[0]:
                continue
            if b"-id" in argv:
                found[argv[argv.index(b"-id") + 1].decode()] = rss_mib(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _memory(engine: Engine, owner: str, names: dict[str, list[str]]) -> list[RuntimeMemory]:
    """docker stats' memory of SAMPLE instances per runtime, and their shims' VmRSS."""
    api = engine.client.api
    by_name: dict[str, str] = {}
    for summary in engine.owned(owner):
        for n in summary.get("Names") or []:
            by_name[n.lstrip("/")] = str(summary["Id"])
    shims = _shims()
    out: list[RuntimeMemory] = []
    for env, functions in names.items():
        ids: list[str] = []
        for fn in functions:
            prefix = f"faasd-{owner}-{fn}-"
            ids += [cid for n, cid in by_name.items() if n.startswith(prefix)]
            if len(ids) >= SAMPLE:
                break
        usage: list[float] = []
        shim: list[float] = []
        for cid in ids[:SAMPLE]:
            try:
                stats = api.stats(cid, stream=False, one_shot=True)
            except (docker.errors.DockerException, OSError):
                continue
            mem: dict[str, Any] = stats.get("memory_stats") or {}
            detail: dict[str, Any] = mem.get("stats") or {}
            cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
            if "usage" in mem:
                usage.append((int(mem["usage"]) - int(cache)) / (1024 * 1024))
            if cid in shims:
                shim.append(shims[cid])
        out.append(RuntimeMemory(env, len(ids[:SAMPLE]), usage, shim))
    return out


def measure(
    faasd_cmd: str,
    instances: int,
    rounds: int,
    run_id: str,
    limit: float = DEFAULT_LIMIT,
    start_concurrency: int = 4,
    faasd_args: list[str] | None = None,
) -> DensityResult:
    """Start a faasd of the phase's own, make ``instances`` warm instances, measure, clean up."""
    deadline = Deadline(limit, "density")
    engine = Engine(run_id)
    faasd = Faasd(
        faasd_cmd,
        poolsize=POOLSIZE,
        idle_timeout=IDLE_TIMEOUT,
        extra_args=["--start-concurrency", str(start_concurrency), *(faasd_args or [])],
    )
    probe = f"dens-{run_id}-probe"
    others = [f"dens-{run_id}-{i}" for i in range(1, instances)]
    by_env: dict[str, list[str]] = {env: [] for env in ENVIRONMENTS}
    try:
        faasd.start()
        admin = faasd.client()
        try:
            wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to fill at start", 0.1)
            time.sleep(SETTLE)
            rss_idle = rss_mib(faasd.pid)
            admin.json("POST", "/v1/functions", {"name": probe, "environment": "nodejs", "code": HELLO["nodejs"]}, 201)
            url = f"{faasd.url}/function/{probe}"
            status, body = admin.request("GET", f"/function/{probe}")
            if status != 200:
                raise BenchError(f"the probe answered {status}: {body[:200]!r}")
            wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to refill", 0.1)
            time.sleep(SETTLE)
            rss_one, fds_one = rss_mib(faasd.pid), _fds(faasd.pid)
            wait_for(lambda: _renamed(engine, faasd.owner, probe, 1), RENAME_WAIT, "the probe's rename", 0.2)
            address = engine.instance_address(faasd.owner, probe)
            if not address:
                raise BenchError(f"no running container of {probe} found")
            direct = f"http://{address}:{RUNTIME_PORT}/"
            cpu_one = _idle_cpu(faasd.pid)
            one_before, direct_before = _rounds(url, direct, rounds, deadline)
            for i, name in enumerate(others):
                env = ENVIRONMENTS[(i + 1) % len(ENVIRONMENTS)]
                by_env[env].append(name)
                admin.json("POST", "/v1/functions", {"name": name, "environment": env, "code": HELLO[env]}, 201)
            by_env["nodejs"].insert(0, probe)
            with RssSampler(faasd.pid) as sampler:
                made, errors, make_s = asyncio.run(_first_calls(faasd.url, others, deadline))
            made += 1  # the probe
            # The steady state: every instance named (renames wait until no start is in flight).
            wait_for(lambda: _renamed(engine, faasd.owner, f"dens-{run_id}-", made), RENAME_WAIT, "the renames", 0.5)
            time.sleep(SETTLE)
            rss_all, fds_all = rss_mib(faasd.pid), _fds(faasd.pid)
            cpu_all = _idle_cpu(faasd.pid)
            all_alive, direct_all = _rounds(url, direct, rounds, deadline)
            alive = sum(int(f.get("instances", 0)) for f in faasd.status(admin)["functions"])
            memory = _memory(engine, faasd.owner, by_env)
            for name in others:
                admin.request("DELETE", f"/v1/functions/{name}?force=true")
            pooled = POOLSIZE * len(ENVIRONMENTS)
            if not engine.wait_owned_count(faasd.owner, pooled + 1, max(30.0, deadline.left() - 60)):
                raise BenchError("the deleted functions' containers were not removed in time")
            time.sleep(SETTLE)
            rss_after = rss_mib(faasd.pid)
            one_after, direct_after = _rounds(url, direct, rounds, deadline)
        finally:
            admin.close()
    finally:
        code = faasd.stop(timeout=STOP_TIMEOUT)
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"density: removed {leftover} containers left after faasd stopped", file=sys.stderr)
        tail = faasd.log_tail(5)
        faasd.close()
        engine.close()
    if code not in (0, None):
        raise BenchError(f"faasd exited with {code} on SIGTERM: {tail}")
    return DensityResult(
        instances,
        made,
        alive,
        len(errors),
        errors[0] if errors else "",
        make_s,
        start_concurrency,
        rss_idle,
        rss_one,
        rss_all,
        sampler.peak,
        rss_after,
        fds_one,
        fds_all,
        one_before,
        all_alive,
        one_after,
        memory,
        direct_before,
        direct_all,
        direct_after,
        cpu_one,
        cpu_all,
    )


# -- the table ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f} ms"


def _mib(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} MiB"


def _verdict(met: bool | None) -> str:
    return {None: "", True: "yes", False: "**no**"}[met]


def _block(rounds: list[loadgen.Load]) -> str:
    if not rounds:
        return "n/a"
    p50s = ", ".join(f"{r.p50_ms:.3f}" for r in rounds)
    return f"{_ms(_p50(rounds))} (rounds: {p50s}; p99 {statistics.median(r.p99_ms for r in rounds):.3f} ms)"


def table(r: DensityResult) -> str:
    rss_met = None if math.isnan(r.rss_all) else r.rss_all <= TARGET_RSS_MIB
    ratio_met = None if math.isnan(r.p50_ratio) else r.p50_ratio <= TARGET_P50_RATIO
    rate = (r.made - 1) / r.make_s if r.make_s > 0 else math.nan
    lines = [
        "| metric | value | target | met |",
        "|---|---|---|---|",
        f"| instances made (first calls answered) / asked; alive at the end | {r.made} / {r.asked}; {r.alive_at_end} "
        f"| {r.asked} | {_verdict(r.made == r.asked == r.alive_at_end and r.errors == 0)} |",
        f"| - {r.made - 1} first calls, {IN_FLIGHT} at a time (`--start-concurrency {r.start_concurrency}`) "
        f"| {r.make_s:.1f} s ({rate:.1f} instances/s) | | |",
        f"| faasd RSS with {r.made} warm instances | {_mib(r.rss_all)} | <= {TARGET_RSS_MIB:.0f} MiB "
        f"| {_verdict(rss_met)} |",
        f"| - faasd RSS idle (pools full) / one instance / peak while making them / after the deletes "
        f"| {_mib(r.rss_idle)} / {_mib(r.rss_one)} / {_mib(r.rss_peak)} / {_mib(r.rss_after)} | | |",
        f"| - faasd's memory per warm instance ((N instances - one) / (N - 1)) | {r.per_instance_kib:.1f} KiB | | |",
        f"| - faasd's open file descriptors: one instance / {r.made} | {r.fds_one} / {r.fds_all} | | |",
        f"| warm call through faasd, one connection, p50 with {r.made} instances alive | {_block(r.all_alive)} | | |",
        f"| - the same with one instance alive, before / after | {_block(r.one_before)} / {_block(r.one_after)} | | |",
        f"| - p50 with {r.made} alive / with one (the mean of both blocks) | {r.p50_ratio:.3f} x "
        f"| <= {TARGET_P50_RATIO:.2f} x | {_verdict(ratio_met)} |",
        f"| - the same rounds straight to the instance (no faasd): p50 with {r.made} alive / one before / after "
        f"| {_ms(_p50(r.direct_all))} / {_ms(_p50(r.direct_before))} / {_ms(_p50(r.direct_after))} | | |",
        f"| - faasd's added p50 over straight: with {r.made} alive / with one "
        f"| {r.added_all * 1000:+.0f} µs / {r.added_one * 1000:+.0f} µs | | |",
        f"| - faasd's own CPU without calls ({IDLE_WINDOW:g} s): one instance / {r.made} "
        f"| {r.cpu_one:.1f} % / {r.cpu_all:.1f} % of a core | | |",
    ]
    for m in r.memory:
        span = f" [{min(m.usage_mib):.1f} to {max(m.usage_mib):.1f}]" if m.usage_mib else ""
        lines.append(
            f"| memory per idle instance, {m.environment} (docker stats, n={len(m.usage_mib)}) "
            f"| {_mib(m.median)}{span} | | |"
        )
        lines.append(f"| - its containerd-shim on the host (VmRSS, n={len(m.shim_mib)}) | {_mib(m.shim_median)} | | |")
    if r.errors:
        lines.append(f"| errors (first calls) | {r.errors} (first: {r.first_error[:80]}) | 0 | **no** |")
    return "\n".join(lines)


def summary_line(r: DensityResult) -> str:
    return (
        f"A faasd of its own (pool size {POOLSIZE}, idle timeout {IDLE_TIMEOUT} s), {r.asked} functions (half "
        f"nodejs, half python) each called once and kept warm; warm rounds of {ROUND:g} s `wrk -t1 -c1` to one of "
        "them with only its instance alive, with all alive, and with one again (B-A-B); docker stats for a sample "
        f"of {SAMPLE} instances per runtime. `python -m bench.density` runs this alone."
    )


def history_cell(r: DensityResult) -> str:
    """faasd RSS with N instances / p50 ratio (the history column)."""
    return f"{r.rss_all:.0f} MiB / {r.p50_ratio:.2f} x"


# -- alone: python -m bench.density -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.density", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="40 instances, 2 rounds per block")
    p.add_argument("--instances", type=int, help="warm instances (500; quick 40)")
    p.add_argument("--rounds", type=int, help="warm rounds per block (8; quick 2)")
    p.add_argument("--start-concurrency", type=int, default=4, help="faasd --start-concurrency")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    p.add_argument("--faasd-arg", action="append", default=[], help="one more faasd argument (repeatable)")
    args = p.parse_args(argv)
    instances = args.instances or (40 if args.quick else 500)
    rounds = args.rounds or (2 if args.quick else 8)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(
            args.faasd_cmd,
            instances,
            rounds,
            secrets.token_hex(3),
            args.limit,
            args.start_concurrency,
            [a for arg in args.faasd_arg for a in arg.split("=", 1)],
        )
    except (BenchError, OSError) as exc:
        print(f"density: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores; load generator: "
        f"{'wrk' if loadgen.have_wrk() else 'python'}"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
