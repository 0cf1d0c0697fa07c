"""A real faasd process on a real Docker engine, for the integration suite.

`FaasdProcess` starts `python -m faasd` on a free loopback port with its own
state dir (hence its own container label), waits for /healthz and for its
pools, and on stop removes whatever containers carry its label, even after a
failed test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from faasd.core.settings import Settings
from faasd.engines.firewall import HostFirewall

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("faasd/runtime-nodejs:latest", "faasd/runtime-python:latest")


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker_client() -> docker.DockerClient:
    """The engine, or a loud failure: these tests never pass without one."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise AssertionError(
            f"the integration suite needs a running Docker engine ({exc}); run 'make test', which starts one"
        ) from exc
    missing = [image for image in IMAGES if not client.images.list(name=image)]
    if missing:
        raise AssertionError(f"runtime images missing: {', '.join(missing)}; run 'make images' (faasd images build)")
    return client


@dataclass(frozen=True)
class ContainerRef:
    id: str
    name: str


class FaasdProcess:
    def __init__(
        self, state_dir: Path, engine: docker.DockerClient, environ: dict[str, str] | None = None, **options: Any
    ) -> None:
        self.state_dir = state_dir
        self.environ = {**os.environ, **(environ or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.engine = engine
        # --firewall on: a faasd that cannot isolate its functions fails the test at start.
        self.options = {"idle_timeout": 120, "default_poolsize": 2, "firewall": "on", **options}
        database = str(self.options.get("database") or self.environ.get("FAASD_DATABASE", ""))
        owner_label = str(self.options.get("owner_label") or self.environ.get("FAASD_OWNER_LABEL", ""))
        self.owner = Settings(state_dir=state_dir, database=database, owner_label=owner_label).owner
        self.log_path = state_dir / "faasd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- process ------------------------------------------------------------

    def start(self, wait_pools: bool = True) -> FaasdProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "faasd", "--port", str(self.port), "--state-dir", str(self.state_dir)]
        for key, value in self.options.items():
            args += ["--" + key.replace("_", "-"), str(value)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=self.environ)
        wait_for(self._healthy, f"faasd to answer /healthz (log: {self.log_path})", timeout=30)
        if wait_pools:
            self.wait_pools_full()
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"faasd exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Whatever happened, leave no process and no container behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # faasd removes its own containers on SIGTERM
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for container in self.containers():
            try:
                self.engine.api.remove_container(container.id, force=True)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):  # gone, or its removal already in progress
                    raise
        # A faasd killed with -9 leaves its (inert) firewall chains: remove them too.
        HostFirewall(self.owner).teardown()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- engine views -------------------------------------------------------

    def containers(self, **labels: str) -> list[ContainerRef]:
        """This faasd's containers, by label, in one list call (no inspect that a removal can race)."""
        filters = [f"faasd.owner={self.owner}"] + [f"faasd.{k}={v}" for k, v in labels.items()]
        found = self.engine.api.containers(all=True, filters={"label": filters})
        # A container the engine is removing is listed with no names: it is named by its id then.
        return [ContainerRef(c["Id"], (c.get("Names") or [c["Id"][:12]])[0].lstrip("/")) for c in found]

    # -- API ----------------------------------------------------------------

    @property
    def token(self) -> str:
        """The admin API token faasd keeps in its state dir."""
        path = self.state_dir / "token"
        return path.read_text().strip() if path.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, timeout=60, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def status(self) -> dict[str, Any]:
        return dict(self.ok("GET", "/v1/status"))

    def env_status(self, name: str) -> dict[str, Any]:
        return next(e for e in self.status()["environments"] if e["name"] == name)

    def instances(self, function: str) -> int:
        fns = {f["name"]: f["instances"] for f in self.status()["functions"]}
        return int(fns.get(function, 0))

    def wait_pools_full(self) -> None:
        def full() -> bool:
            return all(e["pool_ready"] == e["poolsize"] for e in self.status()["environments"])

        wait_for(full, "every environment's pool to be full", timeout=60)

    def create_function(self, name: str, environment: str, code: str, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "environment": environment, "code": code, **extra}
        return dict(self.ok("POST", "/v1/functions", json=body))

    def create_route(self, method: str, url: str, function: str) -> dict[str, Any]:
        return dict(self.ok("POST", "/v1/triggers/http", json={"method": method, "url": url, "function": function}))

    def faas(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the `faas` CLI against this daemon."""
        env = {**os.environ, "FAAS_URL": self.url, "FAAS_TOKEN": self.token}
        return subprocess.run(
            [sys.executable, "-m", "faas_cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            input=input_text,
            cwd=self.state_dir,
        )
