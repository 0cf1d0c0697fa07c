"""Events: asynchronous calls and timers, with a faasd of the phase's own.

A faasd of the phase's own (bench/faasd_proc.py: free loopback port,
temporary state dir, pool size 1, the default ``--async-concurrency``) and
Python functions, each called once synchronously first so that an instance is
warm. faasd's timestamps (``created_at``: the call accepted; ``started_at``:
its attempt started) have a resolution of 1 ms (truncated), so a difference of
two is good to +-1 ms:

- idle queue: N asynchronous calls (``POST /async-function/<name>``), one at
  a time, each sent when the previous one has succeeded (waited for with
  ``GET /v1/invocations/<id>?wait=10``): per call, faasd's accept to its
  attempt's start (``attempts[0].started_at - created_at``), and the client's
  POST to 202 (one keep-alive loopback connection);
- deliveries per second: M calls to a hello function (default concurrency)
  submitted as fast as a few aiohttp connections send them; from the first
  submit until ``GET /v1/status`` (polled every 50 ms after the last 202)
  counts them all succeeded, i.e. M / that time; the accept rate is M / (first
  submit to last 202). Then every call is read back: each must have succeeded
  in one attempt; faasd's own span (first accept to last attempt's end) and
  each call's wait in the queue (accept to its attempt's start) come from
  those;
- timer jitter: a timer ``@every 1s`` on a function that returns the tick's
  ``context["scheduled_time"]`` and its own ``time.time()`` (the container
  shares the host's clock); K ticks, then the timer is deleted: per tick,
  scheduled time to the attempt's start, and to the function's own clock.

Every loop is bounded by count and by the phase's time bound (a sample that
would start past it is not taken; n is in the table). The functions and the
timer are deleted; faasd is stopped with SIGTERM (it removes its containers),
anything left with its ``faasd.owner`` label is removed, and its state dir
goes.

    .venv/bin/python -m bench.events            # N=100, M=2000, K=20
    .venv/bin/python -m bench.events --quick    # N=10, M=100, K=3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import aiohttp

from bench.common import ENVIRONMENTS, HELLO, BenchError, Client, Deadline, exit_on_sigterm, ms, percentile, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd

DEFAULT_LIMIT = 180.0  # seconds for the whole phase
POOLSIZE = 1
SUBMITTERS = 8  # connections submitting the burst
STATUS_POLL = 0.05  # seconds between GET /v1/status polls while the burst is delivered
TIMER_POLL = 0.25  # seconds between polls of the timer's calls
CALL_TIMEOUT = 30.0  # one asynchronous call (idle queue) at most
BURST_TIMEOUT = 120.0  # all of the burst's calls succeeded, at most
READERS = 8  # concurrent GET /v1/invocations/<id> reading the burst back
SETTLE_TIMEOUT = 60.0
FINISHED = ("succeeded", "failed", "dead")

# The timer's function: the tick's scheduled time and its own clock, as soon as it runs.
TICKED = """import json
import time


def main(context):
    now = time.time()
    return json.dumps({"scheduled_time": context.request.context.get("scheduled_time"), "time": now})
"""


def stamp(value: str) -> float:
    """Unix seconds of faasd's RFC 3339 ``...Z`` time."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class EventsResult:
    poolsize: int
    # idle queue: ms each
    idle_calls: int  # N asked
    accept_to_start: list[float]
    accept_client: list[float]
    # deliveries per second
    burst_calls: int  # M asked
    submitters: int
    burst_accepted: int
    burst_refused: int  # not 202 (or no answer)
    accept_s: float  # first submit to the last 202
    complete_s: float  # first submit to all seen succeeded (polled every STATUS_POLL)
    server_span_s: float  # first created_at to the last attempt's finished_at
    queue_wait: list[float]  # ms: accept to attempt start, under the burst
    retried: int  # calls with more than one attempt
    # timer jitter: ms each
    ticks: int  # K asked
    tick_start: list[float]
    tick_function: list[float]
    ticks_skipped: int  # missing ticks between the first and last seen (overlap forbid)
    owner: str

    @property
    def accept_rate(self) -> float:
        return self.burst_accepted / self.accept_s if self.accept_s > 0 else math.nan

    @property
    def deliveries_per_s(self) -> float:
        return self.burst_accepted / self.complete_s if self.complete_s > 0 else math.nan

    @property
    def server_rate(self) -> float:
        return self.burst_accepted / self.server_span_s if self.server_span_s > 0 else math.nan


# -- set-up ------------------------------------------------------------------------------------


def _settle(faasd: Faasd, admin: Client) -> None:
    wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), SETTLE_TIMEOUT, "pools to refill", interval=0.02)


def _warm_function(faasd: Faasd, admin: Client, calls: Client, name: str, code: str) -> None:
    """Create a Python function and call it once synchronously: an instance of it is warm."""
    _settle(faasd, admin)
    admin.json("POST", "/v1/functions", {"name": name, "environment": "python", "code": code}, expect=201)
    status, raw = calls.request("GET", f"/function/{name}")
    if status != 200:
        raise BenchError(f"GET /function/{name}: {status} {raw[:200]!r}")
    _settle(faasd, admin)


# -- 1. accept to start on an idle queue ---------------------------------------------------------


def idle_queue(faasd: Faasd, admin: Client, name: str, n: int, deadline: Deadline) -> tuple[list[float], list[float]]:
    """(faasd's accept to attempt start, client's POST to 202), ms per call."""
    conn = Client(faasd.host, faasd.port, CALL_TIMEOUT)  # a public caller: no token
    to_start: list[float] = []
    to_accept: list[float] = []
    try:
        for _ in range(n):
            if deadline.passed():
                break
            began = time.perf_counter()
            status, raw = conn.request("POST", f"/async-function/{name}")
            accepted = time.perf_counter() - began
            if status != 202:
                raise BenchError(f"POST /async-function/{name}: {status} {raw[:200]!r}")
            call_id = json.loads(raw)["call_id"]
            inv = admin.json("GET", f"/v1/invocations/{call_id}?wait={CALL_TIMEOUT:.0f}")
            if inv["status"] != "succeeded" or not inv["attempts"]:
                raise BenchError(f"call {call_id}: {inv['status']} after {CALL_TIMEOUT:.0f} s ({inv.get('reason')})")
            to_start.append(ms(stamp(inv["attempts"][0]["started_at"]) - stamp(inv["created_at"])))
            to_accept.append(ms(accepted))
    finally:
        conn.close()
    return to_start, to_accept


# -- 2. deliveries per second --------------------------------------------------------------------


@dataclass
class _Burst:
    ids: list[str]
    refused: int
    first_refusal: str
    accept_s: float
    complete_s: float
    invocations: list[dict[str, Any]]


async def _burst(faasd: Faasd, name: str, m: int, deadline: Deadline) -> _Burst:
    auth = {"Authorization": f"Bearer {faasd.token}"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=max(SUBMITTERS, READERS))
    async with aiohttp.ClientSession(faasd.url, connector=connector, timeout=timeout) as session:

        async def succeeded() -> tuple[int, int]:
            async with session.get("/v1/status", headers=auth) as resp:
                if resp.status != 200:
                    raise BenchError(f"GET /v1/status: {resp.status} {(await resp.read())[:200]!r}")
                queue = (await resp.json())["events"]["queue"]
                return int(queue["succeeded"]), int(queue["failed"]) + int(queue["dead"])

        done_before, bad_before = await succeeded()
        ids: list[str] = []
        refusals: list[str] = []
        todo = iter(range(m))
        last_accept = 0.0

        async def submitter() -> None:
            nonlocal last_accept
            for _ in todo:
                if deadline.passed():
                    return
                try:
                    async with session.post(f"/async-function/{name}") as resp:
                        raw = await resp.read()
                        call_id = resp.headers.get("X-Call-Id")
                        if resp.status == 202 and call_id:
                            ids.append(call_id)
                            last_accept = time.perf_counter()
                        else:
                            refusals.append(f"{resp.status} {raw[:120]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    refusals.append(f"{type(exc).__name__}: {exc}")

        began = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
        if not ids:
            raise BenchError(f"none of the burst's calls was accepted: {refusals[0] if refusals else 'none sent'}")
        accept_s = last_accept - began
        expected = done_before + len(ids)
        limit = min(BURST_TIMEOUT, deadline.left())
        while True:
            done, bad = await succeeded()
            if done >= expected:
                complete_s = time.perf_counter() - began
                break
            if bad > bad_before:
                raise BenchError(f"{bad - bad_before} of the burst's calls failed or died")
            if time.perf_counter() - began > limit:
                raise BenchError(f"{expected - done} of {len(ids)} calls not succeeded after {limit:.0f} s")
            await asyncio.sleep(STATUS_POLL)

        # Every call read back (outside the measured time).
        readers = asyncio.Semaphore(READERS)

        async def read(call_id: str) -> dict[str, Any]:
            async with readers:
                deadline.check()
                async with session.get(f"/v1/invocations/{call_id}", headers=auth) as resp:
                    if resp.status != 200:
                        raise BenchError(f"GET /v1/invocations/{call_id}: {resp.status}")
                    doc: dict[str, Any] = await resp.json()
                    return doc

        invocations = list(await asyncio.gather(*(read(i) for i in ids)))
    return _Burst(ids, len(refusals), refusals[0] if refusals else "", accept_s, complete_s, invocations)


# -- 3. timer jitter ---------------------------------------------------------------------------


def _timer_calls(admin: Client, function: str, status: str = "") -> list[dict[str, Any]]:
    query = f"/v1/invocations?function={function}&limit=1000" + (f"&status={status}" if status else "")
    items = admin.json("GET", query)["items"]
    return [c for c in items if c.get("trigger") == "timer"]


def timer_jitter(
    admin: Client, name: str, timer: str, k: int, deadline: Deadline
) -> tuple[list[float], list[float], int]:
    """(scheduled to attempt start, scheduled to the function's clock) ms per tick, and ticks skipped."""
    admin.json("POST", "/v1/timers", {"name": timer, "function": name, "cron": "@every 1s"}, expect=201)
    try:
        until = time.monotonic() + k + 20  # K ticks a second apart, and some slack
        while len(_timer_calls(admin, name, "succeeded")) < k:
            if deadline.passed() or time.monotonic() > until:
                break
            time.sleep(TIMER_POLL)
    finally:
        admin.request("DELETE", f"/v1/timers/{timer}")
    # A tick already queued when the timer went still runs: wait for it (bounded).
    wait_for(
        lambda: all(c["status"] in FINISHED for c in _timer_calls(admin, name)),
        min(15.0, max(1.0, deadline.left())),
        "the timer's last calls to finish",
        interval=0.1,
    )
    done = sorted(_timer_calls(admin, name, "succeeded"), key=lambda c: c["created_at"])[:k]
    to_start: list[float] = []
    to_function: list[float] = []
    scheduled: list[float] = []
    for summary in done:
        inv = admin.json("GET", f"/v1/invocations/{summary['id']}")
        answer = json.loads(inv["response"]["body"])
        at = stamp(answer["scheduled_time"])
        scheduled.append(at)
        to_start.append(ms(stamp(inv["attempts"][0]["started_at"]) - at))
        to_function.append(ms(float(answer["time"]) - at))
    skipped = sum(max(0, round(b - a) - 1) for a, b in pairwise(scheduled))
    return to_start, to_function, skipped


# -- the phase ---------------------------------------------------------------------------------


def measure(
    faasd_cmd: str,
    idle_calls: int,
    burst_calls: int,
    ticks: int,
    run_id: str,
    limit: float = DEFAULT_LIMIT,
    poolsize: int = POOLSIZE,
) -> EventsResult:
    """Start a faasd of the phase's own, measure, clean everything up."""
    deadline = Deadline(limit, "events")
    engine = Engine(run_id)
    faasd = Faasd(faasd_cmd, poolsize=poolsize, idle_timeout=900)
    names = {"idle": f"ev-idle-{run_id}", "burst": f"ev-burst-{run_id}", "tick": f"ev-tick-{run_id}"}
    timer = f"ev-timer-{run_id}"
    try:
        faasd.start()
        admin = faasd.client()
        calls = Client(faasd.host, faasd.port, CALL_TIMEOUT)
        try:
            wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to fill at start", 0.1)
            _warm_function(faasd, admin, calls, names["idle"], HELLO["python"])
            to_start, to_accept = idle_queue(faasd, admin, names["idle"], idle_calls, deadline)

            _warm_function(faasd, admin, calls, names["burst"], HELLO["python"])
            burst = asyncio.run(_burst(faasd, names["burst"], burst_calls, deadline))
            invs = burst.invocations
            not_ok = [i for i in invs if i["status"] != "succeeded" or not i["attempts"]]
            if not_ok:
                raise BenchError(f"{len(not_ok)} of the burst's calls did not succeed: {not_ok[0]['status']}")
            created = [stamp(i["created_at"]) for i in invs]
            starts = [stamp(i["attempts"][0]["started_at"]) for i in invs]
            ends = [stamp(i["attempts"][-1]["finished_at"]) for i in invs]
            span = max(ends) - min(created) if invs else math.nan

            _warm_function(faasd, admin, calls, names["tick"], TICKED)
            tick_start, tick_function, skipped = timer_jitter(admin, names["tick"], timer, ticks, deadline)
        finally:
            for name in names.values():
                admin.request("DELETE", f"/v1/functions/{name}?force=true")
            calls.close()
            admin.close()
    finally:
        code = faasd.stop()
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"events: removed {leftover} containers left after faasd stopped", file=sys.stderr)
        tail = faasd.log_tail(5)
        faasd.close()
        engine.close()
    if code not in (0, None):
        raise BenchError(f"faasd exited with {code} on SIGTERM: {tail}")
    return EventsResult(
        poolsize=poolsize,
        idle_calls=idle_calls,
        accept_to_start=to_start,
        accept_client=to_accept,
        burst_calls=burst_calls,
        submitters=SUBMITTERS,
        burst_accepted=len(burst.ids),
        burst_refused=burst.refused,
        accept_s=burst.accept_s,
        complete_s=burst.complete_s,
        server_span_s=span,
        queue_wait=[ms(s - c) for s, c in zip(starts, created, strict=True)],
        retried=sum(1 for i in invs if len(i["attempts"]) > 1),
        ticks=ticks,
        tick_start=tick_start,
        tick_function=tick_function,
        ticks_skipped=skipped,
        owner=faasd.owner,
    )


# -- the table ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _p50_p99(values: list[float], asked: int) -> str:
    if not values:
        return "n/a"
    n = f"n={len(values)}" + (f" of {asked}" if len(values) < asked else "")
    return (
        f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 99))} ({n}; {_ms(min(values))} to {_ms(max(values))})"
    )


def _rate(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}/s"


def table(result: EventsResult) -> str:
    r = result
    m = f"{r.burst_accepted:,} calls" + (f" of {r.burst_calls:,}" if r.burst_accepted < r.burst_calls else "")
    lines = ["| metric (python hello, warm) | value |", "|---|---|"]

    def row(metric: str, value: str) -> None:
        lines.append(f"| {metric} | {value} |")

    row(
        "**async call, idle queue: accept to attempt start** (faasd's timestamps), p50 / p99",
        _p50_p99(r.accept_to_start, r.idle_calls),
    )
    row("async call, idle queue: POST to 202 seen by the client, p50 / p99", _p50_p99(r.accept_client, r.idle_calls))
    row(
        f"**async deliveries per second**: {m} from {r.submitters} connections, first submit to all seen succeeded",
        f"{_rate(r.deliveries_per_s)} ({r.complete_s:.2f} s)",
    )
    row(
        "- async burst: accepted per second (first submit to last 202)",
        f"{_rate(r.accept_rate)} ({r.accept_s:.2f} s)" + (f", {r.burst_refused} refused" if r.burst_refused else ""),
    )
    row(
        "- async burst: last 202 to all seen succeeded (the queue draining after the submits)",
        _ms(ms(r.complete_s - r.accept_s)),
    )
    row(
        "- async burst: faasd's first accept to last attempt's end",
        f"{_rate(r.server_rate)} ({r.server_span_s:.2f} s)",
    )
    row("- async burst: each call's accept to attempt start (queue wait), p50 / p99", _p50_p99(r.queue_wait, 0))
    row("- async burst: calls retried (more than one attempt)", str(r.retried))
    row(
        "**timer `@every 1s`: scheduled time to attempt start**, p50 / p99",
        _p50_p99(r.tick_start, r.ticks),
    )
    row("timer: scheduled time to the function's own `time.time()`, p50 / p99", _p50_p99(r.tick_function, r.ticks))
    row("timer: ticks skipped between the first and the last (overlap forbid)", str(r.ticks_skipped))
    return "\n".join(lines)


def summary_line(result: EventsResult) -> str:
    return (
        f"A faasd of its own (pool size {result.poolsize}, default `--async-concurrency`); every function "
        "called once synchronously first. Idle queue: one call at a time, each after the previous succeeded; "
        "faasd's timestamps are truncated to 1 ms (a difference is good to +-1 ms). Deliveries: "
        f"`GET /v1/status` polled every {ms(STATUS_POLL):.0f} ms after the last 202, then every call read back "
        "(each succeeded). Timer: the function answers the tick's `scheduled_time` and its own clock (the "
        "container shares the host's). `python -m bench.events` runs this alone."
    )


def history_cell(result: EventsResult) -> str:
    """Idle-queue accept-to-start p50 ms / deliveries per second / timer start jitter p50 ms (history column)."""

    def p50(values: list[float]) -> str:
        return "" if not values else f"{percentile(values, 50):.0f}"

    rate = "" if math.isnan(result.deliveries_per_s) else f"{result.deliveries_per_s:.0f}"
    return f"{p50(result.accept_to_start)} / {rate} / {p50(result.tick_start)}"


# -- alone: python -m bench.events ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.events", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="N=10, M=100, K=3")
    p.add_argument("--calls", type=int, help="idle-queue asynchronous calls, one at a time (100; quick 10)")
    p.add_argument("--burst", type=int, help="asynchronous calls submitted at once (2000; quick 100)")
    p.add_argument("--ticks", type=int, help="ticks of the 1 s timer (20; quick 3)")
    p.add_argument("--poolsize", type=int, default=POOLSIZE, help="faasd --default-poolsize")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    args = p.parse_args(argv)
    calls = args.calls if args.calls is not None else (10 if args.quick else 100)
    burst = args.burst if args.burst is not None else (100 if args.quick else 2000)
    ticks = args.ticks if args.ticks is not None else (3 if args.quick else 20)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(args.faasd_cmd, calls, burst, ticks, secrets.token_hex(3), args.limit, args.poolsize)
    except (BenchError, OSError, aiohttp.ClientError) as exc:
        print(f"events: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    print(f"faasd owner label: {result.owner}", file=sys.stderr)
    for label, values in (
        ("idle accept to start", result.accept_to_start),
        ("idle POST to 202", result.accept_client),
        ("timer scheduled to start", result.tick_start),
        ("timer scheduled to function clock", result.tick_function),
    ):
        print(f"{label} ms: {', '.join(f'{v:.1f}' for v in values)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
