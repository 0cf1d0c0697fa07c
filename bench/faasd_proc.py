"""The faasd under test: started by the suite with its own port and state dir, stopped with SIGTERM."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import BenchError, Client, free_port, wait_for


def owner_of(state_dir: Path) -> str:
    """The faasd.owner label value faasd gives its containers for this state dir."""
    from faasd.core.settings import Settings

    return Settings(state_dir=state_dir).owner


class Faasd:
    def __init__(
        self,
        command: str,
        poolsize: int,
        idle_timeout: float,
        log_level: str = "warning",
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = shlex.split(command) if command else [sys.executable, "-m", "faasd"]
        self.poolsize = poolsize
        self.idle_timeout = idle_timeout
        self.log_level = log_level
        # More command-line options (e.g. ``["--call-metrics", "false"]``) and FAASD_* variables of this faasd.
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(env or {})
        self._tmp = tempfile.TemporaryDirectory(prefix="faasd-bench-")
        self.state_dir = Path(self._tmp.name) / "state"
        self.owner = owner_of(self.state_dir)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self._tmp.name) / "faasd.log"
        # A faasd with an admin token reads it from FAASD_TOKEN; an older one ignores both.
        self.token = secrets.token_urlsafe(32)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("faasd is not running")
        return self.proc.pid

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.host, self.port, timeout, self.token)

    def start(self, timeout: float = 60.0) -> None:
        args = [
            *self.command,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
            "--default-poolsize",
            str(self.poolsize),
            "--idle-timeout",
            str(self.idle_timeout),
            "--log-level",
            self.log_level,
            # Named here: with --database the default label would hash the machine's name too, and the
            # suite's clean-up by label must find the containers of a node it killed.
            "--owner-label",
            self.owner,
            *self.extra_args,
        ]
        log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAASD_")}
        env.update(self.extra_env)
        env["FAASD_TOKEN"] = self.token
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        client = self.client(timeout=2)

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"faasd exited at start ({self.proc.returncode}): {self.log_tail()}")
            try:
                return client.request("GET", "/healthz")[0] == 200
            except OSError:
                client.close()
                return False

        wait_for(healthy, timeout, "faasd to answer /healthz", interval=0.05)
        client.close()

    def status(self, client: Client) -> dict[str, Any]:
        result: dict[str, Any] = client.json("GET", "/v1/status")
        return result

    def environment(self, client: Client, name: str) -> dict[str, Any]:
        for env in self.status(client)["environments"]:
            if env["name"] == name:
                return dict(env)
        raise BenchError(f"faasd has no environment {name}")

    def pools_full(self, client: Client, names: tuple[str, ...]) -> bool:
        for env in self.status(client)["environments"]:
            if env["name"] in names and (env.get("pool_ready") != env["poolsize"] or env.get("pool_starting", 0) != 0):
                return False
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 45.0) -> int | None:
        """SIGTERM (faasd removes its containers), then SIGKILL past ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def close(self) -> None:
        self._tmp.cleanup()
