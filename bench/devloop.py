"""Dev loop: `faas dev`, from saving a file to the new code answering.

A faasd of the phase's own (bench/faasd_proc.py: free loopback port, temporary
state dir, pool size 3) and one `faas dev FILE --env python` in a subprocess
(the installed ``faas`` script, as a user runs it), on a one-file Python
function in a temporary folder. Once it printed that the function answered:

- per sample, the file is written with a new marker (one ``write_text``: open,
  write, close, as an editor's save), and from just before that write the
  function's route (``GET /NAME``, the route faas dev made) is polled every
  10 ms on a keep-alive loopback connection until it answers the new marker:
  save to the new code's answer, seen from outside (so within 10 ms). That
  takes in the watcher (inotify, watchfiles), faas dev's grouping of a burst of
  saves (it waits 50 ms without another), the update (``PATCH``) and the first
  call of the new revision (a pooled container specialized for it);
- faas dev's own line for that redeploy says how long after the save (the
  file's modification time) its one call (``GET /function/NAME``) had the new
  code's answer: shown next to it;
- the target (issue 15) is under one second, judged on the p90.

Between samples the phase waits until the pools are full again (each redeploy
specializes a pooled container) and 0.5 s more, so each sample starts from the
same state. Every loop is bounded by count and by the phase's time bound (a
sample that would start past it is not taken; n is in the table). At the end
faas dev gets SIGINT, as Ctrl-C, and must exit 0 having deleted the function
and its route (checked); faasd is stopped with SIGTERM (it removes its
containers), anything left with its ``faasd.owner`` label is removed, and the
temporary directories go.

    .venv/bin/python -m bench.devloop            # 10 samples
    .venv/bin/python -m bench.devloop --quick    # 2 samples
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ENVIRONMENTS, BenchError, Client, Deadline, exit_on_sigterm, ms, percentile, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd
from bench.packages import cli_command

TARGET_MS = 1000.0  # issue 15: from saving a file to the new code answering, under one second
POLL = 0.01  # seconds between two polls of the route after a save
POOLSIZE = 3
DEFAULT_LIMIT = 120.0  # seconds for the whole phase
READY_TIMEOUT = 60.0  # faas dev's first deploy and first answer, at most
ANSWER_TIMEOUT = 15.0  # one sample, at most
SETTLE_TIMEOUT = 60.0
EXIT_TIMEOUT = 30.0
SETTLE_PAUSE = 0.5
ENVIRONMENT = "python"
_OWN = re.compile(r" deploy +\S+: code only .*answered 200 OK, (?P<value>[\d.]+) (?P<unit>ms|s) after the save")


def source(marker: str) -> str:
    return f'def main():\n    return "{marker}"\n'


@dataclass(frozen=True)
class DevloopResult:
    environment: str
    poolsize: int
    samples: int  # asked
    save_to_answer: list[float]  # ms, seen from outside (the route polled every POLL s)
    own: list[float]  # ms, as faas dev's line for each redeploy says
    stale: int  # old answers seen after the saves (every poll that was not yet the new code)
    cleaned: bool  # faas dev exited 0 on SIGINT, the function and its route gone

    @property
    def p50(self) -> float:
        return percentile(self.save_to_answer, 50)

    @property
    def p90(self) -> float:
        return percentile(self.save_to_answer, 90)

    @property
    def met(self) -> bool | None:
        return None if math.isnan(self.p90) else self.p90 < TARGET_MS


class DevProcess:
    """`faas dev` in a subprocess, its output read line by line in a thread."""

    def __init__(self, faasd: Faasd, workdir: Path, *args: str) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FAAS_", "FAASD_"))},
            "FAAS_URL": faasd.url,
            "FAAS_TOKEN": faasd.token,
        }
        self.proc = subprocess.Popen(
            [*cli_command(), "dev", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=workdir,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def tail(self, count: int = 10) -> str:
        return "\n".join(self.lines[-count:])

    def wait_line(self, pattern: re.Pattern[str], start: int, timeout: float) -> re.Match[str]:
        """The first line from ``start`` on that matches ``pattern``."""
        deadline = Deadline(timeout, f"faas dev to print a line matching {pattern.pattern!r}")
        while True:
            for line in self.lines[start:]:
                found = pattern.search(line)
                if found:
                    return found
            if self.proc.poll() is not None:
                raise BenchError(f"faas dev exited with {self.proc.returncode}: {self.tail()}")
            if deadline.passed():
                raise BenchError(f"{deadline.what} within {timeout:.0f} s; it printed: {self.tail()}")
            time.sleep(0.01)

    def interrupt(self) -> int:
        """SIGINT (Ctrl-C); its exit status."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise BenchError(f"faas dev did not stop within {EXIT_TIMEOUT:.0f} s of SIGINT") from None
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _answer(calls: Client, route: str, expected: str, began: float, timeout: float) -> tuple[float, int]:
    """Poll GET ``route`` every POLL s until it answers ``expected``: (seconds since ``began``, old answers)."""
    stale = 0
    last = ""
    while time.perf_counter() - began < timeout:
        try:
            status, body = calls.request("GET", route)
        except OSError as exc:
            calls.close()
            status, body = 0, repr(exc).encode()
        if status == 200 and body.decode(errors="replace") == expected:
            return time.perf_counter() - began, stale
        stale += 1
        last = f"{status} {body[:120]!r}"
        time.sleep(POLL)
    raise BenchError(f"GET {route} did not answer {expected!r} within {timeout:.0f} s of the save (last: {last})")


def _own_ms(found: re.Match[str]) -> float:
    value = float(found.group("value"))
    return value if found.group("unit") == "ms" else value * 1000.0


def measure(faasd_cmd: str, samples: int, run_id: str, limit: float = DEFAULT_LIMIT) -> DevloopResult:
    """Start a faasd and a `faas dev` of the phase's own, measure, clean everything up."""
    deadline = Deadline(limit, "dev loop")
    engine = Engine(run_id)
    faasd = Faasd(faasd_cmd, poolsize=POOLSIZE, idle_timeout=900)
    name = f"dev-{run_id}"
    measured: list[float] = []
    own: list[float] = []
    stale = 0
    cleaned = False
    try:
        with tempfile.TemporaryDirectory(prefix="faasd-bench-devloop-") as tmp:
            workdir = Path(tmp)
            file = workdir / f"{name}.py"
            file.write_text(source("v0"))
            faasd.start()
            admin = faasd.client()
            calls = faasd.client(timeout=ANSWER_TIMEOUT)
            dev: DevProcess | None = None
            try:
                wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to fill at start", 0.1)
                dev = DevProcess(faasd, workdir, file.name, "--env", ENVIRONMENT)
                dev.wait_line(re.compile(r" ready +the function answered 200"), 0, READY_TIMEOUT)
                _answer(calls, f"/{name}", "v0", time.perf_counter(), ANSWER_TIMEOUT)
                for i in range(1, samples + 1):
                    if deadline.left() < ANSWER_TIMEOUT:
                        break
                    wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), SETTLE_TIMEOUT, "pools to refill", 0.02)
                    time.sleep(SETTLE_PAUSE)
                    start = len(dev.lines)
                    marker = f"v{i}"
                    began = time.perf_counter()
                    file.write_text(source(marker))
                    took, old = _answer(calls, f"/{name}", marker, began, ANSWER_TIMEOUT)
                    measured.append(ms(took))
                    stale += old
                    own.append(_own_ms(dev.wait_line(_OWN, start, ANSWER_TIMEOUT)))
                code = dev.interrupt()
                if code != 0:
                    raise BenchError(f"faas dev exited {code} on SIGINT: {dev.tail()}")
                status, _ = admin.request("GET", f"/v1/functions/{name}")
                routes = admin.json("GET", f"/v1/triggers/http?function={name}")["items"]
                cleaned = status == 404 and not routes
                if not cleaned:
                    raise BenchError(f"faas dev left function {name} ({status}) or its routes ({routes}) behind")
            finally:
                if dev is not None:
                    dev.kill()
                calls.close()
                with contextlib.suppress(OSError):  # gone already when faas dev cleaned up, as it should
                    admin.request("DELETE", f"/v1/functions/{name}?force=true")
                admin.close()
    finally:
        code = faasd.stop()
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"devloop: removed {leftover} containers left after faasd stopped", file=sys.stderr)
        tail = faasd.log_tail(5)
        faasd.close()
        engine.close()
    if code not in (0, None):
        raise BenchError(f"faasd exited with {code} on SIGTERM: {tail}")
    return DevloopResult(ENVIRONMENT, POOLSIZE, samples, measured, own, stale, cleaned)


# -- the table ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f} ms"


def _spread(values: list[float]) -> str:
    """p50 / p90 [min to max]."""
    if not values:
        return "n/a"
    text = f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 90))}"
    return text + (f" [{_ms(min(values))} to {_ms(max(values))}]" if len(values) > 1 else "")


def value_text(result: DevloopResult) -> str:
    """The main table's cell: p50 / p90, and n when fewer samples than asked were taken."""
    n = len(result.save_to_answer)
    text = f"{_ms(result.p50)} / {_ms(result.p90)}"
    return text + (f" (n={n} of {result.samples})" if n < result.samples else f" (n={n})")


def table(result: DevloopResult) -> str:
    verdict = {None: "", True: "yes", False: "**no**"}[result.met]
    lines = [
        "| metric (p50 / p90 [min to max]) | value | target | met |",
        "|---|---|---|---|",
        f"| **save to the new code's answer**, seen from outside (`GET /NAME` every {POLL * 1000:.0f} ms; "
        f"n={len(result.save_to_answer)} of {result.samples}) | {_spread(result.save_to_answer)} "
        f"| p90 < {TARGET_MS / 1000:g} s | {verdict} |",
        f"| - the same, as faas dev's own line says (the file's mtime to its probe's answer) | {_spread(result.own)} "
        "| | |",
        f"| - old code's answers polled after the saves | {result.stale} | | |",
        f"| - Ctrl-C (SIGINT): exit 0, function and route deleted | {'yes' if result.cleaned else 'no'} | yes "
        f"| {'yes' if result.cleaned else '**no**'} |",
    ]
    return "\n".join(lines)


def summary_line(result: DevloopResult) -> str:
    return (
        f"`faas dev FILE --env {result.environment}` in a subprocess on a one-file function; each sample writes the "
        f"file with a new marker and polls the route until it answers it; pool size {result.poolsize}, the pools "
        "full again before each sample. `python -m bench.devloop` runs this alone."
    )


def history_cell(result: DevloopResult) -> str:
    """Save to the new code's answer, p50 / p90 in ms (the history column)."""
    if not result.save_to_answer:
        return ""
    return f"{result.p50:.0f} / {result.p90:.0f}"


# -- alone: python -m bench.devloop -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.devloop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="2 samples")
    p.add_argument("--samples", type=int, help="saves measured (10; quick 2)")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    args = p.parse_args(argv)
    samples = args.samples if args.samples is not None else (2 if args.quick else 10)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(args.faasd_cmd, samples, secrets.token_hex(3), args.limit)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"devloop: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores; faas CLI: {shlex.join(cli_command())}"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    print(f"save to answer ms: {', '.join(f'{v:.0f}' for v in result.save_to_answer)}", file=sys.stderr)
    print(f"faas dev's own ms: {', '.join(f'{v:.0f}' for v in result.own)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
