"""Packages: builds and code-only redeploys, through `faas deploy DIR` as a user runs it.

A faasd of the phase's own (bench/faasd_proc.py: free loopback port,
temporary state dir) and, per environment (python, nodejs), packages whose one
dependency is OFFLINE, made by hand so that no registry's speed enters the
figures: a wheel in ``wheels/`` named by ``requirements.txt`` (``--no-index
--find-links ./wheels``), or an npm tarball in ``vendor/`` named by
``package.json`` (``file:./vendor/benchdep-X.tgz``). Every sample is one
``faas deploy DIR --env ENV --name N`` in a subprocess (the installed ``faas``
script: its start-up, the upload, its wait for the build, the function and the
route); its wall time is measured, and a thread polls ``GET /v1/packages/N``
meanwhile (the package's own timestamps have a one-second resolution):

- cold build: a dependency set never built before (the dependency's version
  and content change per sample, so the dependency cache key differs): from
  the first poll that sees the new source to the first that sees the build
  succeeded (every 50 ms), i.e. the builder container's run and faasd's
  overlay of source over dependencies;
- cached build: the same dependency set again under a new package name: a
  cache hit, no builder container (polled every 20 ms; a sample whose build log
  does not say "cache hit" is counted apart, not in the figure);
- code-only redeploy: a function running a package (called once, warm), its
  main file changed (dependencies unchanged), then ``faas deploy DIR`` again:
  from the start of that command until ``GET /<name>`` (the route deploy made)
  answers the new code's text, polled every 20 ms after the command returned.
  Split into the command's wall time (start-up, upload, build, its own 0.5 s
  polling of the build, the function's update) and the first call after it;
  inside the command, the poller sees the new source accepted and the new
  build done. The issue's target is under one second.

Between samples the phase waits until the pools are full and faasd runs no
more containers than at the phase's start, so each sample starts from the
same state. Every loop is bounded by count and by the phase's time bound (a
sample that would start past it is not taken; n is in the table). The packages
(with their functions and routes) are deleted after their samples; faasd is
stopped with SIGTERM (it removes its containers), anything left with its
``faasd.owner`` label is removed, and the temporary directories go.

    .venv/bin/python -m bench.packages            # 5 samples of each figure per environment
    .venv/bin/python -m bench.packages --quick    # 1 sample
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ENVIRONMENTS, BenchError, Client, Deadline, exit_on_sigterm, ms, percentile, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd
from tests.runtimes.packages import make_npm_tgz as npm_tgz_by_hand
from tests.runtimes.packages import make_wheel as wheel_by_hand

REDEPLOY_TARGET_MS = 1000.0
COLD_POLL = 0.05  # seconds between package polls during a cold build
FINE_POLL = 0.02  # ... during a cached build and a redeploy; also the route's poll after a redeploy
CLI_TIMEOUT = 180.0  # one `faas deploy` at most (also bounded by the phase's time)
ANSWER_TIMEOUT = 30.0  # the new code's first answer after a redeploy, at most
SETTLE_TIMEOUT = 60.0
DEFAULT_LIMIT = 300.0  # seconds for the whole phase (full)
DEP = "benchdep"


# -- the sources, by hand ---------------------------------------------------------------


def make_wheel(folder: Path, version: str, nonce: str) -> Path:
    """A one-module pure-Python wheel (what `pip wheel` makes of it), whose ``tag()`` names its version."""
    module = f'NONCE = "{nonce}"\n\n\ndef tag():\n    return "dep {version}"\n'
    return wheel_by_hand(folder, DEP, version, {f"{DEP}/__init__.py": module})


def make_npm_tarball(folder: Path, version: str, nonce: str) -> Path:
    """What `npm pack` makes: package/package.json and package/index.js in a .tgz."""
    files = {
        "package.json": json.dumps({"name": DEP, "version": version, "main": "index.js"}),
        "index.js": f"// {nonce}\nmodule.exports = () => 'dep {version}';\n",
    }
    return npm_tgz_by_hand(folder / f"{DEP}-{version}.tgz", files)


def write_main(folder: Path, env: str, marker: str) -> None:
    """The function's main file: the dependency's tag and ``marker`` (changed by a code-only redeploy)."""
    if env == "python":
        (folder / "main.py").write_text(f"from {DEP} import tag\n\n\ndef main():\n    return tag() + ' {marker}'\n")
    else:
        (folder / "index.js").write_text(
            f"const tag = require('{DEP}');\nmodule.exports = async () => tag() + ' {marker}';\n"
        )


def write_source(folder: Path, env: str, version: str, nonce: str, marker: str) -> str:
    """A package source with one offline dependency of ``version``; returns the answer its function gives."""
    folder.mkdir(parents=True, exist_ok=True)
    if env == "python":
        make_wheel(folder / "wheels", version, nonce)
        (folder / "requirements.txt").write_text(f"--no-index\n--find-links ./wheels\n{DEP}=={version}\n")
    else:
        make_npm_tarball(folder / "vendor", version, nonce)
        manifest = {
            "name": "bench-pkg",
            "version": "1.0.0",
            "dependencies": {DEP: f"file:./vendor/{DEP}-{version}.tgz"},
        }
        (folder / "package.json").write_text(json.dumps(manifest))
    write_main(folder, env, marker)
    return f"dep {version} {marker}"


# -- the CLI and the poller ---------------------------------------------------------------


def cli_command() -> list[str]:
    """The `faas` script installed next to this python (what a user runs), else ``python -m faas_cli``."""
    script = Path(sys.executable).parent / "faas"
    return [str(script)] if script.exists() else [sys.executable, "-m", "faas_cli"]


class Watch(threading.Thread):
    """Polls package ``name`` every ``interval`` s from ``began`` (a perf_counter):
    when its new source is first seen, and when a new deployment is first seen built."""

    def __init__(
        self, faasd: Faasd, name: str, interval: float, began: float, old: dict[str, Any] | None, limit: float
    ) -> None:
        super().__init__(daemon=True, name=f"watch-{name}")
        self.faasd = faasd
        self.name_ = name
        self.interval = interval
        self.began = began
        self.old_source = (old or {}).get("source_sha256")
        self.old_deploy = (old or {}).get("deploy_sha256")
        self.until = time.monotonic() + limit
        self.stop = threading.Event()
        self.accepted = math.nan  # seconds after began
        self.built = math.nan
        self.package: dict[str, Any] | None = None
        self.failure = ""

    def run(self) -> None:
        client = self.faasd.client(timeout=5)
        try:
            while not self.stop.is_set() and time.monotonic() < self.until:
                try:
                    status, raw = client.request("GET", f"/v1/packages/{self.name_}")
                except OSError:
                    client.close()
                    status, raw = 0, b""
                now = time.perf_counter() - self.began
                if status == 200:
                    package = json.loads(raw)
                    if math.isnan(self.accepted) and package.get("source_sha256") != self.old_source:
                        self.accepted = now
                    if not math.isnan(self.accepted):
                        if package.get("status") == "succeeded" and package.get("deploy_sha256") != self.old_deploy:
                            self.built, self.package = now, package
                            return
                        if package.get("status") == "failed":
                            self.failure, self.package = str(package.get("error") or "failed"), package
                            return
                self.stop.wait(self.interval)
        finally:
            client.close()


@dataclass(frozen=True)
class Deploy:
    """One `faas deploy`, seen from outside: all in seconds from the command's start."""

    cli: float
    accepted: float  # the poller first saw the new source
    built: float  # ... and the new deployment built
    package: dict[str, Any]

    @property
    def build(self) -> float:
        return self.built - self.accepted


class Deployer:
    def __init__(self, faasd: Faasd, workdir: Path) -> None:
        self.faasd = faasd
        self.workdir = workdir
        self.command = cli_command()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FAAS_", "FAASD_"))},
            "FAAS_URL": faasd.url,
            "FAAS_TOKEN": faasd.token,
        }

    def cli(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=max(1.0, timeout),
            stdin=subprocess.DEVNULL,
        )

    def deploy(
        self, folder: Path, env: str, name: str, interval: float, deadline: Deadline, old: dict[str, Any] | None = None
    ) -> Deploy:
        limit = min(CLI_TIMEOUT, max(1.0, deadline.left()))
        began = time.perf_counter()
        watch = Watch(self.faasd, name, interval, began, old, limit + 5)
        watch.start()
        try:
            done = self.cli(["deploy", str(folder), "--env", env, "--name", name], limit)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"faas deploy {name} took over {limit:.0f} s") from exc
        finally:
            cli = time.perf_counter() - began
            # The poller sees the end of the build shortly after the command does, at worst.
            watch.join(5 if watch.is_alive() else 0)
            watch.stop.set()
            watch.join(2)
        if done.returncode != 0:
            raise BenchError(f"faas deploy {name} exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}")
        if watch.failure or watch.package is None or math.isnan(watch.built):
            raise BenchError(f"package {name}: the poller did not see its build succeed ({watch.failure or 'no'})")
        return Deploy(cli, watch.accepted, watch.built, watch.package)


# -- the results -----------------------------------------------------------------------------


@dataclass
class EnvResult:
    environment: str
    cold_build: list[float] = field(default_factory=list)  # ms, every list
    cold_cli: list[float] = field(default_factory=list)
    cached_build: list[float] = field(default_factory=list)
    cached_cli: list[float] = field(default_factory=list)
    cached_misses: int = 0  # samples whose log did not say "cache hit" (a rebuilt builder image, say)
    redeploy: list[float] = field(default_factory=list)  # command start to the new code's first answer
    redeploy_cli: list[float] = field(default_factory=list)
    redeploy_accepted: list[float] = field(default_factory=list)  # command start to new source seen
    redeploy_built: list[float] = field(default_factory=list)  # command start to new build seen
    redeploy_first_call: list[float] = field(default_factory=list)  # command end to the new answer
    stale_answers: int = 0  # old code's answers seen after the command returned


@dataclass(frozen=True)
class PackagesResult:
    samples: int
    poolsize: int
    cli_startup: list[float]  # ms: `faas --help` alone
    environments: list[EnvResult]
    owner: str  # the faasd.owner label of the phase's faasd


# -- the measurement --------------------------------------------------------------------------


def _settle(faasd: Faasd, admin: Client, engine: Engine, base: int) -> None:
    wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), SETTLE_TIMEOUT, "pools to refill", interval=0.02)
    if not engine.wait_owned_count(faasd.owner, base, SETTLE_TIMEOUT):
        raise BenchError(f"faasd still runs more than {base} containers after {SETTLE_TIMEOUT:.0f} s")


def _delete_package(admin: Client, name: str) -> None:
    status, raw = admin.request("DELETE", f"/v1/packages/{name}?force=true")
    if status not in (200, 204, 404):
        raise BenchError(f"DELETE package {name}: {status} {raw[:200]!r}")


def _builds(
    faasd: Faasd,
    admin: Client,
    engine: Engine,
    deployer: Deployer,
    env: str,
    samples: int,
    run_id: str,
    deadline: Deadline,
    result: EnvResult,
) -> None:
    base = len(engine.owned(faasd.owner))
    short = env[:2]
    for i in range(samples):
        if deadline.passed():
            break
        _settle(faasd, admin, engine, base)
        folder = deployer.workdir / f"build-{short}-{i}"
        write_source(folder, env, f"1.{i}.0", f"{run_id}-{i}", "built")
        cold_name, cached_name = f"pc-{short}-{run_id}-{i}", f"pk-{short}-{run_id}-{i}"
        try:
            cold = deployer.deploy(folder, env, cold_name, COLD_POLL, deadline)
            if "cache miss" not in cold.package.get("build_log", ""):
                raise BenchError(f"package {cold_name}: a new dependency set was not a cache miss")
            result.cold_build.append(ms(cold.build))
            result.cold_cli.append(ms(cold.cli))
            _settle(faasd, admin, engine, base)
            cached = deployer.deploy(folder, env, cached_name, FINE_POLL, deadline)
            if "cache hit" in cached.package.get("build_log", ""):
                result.cached_build.append(ms(cached.build))
                result.cached_cli.append(ms(cached.cli))
            else:
                result.cached_misses += 1
        finally:
            _delete_package(admin, cold_name)
            _delete_package(admin, cached_name)


def _answer(calls: Client, route: str, expected: str, timeout: float) -> tuple[float, int]:
    """Poll GET ``route`` every 20 ms until it answers ``expected``; (seconds, old answers seen)."""
    began = time.perf_counter()
    stale = 0
    last = ""
    while time.perf_counter() - began < timeout:
        try:
            status, body = calls.request("GET", route)
        except OSError as exc:
            calls.close()
            status, body = 0, repr(exc).encode()
        text = body.decode(errors="replace").strip()
        if status == 200 and text == expected:
            return time.perf_counter() - began, stale
        stale += 1
        last = f"{status} {text[:120]!r}"
        time.sleep(FINE_POLL)
    raise BenchError(f"GET {route} did not answer {expected!r} within {timeout:.0f} s (last: {last})")


def _redeploys(
    faasd: Faasd,
    admin: Client,
    engine: Engine,
    deployer: Deployer,
    env: str,
    samples: int,
    run_id: str,
    deadline: Deadline,
    result: EnvResult,
) -> None:
    short = env[:2]
    name = f"rd-{short}-{run_id}"
    folder = deployer.workdir / name
    expected = write_source(folder, env, "2.0.0", run_id, "v0")
    calls = faasd.client(timeout=ANSWER_TIMEOUT)
    try:
        deployer.deploy(folder, env, name, FINE_POLL, deadline)
        _answer(calls, f"/{name}", expected, ANSWER_TIMEOUT)  # warm: the function runs, as a user's would
        _settle(faasd, admin, engine, 10**6)  # pools full again
        base = len(engine.owned(faasd.owner))
        for i in range(samples):
            if deadline.passed():
                break
            _settle(faasd, admin, engine, base)
            old = admin.json("GET", f"/v1/packages/{name}")
            marker = f"v{i + 1}"
            write_main(folder, env, marker)
            expected = expected.rsplit(" ", 1)[0] + f" {marker}"
            began = time.perf_counter()
            done = deployer.deploy(folder, env, name, FINE_POLL, deadline, old=old)
            after = time.perf_counter()
            if "cache hit" not in done.package.get("build_log", ""):
                raise BenchError(f"package {name}: a code-only change was not a dependency cache hit")
            first, stale = _answer(calls, f"/{name}", expected, ANSWER_TIMEOUT)
            result.redeploy.append(ms(after - began + first))
            result.redeploy_cli.append(ms(done.cli))
            result.redeploy_accepted.append(ms(done.accepted))
            result.redeploy_built.append(ms(done.built))
            result.redeploy_first_call.append(ms(first))
            result.stale_answers += stale
    finally:
        calls.close()
        _delete_package(admin, name)


def _cli_startup(deployer: Deployer, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        done = deployer.cli(["--help"], 30)
        if done.returncode != 0:
            raise BenchError(f"faas --help exited {done.returncode}: {done.stderr[-300:]}")
        times.append(ms(time.perf_counter() - began))
    return times


def measure(
    faasd_cmd: str,
    poolsize: int,
    samples: int,
    run_id: str,
    limit: float = DEFAULT_LIMIT,
    envs: tuple[str, ...] = ENVIRONMENTS,
) -> PackagesResult:
    """Start a faasd of the phase's own, measure, clean everything up."""
    deadline = Deadline(limit, "packages")
    engine = Engine(run_id)
    faasd = Faasd(faasd_cmd, poolsize=poolsize, idle_timeout=900)
    results = [EnvResult(env) for env in envs]
    try:
        with tempfile.TemporaryDirectory(prefix="faasd-bench-packages-") as tmp:
            faasd.start()
            admin = faasd.client()
            try:
                deployer = Deployer(faasd, Path(tmp))
                startup = _cli_startup(deployer, max(3, samples))
                wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to fill at start", 0.1)
                for result in results:
                    _builds(faasd, admin, engine, deployer, result.environment, samples, run_id, deadline, result)
                for result in results:
                    _redeploys(faasd, admin, engine, deployer, result.environment, samples, run_id, deadline, result)
            finally:
                admin.close()
    finally:
        code = faasd.stop()
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"packages: removed {leftover} containers left after faasd stopped", file=sys.stderr)
        tail = faasd.log_tail(5)
        faasd.close()
        engine.close()
    if code not in (0, None):
        raise BenchError(f"faasd exited with {code} on SIGTERM: {tail}")
    return PackagesResult(samples, poolsize, startup, results, faasd.owner)


# -- the table ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _p50(values: list[float], total: int, resolution: float = 0.0) -> str:
    """p50 [min-max]; a figure under the poll's interval (``resolution``, ms) is shown as below it."""

    def shown_ms(value: float) -> str:
        return f"< {resolution:.0f} ms" if value < resolution else _ms(value)

    if not values:
        return "n/a"
    shown = shown_ms(percentile(values, 50))
    if len(values) > 1:
        shown += f" [{shown_ms(min(values))} to {shown_ms(max(values))}]"
    return shown + (f" (n={len(values)} of {total})" if len(values) < total else "")


def p50(values: list[float]) -> float:
    return percentile(values, 50)


def table(result: PackagesResult) -> str:
    envs = result.environments
    n = result.samples
    lines = [
        f"| metric (p50 [min to max] of n={n} per environment) | "
        + " | ".join(e.environment for e in envs)
        + " | target |",
        "|---|" + "---|" * len(envs) + "---|",
    ]

    def row(metric: str, cells: list[str], target: str = "") -> None:
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {target} |")

    def after_build(e: EnvResult) -> list[float]:
        return [cli - built for cli, built in zip(e.redeploy_cli, e.redeploy_built, strict=True)]

    row("cold build (new dependency set): new source seen to build succeeded", [_p50(e.cold_build, n) for e in envs])
    row("cold build: `faas deploy DIR` wall time", [_p50(e.cold_cli, n) for e in envs])
    row(
        "cached build (same dependencies, new package; no builder): new source seen to build succeeded",
        [
            _p50(e.cached_build, n, ms(FINE_POLL)) + (f", {e.cached_misses} not a cache hit" if e.cached_misses else "")
            for e in envs
        ],
    )
    row("cached build: `faas deploy DIR` wall time", [_p50(e.cached_cli, n) for e in envs])
    met = []
    for e in envs:
        value = p50(e.redeploy)
        verdict = "" if math.isnan(value) else (" (met)" if value < REDEPLOY_TARGET_MS else " (**not met**)")
        met.append(_p50(e.redeploy, n) + verdict)
    row("**code-only redeploy: `faas deploy DIR` start to the new code's first answer**", met, "< 1 s")
    row("- redeploy: `faas deploy DIR` wall time", [_p50(e.redeploy_cli, n) for e in envs])
    row("- redeploy: then the first call answering the new code", [_p50(e.redeploy_first_call, n) for e in envs])
    row(
        "- redeploy, inside the command: new source seen (start-up, route check, zip, upload)",
        [_p50(e.redeploy_accepted, n) for e in envs],
    )
    row("- redeploy, inside the command: new build seen succeeded", [_p50(e.redeploy_built, n) for e in envs])
    row(
        "- redeploy, inside the command: from the build's end to its exit "
        "(its polls: 50 ms for 3 s, then 0.5 s; the function update)",
        [_p50(after_build(e), n) for e in envs],
    )
    row("- redeploy: old code's answers after the command returned", [str(e.stale_answers) for e in envs], "0")
    lines.append(
        f"| `faas --help` alone (the CLI's start-up; n={len(result.cli_startup)}) "
        f"| {_p50(result.cli_startup, len(result.cli_startup))} |" + " |" * (len(envs) - 1) + " reference |"
    )
    return "\n".join(lines)


def summary_line(result: PackagesResult) -> str:
    return (
        "Offline dependencies (a hand-made wheel / npm tarball shipped in the source); each sample is one "
        "`faas deploy DIR` in a subprocess, a thread polling `GET /v1/packages/N` meanwhile (50 ms during cold "
        f"builds, 20 ms otherwise); pool size {result.poolsize}; the redeployed function was warm. "
        "`python -m bench.packages` runs this alone."
    )


def history_cell(result: PackagesResult) -> str:
    """Code-only redeploy p50, nodejs / python, in ms (the history column)."""
    by_env = {e.environment: p50(e.redeploy) for e in result.environments}
    if all(math.isnan(v) for v in by_env.values()):
        return ""
    return " / ".join("" if math.isnan(by_env.get(env, math.nan)) else f"{by_env[env]:.0f}" for env in ENVIRONMENTS)


# -- alone: python -m bench.packages --------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.packages", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1 sample of each figure")
    p.add_argument("--samples", type=int, help="samples of each figure per environment (5; quick 1)")
    p.add_argument("--poolsize", type=int, default=3, help="faasd --default-poolsize")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--env", action="append", choices=ENVIRONMENTS, help="environment(s); default both")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    args = p.parse_args(argv)
    samples = args.samples if args.samples is not None else (1 if args.quick else 5)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(
            args.faasd_cmd, args.poolsize, samples, secrets.token_hex(3), args.limit, tuple(args.env or ENVIRONMENTS)
        )
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"packages: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores; faas CLI: {shlex.join(cli_command())}"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    print(f"faasd owner label: {result.owner}", file=sys.stderr)
    for e in result.environments:
        for label, values in (
            ("cold build", e.cold_build),
            ("cached build", e.cached_build),
            ("redeploy", e.redeploy),
            ("redeploy cli", e.redeploy_cli),
            ("redeploy first call", e.redeploy_first_call),
        ):
            print(f"{e.environment} {label} ms: {', '.join(f'{v:.0f}' for v in values)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
