"""Closed-loop HTTP load: `wrk` when installed, otherwise a bounded asyncio client.

Both keep ``connections`` keep-alive connections busy for ``duration`` seconds
against one loopback or container URL and report req/s and latency percentiles.
With ``distribution=True`` a run also keeps the latency at each of
:data:`PERCENTILES` (wrk prints them from a Lua ``done`` hook; the fallback
client computes them), for a plot of the whole distribution.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

import aiohttp

from bench.common import BenchError, percentile

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
MAX_FALLBACK_REQUESTS = 2_000_000
# The percentiles a run with ``distribution=True`` keeps (100: the slowest request).
PERCENTILES = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9, 99.99, 100.0)
# wrk calls ``done`` once, after the run, with every thread's latencies merged (microseconds);
# its percentile(100) answers 0, so the slowest request is latency.max.
_WRK_PERCENTILES = ", ".join(f"{p:g}" for p in PERCENTILES)
_WRK_DISTRIBUTION = f"""done = function(summary, latency, requests)
  for _, p in ipairs({{{_WRK_PERCENTILES}}}) do
    local us = p >= 100 and latency.max or latency:percentile(p)
    io.write(string.format("faasd-bench-percentile %g %d\\n", p, us))
  end
end
"""
_PERCENTILE_LINE = re.compile(r"^faasd-bench-percentile (\S+) (\d+)$", re.M)


@dataclass(frozen=True)
class Load:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    # (percentile, ms) at each of PERCENTILES, for a run with ``distribution=True``; else empty.
    distribution: tuple[tuple[float, float], ...] = ()


def median(loads: list[Load]) -> Load:
    """Median req/s, p50 and p99 over runs of one target; requests and errors summed; the
    distribution (when every run has one) is the median latency at each percentile."""
    if not loads:
        raise BenchError("no load runs to summarize")

    def mid(values: list[float]) -> float:
        return statistics.median(values)

    distribution: tuple[tuple[float, float], ...] = ()
    if all(x.distribution for x in loads):
        percentiles = [p for p, _ in loads[0].distribution]
        by_run = [dict(x.distribution) for x in loads]
        if all(set(run) == set(percentiles) for run in by_run):
            distribution = tuple((p, mid([run[p] for run in by_run])) for p in percentiles)
    return Load(
        sum(x.requests for x in loads),
        mid([x.rps for x in loads]),
        mid([x.p50_ms for x in loads]),
        mid([x.p99_ms for x in loads]),
        sum(x.errors for x in loads),
        loads[0].tool,
        distribution,
    )


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise BenchError(f"cannot read the wrk duration {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_distribution(output: str) -> tuple[tuple[float, float], ...]:
    """The (percentile, ms) lines the Lua ``done`` hook printed, in order."""
    return tuple((float(p), int(us) / 1000) for p, us in _PERCENTILE_LINE.findall(output))


def parse_wrk(output: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and total and p50 and p99):
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        # wrk counts a keep-alive connection the server closed as a read error; count them all.
        errors += sum(int(g) for g in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return Load(
        int(total.group(1)),
        float(rps.group(1)),
        _duration_ms(p50.group(1)),
        _duration_ms(p99.group(1)),
        errors,
        "wrk",
        parse_distribution(output),
    )


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, duration: float, connections: int, threads: int = 2, *, distribution: bool = False) -> Load:
    if have_wrk():
        return run_wrk(url, duration, connections, threads, distribution=distribution)
    return asyncio.run(run_python(url, duration, connections, distribution=distribution))


def run_wrk(url: str, duration: float, connections: int, threads: int = 2, *, distribution: bool = False) -> Load:
    threads = max(1, min(threads, connections))
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="faasd-bench-") as script:
        if distribution:
            script.write(_WRK_DISTRIBUTION)
            script.flush()
            args[-1:-1] = ["-s", script.name]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"wrk did not finish: {' '.join(args)}") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    load = parse_wrk(done.stdout)
    if distribution and len(load.distribution) != len(PERCENTILES):
        raise BenchError(f"wrk printed no latency distribution:\n{done.stdout}")
    return load


async def run_python(url: str, duration: float, connections: int, *, distribution: bool = False) -> Load:
    """The fallback generator: slower than wrk, so only ratios within one run compare."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < stop_at and len(latencies) < MAX_FALLBACK_REQUESTS:
            began = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append((time.perf_counter() - began) * 1000)

    began = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    elapsed = time.monotonic() - began
    return Load(
        len(latencies),
        len(latencies) / elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        errors,
        "python",
        tuple((p, percentile(latencies, p)) for p in PERCENTILES) if distribution else (),
    )
