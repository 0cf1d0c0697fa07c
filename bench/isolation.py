"""What isolation costs: a container start and a warm call, plain bridge versus isolated bridge.

Two Docker networks made for the run, measured side by side:

- plain: a bridge with Docker's defaults (inter-container traffic on) and no
  faasd chain;
- isolated: a bridge made as faasd makes its own (``enable_icc=false``), with
  faasd's host firewall (``faasd.engines.firewall.HostFirewall``, the real
  class) set up on it: INPUT from the bridge passes only ESTABLISHED/RELATED.

Figures, per environment:

- start: create + start + inspect + ``GET /healthz`` every 5 ms until 200, with
  faasd's own container options and specialization token (as
  ``DockerBackend.start`` does); the container is removed after each sample,
  outside the timing; samples alternate between the sides (ABBA...);
- warm: one container per side, specialized with the hello function (token
  sent as ``Authorization: Bearer``), called straight from the host over
  keep-alive connections: rounds of 1 s loaded (``wrk -t1 -c10``) and 1 s on
  one connection (``-t1 -c1``) per side, the side order alternating by round
  (an even count balances who goes first); each figure is the mean over the
  rounds (a 1 s run on a shared machine is often bimodal, which a median of a
  few rounds follows to either mode). The table also gives the pairs' own
  ratios (one pair per round or start sample, run back to back): their
  spread is the noise the ratio carries.

Containers carry ``faasd.bench=isolation`` and ``faasd.bench.run=<run id>``;
they, the two networks and the firewall chains are removed at the end,
whatever happened. Traffic goes only to the containers the phase starts.

    .venv/bin/python -m bench.isolation            # 15 starts per side, 8 rounds
    .venv/bin/python -m bench.isolation --quick    # 3 starts per side, 1 round
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from bench import loadgen
from bench.common import HELLO, BenchError, Client, Deadline, exit_on_sigterm, ms, percentile

if TYPE_CHECKING:
    from faasd.engines.firewall import HostFirewall

SIDES = ("plain", "isolated")
SIDE_TITLES = {
    "plain": "plain bridge (icc on, no faasd chains)",
    "isolated": "isolated (icc off + host firewall)",
}
FILENAMES = {"nodejs": "hello.js", "python": "hello.py"}
DEFAULT_IMAGES = {"python": "faasd/runtime-python:latest", "nodejs": "faasd/runtime-nodejs:latest"}
PORT = 8888
READY_TIMEOUT = 20.0
ROUND_SECONDS = 1.0
CLEANUP_RETRY = 60.0


@dataclass(frozen=True)
class EnvResult:
    environment: str
    starts: dict[str, list[float]]  # side -> start milliseconds
    loaded: dict[str, list[loadgen.Load]]  # side -> one run per round, c<connections>
    unloaded: dict[str, list[loadgen.Load]]  # side -> one run per round, c1


@dataclass(frozen=True)
class IsolationResult:
    environments: list[EnvResult]
    firewall: str  # what HostFirewall reported once set up
    connections: int
    rounds: int
    # Packets from the isolated bridge that went through faasd's INPUT chain (its
    # ESTABLISHED rule): proof that the isolated side's replies did cross the firewall.
    firewall_packets: int = -1
    samples: int = 0  # start samples asked for per side; fewer when the time bound stopped them


@dataclass(frozen=True)
class Running:
    id: str
    address: str
    token: str
    start_ms: float


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


class Lab:
    """The two networks, the firewall on the isolated one, and the containers started on them."""

    def __init__(self, run_id: str) -> None:
        # faasd is imported here, not at the top: the suite's other phases do not need it.
        from docker.types import LogConfig

        from faasd.core.entities import DEFAULT_CPU_MILLIS
        from faasd.core.settings import Settings
        from faasd.engines import docker as faasd_docker
        from faasd.engines import isolation as faasd_isolation
        from faasd.engines.firewall import HostFirewall

        self.run_id = run_id
        self.client = docker.from_env(timeout=60)
        self.client.ping()
        self.labels = {"faasd.bench": "isolation", "faasd.bench.run": run_id}
        self.icc_option: str = faasd_isolation.ICC_OPTION
        self.token_env: str = faasd_docker.TOKEN_ENV
        self.poll: float = faasd_docker.READY_POLL
        settings = Settings()
        # faasd's _create options, with the suite's labels instead of faasd's.
        self.options: dict[str, Any] = {
            "cpu_period": faasd_docker.CPU_PERIOD,
            "cpu_quota": DEFAULT_CPU_MILLIS * faasd_docker.CPU_PERIOD // 1000,
            "log_config": LogConfig(
                type="json-file",
                config={
                    "max-size": settings.container_log_max_size,
                    "max-file": str(settings.container_log_max_files),
                },
            ),
            "mem_limit": f"{settings.container_memory_mb}m",
            "memswap_limit": f"{settings.container_memory_mb}m",
            "pids_limit": 128,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": "rw,size=64m,mode=1777"},
            "user": "1000:1000",
        }
        self.firewall: HostFirewall = HostFirewall(f"bench{run_id}")
        self.firewall_set_up = False
        self.networks: dict[str, str] = {}  # side -> network name
        self._serial = itertools.count(1)

    # -- set-up and clean-up ---------------------------------------------------

    def setup(self) -> str:
        """Both networks and the firewall; returns the firewall's description."""
        from faasd.engines.firewall import FirewallError

        bridge = ""
        for side in SIDES:
            name = f"faasd-bench-{side}-{self.run_id}"
            options = {self.icc_option: "false"} if side == "isolated" else {}
            network = self.client.networks.create(name, driver="bridge", labels=self.labels, options=options)
            self.networks[side] = name
            network.reload()
            icc = (network.attrs.get("Options") or {}).get(self.icc_option, "true")
            if (icc == "false") != (side == "isolated"):
                raise BenchError(f"network {name} has {self.icc_option}={icc}")
            if side == "isolated":
                bridge = _bridge_name(network.attrs)
        self.firewall_set_up = True  # teardown is harmless when setup failed half-way
        try:
            state = self.firewall.setup(bridge)
        except FirewallError as exc:
            raise BenchError(f"the host firewall cannot be set up (run as root with iptables): {exc}") from exc
        return f"HostFirewall {self.firewall.in_chain}/{self.firewall.out_chain}, {state.reason}"

    def close(self) -> None:
        """Containers, firewall chains, networks: each step tried even when another fails.

        The engine's steps are retried for up to CLEANUP_RETRY s (a Docker engine
        being restarted by someone else comes back within that).
        """
        problems: list[str] = []
        if self.firewall_set_up:
            try:
                self.firewall.teardown()
            except Exception as exc:
                problems.append(f"firewall: {exc}")
        deadline = time.monotonic() + CLEANUP_RETRY
        while True:
            try:
                filters = {"label": [f"{k}={v}" for k, v in self.labels.items()]}
                for summary in self.client.api.containers(all=True, filters=filters):
                    with contextlib.suppress(docker.errors.NotFound):
                        self.client.api.remove_container(summary["Id"], force=True)
                for network in self.client.networks.list(filters={"label": f"faasd.bench.run={self.run_id}"}):
                    if network.name in self.networks.values():
                        network.remove()
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    problems.append(
                        f"containers/networks: {exc} (left: containers labelled faasd.bench.run={self.run_id}, "
                        f"networks {', '.join(self.networks.values()) or 'none'})"
                    )
                    break
                time.sleep(2.0)
        self.client.close()
        if problems:
            print(f"isolation clean-up: {'; '.join(problems)}", file=sys.stderr)

    def chain_packets(self) -> int:
        """The packet counter of the INPUT chain's first rule (ESTABLISHED,RELATED -> RETURN); -1 if unknown."""
        with contextlib.suppress(Exception):
            listed = self.firewall._iptables("-L", self.firewall.in_chain, "-v", "-n", "-x").stdout.splitlines()
            rules = [line.split() for line in listed[2:] if line.strip()]
            if rules and "ESTABLISHED" in " ".join(rules[0]):
                return int(rules[0][0])
        return -1

    # -- containers -------------------------------------------------------------

    def start(self, side: str, image: str) -> Running:
        """create + start + address + /healthz 200, timed as DockerBackend.start is."""
        token = secrets.token_urlsafe(32)
        network = self.networks[side]
        began = time.perf_counter()
        container = self.client.containers.create(
            image,
            detach=True,
            name=f"faasd-bench-iso-{self.run_id}-{side}-{next(self._serial)}",
            labels=self.labels,
            network=network,
            environment={"PORT": str(PORT), self.token_env: token},
            **self.options,
        )
        cid = str(container.id)
        try:
            self.client.api.start(cid)
            networks = self.client.api.inspect_container(cid)["NetworkSettings"]["Networks"]
            address = str(networks.get(network, {}).get("IPAddress", ""))
            if not address:
                raise BenchError(f"container {cid[:12]} has no address on {network}")
            self._wait_ready(cid, address)
            return Running(cid, address, token, ms(time.perf_counter() - began))
        except BaseException:
            self.remove(cid)
            raise

    def _wait_ready(self, cid: str, address: str) -> None:
        """GET /healthz every READY_POLL s (1 s timeout each), the engine asked now and then whether it runs."""
        deadline = Deadline(READY_TIMEOUT, f"container {cid[:12]} to answer /healthz")
        next_engine_check = time.monotonic() + 0.5
        while True:
            conn = http.client.HTTPConnection(address, PORT, timeout=1)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            deadline.check()
            if time.monotonic() > next_engine_check:
                next_engine_check = time.monotonic() + 0.5
                if not self.client.api.inspect_container(cid)["State"].get("Running"):
                    raise BenchError(f"container {cid[:12]} exited at start")
            time.sleep(self.poll)

    def remove(self, cid: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(cid, force=True)

    def specialize(self, running: Running, env: str) -> None:
        client = Client(running.address, PORT, timeout=10, token=running.token)
        try:
            body = {"filename": FILENAMES[env], "code": HELLO[env], "entrypoint": "", "env": {}}
            client.json("POST", "/v2/specialize", body)
            client.token = ""  # calls carry no token
            status, raw = client.request("GET", "/")
            if status != 200 or raw.strip() != b"hello":
                raise BenchError(f"the specialized {env} container answers {status} {raw[:200]!r}")
        finally:
            client.close()


def _bridge_name(attrs: dict[str, Any]) -> str:
    """The host interface of a bridge network, as faasd names it (engines/docker.py)."""
    options = attrs.get("Options") or {}
    return str(options.get("com.docker.network.bridge.name") or "br-" + str(attrs["Id"])[:12])


def _starts(lab: Lab, images: dict[str, str], samples: int, deadline: Deadline) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {env: {side: [] for side in SIDES} for env in images}
    for i in range(samples):
        if deadline.passed():  # report the samples taken so far (n is in the table)
            break
        for k, (env, image) in enumerate(images.items()):
            for side in SIDES if (i + k) % 2 == 0 else SIDES[::-1]:
                running = lab.start(side, image)
                lab.remove(running.id)
                times[env][side].append(running.start_ms)
    return times


def _warm(
    lab: Lab, env: str, image: str, connections: int, rounds: int, flip: bool
) -> tuple[dict[str, list[loadgen.Load]], dict[str, list[loadgen.Load]]]:
    urls: dict[str, str] = {}
    started: list[Running] = []
    try:
        for side in SIDES[::-1] if flip else SIDES:  # which container starts first alternates too
            running = lab.start(side, image)
            started.append(running)
            lab.specialize(running, env)
            urls[side] = f"http://{running.address}:{PORT}/"
        for url in urls.values():
            loadgen.run(url, ROUND_SECONDS, connections, threads=1)  # warm-up
        loaded: dict[str, list[loadgen.Load]] = {side: [] for side in SIDES}
        unloaded: dict[str, list[loadgen.Load]] = {side: [] for side in SIDES}
        for n in range(rounds):
            for side in SIDES if (n % 2 == 0) != flip else SIDES[::-1]:
                loaded[side].append(loadgen.run(urls[side], ROUND_SECONDS, connections, threads=1))
                unloaded[side].append(loadgen.run(urls[side], ROUND_SECONDS, 1, threads=1))
        return loaded, unloaded
    finally:
        for running in started:
            lab.remove(running.id)


def measure(
    images: dict[str, str],
    run_id: str,
    samples: int,
    rounds: int,
    connections: int = 10,
    limit: float = 90.0,
) -> IsolationResult:
    """Both sides in one run; ``limit`` bounds the start samples (the warm rounds are bounded by wrk's -d)."""
    lab = Lab(run_id)
    try:
        firewall = lab.setup()
        starts = _starts(lab, images, samples, Deadline(limit, "isolation starts"))
        results = []
        for k, (env, image) in enumerate(images.items()):
            loaded, unloaded = _warm(lab, env, image, connections, max(1, rounds), flip=k % 2 == 1)
            results.append(EnvResult(env, starts[env], loaded, unloaded))
        return IsolationResult(results, firewall, connections, max(1, rounds), lab.chain_packets(), samples)
    finally:
        lab.close()


# -- the table ---------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _x(value: float) -> str:
    return f"{value:.2f} x"


def _errors(load: loadgen.Load) -> str:
    return f" ({load.errors} errors)" if load.errors else ""


def _spread(plain: list[float], isolated: list[float]) -> str:
    """The pairs' own isolated / plain ratios (one pair per round or start sample, run back to
    back): median [min-max]; how far apart they lie shows how much of the ratio is noise."""
    ratios = sorted(_ratio(i, p) for p, i in zip(plain, isolated, strict=False))
    if not ratios:
        return ""
    return f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}-{ratios[-1]:.2f}]"


def _mean(runs: list[loadgen.Load], figure: str) -> float:
    return statistics.fmean(getattr(run, figure) for run in runs) if runs else float("nan")


def table(result: IsolationResult) -> str:
    c = result.connections
    lines = [
        f"| metric | {SIDE_TITLES['plain']} | {SIDE_TITLES['isolated']} | isolated / plain "
        "| pairs' own ratios: median [min-max] |",
        "|---|---|---|---|---|",
    ]
    for e in result.environments:
        plain, isolated = e.starts["plain"], e.starts["isolated"]
        if plain and isolated:
            p50 = {side: percentile(e.starts[side], 50) for side in SIDES}
            p90 = {side: percentile(e.starts[side], 90) for side in SIDES}
            lines.append(
                f"| {e.environment}: container start to first 200 on /healthz, p50 / p90 "
                f"(n={len(plain)} / {len(isolated)}"
                + (f" of {result.samples}, time bound" if min(len(plain), len(isolated)) < result.samples else "")
                + ") "
                f"| {_ms(p50['plain'])} / {_ms(p90['plain'])} "
                f"| {_ms(p50['isolated'])} / {_ms(p90['isolated'])} "
                f"| {_x(_ratio(p50['isolated'], p50['plain']))} / {_x(_ratio(p90['isolated'], p90['plain']))} "
                f"| {_spread(plain, isolated)} |"
            )
        for runs, what, figures in (
            (e.loaded, f"c{c}", (("rps", "req/s"), ("p50_ms", "p50"))),
            (e.unloaded, "c1", (("p50_ms", "p50"),)),
        ):
            errors = {side: sum(run.errors for run in runs[side]) for side in SIDES}
            note = {side: f" ({errors[side]} errors)" if errors[side] else "" for side in SIDES}
            for figure, label in figures:
                mean = {side: _mean(runs[side], figure) for side in SIDES}
                shown = {side: f"{mean[side]:,.0f}" if figure == "rps" else _ms(mean[side]) for side in SIDES}
                lines.append(
                    f"| {e.environment}: warm hello straight to the container, {label} "
                    f"(wrk -t1 -{what}, mean of {len(runs['plain'])} x {ROUND_SECONDS:g} s) "
                    f"| {shown['plain']}{note['plain']} | {shown['isolated']}{note['isolated']} "
                    f"| {_x(_ratio(mean['isolated'], mean['plain']))} "
                    f"| {_spread(*([getattr(r, figure) for r in runs[side]] for side in SIDES))} |"
                )
    return "\n".join(lines)


def summary_line(result: IsolationResult) -> str:
    return (
        f"Both sides measured in one run, alternating; warm figures are means over {result.rounds} "
        f"round(s) of {ROUND_SECONDS:g} s per side (on a shared machine a 1 s run is often bimodal); "
        f"start ratios are p50 / p50 and p90 / p90; isolated side: icc off, {result.firewall}"
        + (
            f"; {result.firewall_packets:,} packets from its bridge passed the INPUT chain's ESTABLISHED rule."
            if result.firewall_packets >= 0
            else "."
        )
    )


# -- alone: python -m bench.isolation -----------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.isolation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="3 starts per side, 1 round")
    p.add_argument("--samples", type=int, help="container starts per side and environment (15; quick 3)")
    p.add_argument("--rounds", type=int, help="1 s warm rounds per side (8; quick 1)")
    p.add_argument("--connections", type=int, default=10, help="connections of the loaded warm runs")
    p.add_argument("--env", action="append", choices=sorted(DEFAULT_IMAGES), help="environment(s); default both")
    args = p.parse_args(argv)
    samples = args.samples if args.samples is not None else (3 if args.quick else 15)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 8)
    images = {env: DEFAULT_IMAGES[env] for env in (args.env or DEFAULT_IMAGES)}
    exit_on_sigterm()
    run_id = secrets.token_hex(3)
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(images, run_id, samples, rounds, args.connections)
    except (BenchError, docker.errors.DockerException, OSError) as exc:
        print(f"isolation: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    generator = "wrk" if loadgen.have_wrk() else "bounded asyncio client (wrk not installed)"
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores; load generator {generator}"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    for e in result.environments:
        for kind, runs in (("c" + str(result.connections), e.loaded), ("c1", e.unloaded)):
            detail = "; ".join(
                f"{p.rps:,.0f}/{i.rps:,.0f} req/s {p.p50_ms:.2f}/{i.p50_ms:.2f} ms"
                for p, i in zip(runs["plain"], runs["isolated"], strict=True)
            )
            print(f"{e.environment} {kind} rounds (plain/isolated): {detail}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
