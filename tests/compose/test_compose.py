"""docker-compose.yml end to end: build, up, deploy through the CLI, restart, down.

The composed faasd drives this host's engine through the Docker socket, so the
stack gets names of its own (project, network, state dir, published port) and
a finalizer that takes it down even after a failure. The runtime images must
exist (make images); the faasd image is built by scripts/build-faasd-image.sh,
which skips the build when nothing changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest
import requests

from tests.integration.harness import ROOT, docker_client, free_port, wait_for

pytestmark = pytest.mark.docker

PROBE_PY = """import socket


def main(context):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((context.request.query["host"], int(context.request.query["port"])))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"
    finally:
        s.close()
"""

HELLO_JS = """module.exports = function(context, callback) {
    callback(200, "Hello, world!\\n");
}
"""


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when present, else Debian's `docker-compose`; a loud failure without."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError(
        "the compose test needs Docker Compose: 'docker compose' (v2) or 'docker-compose' "
        "(apt-get install docker-compose; 'make test' installs it with the engine)"
    )


@dataclass
class Stack:
    """One compose project of docker-compose.yml, named for this test run."""

    engine: docker.DockerClient
    compose: list[str]
    project: str = field(default_factory=lambda: f"faasdtest{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_dir(self) -> str:
        return f"/var/lib/{self.project}"

    @property
    def network(self) -> str:
        return f"{self.project}-net"

    @property
    def owner(self) -> str:
        """The faasd.owner label of the composed faasd's containers (from its state dir's path)."""
        return hashlib.sha256(self.state_dir.encode()).hexdigest()[:12]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "FAASD_PUBLISH_PORT": str(self.port),
            "FAASD_NETWORK": self.network,
            "FAASD_STATE_DIR": self.state_dir,
            "FAASD_POOLSIZE": "1",
        }

    def run(self, *args: str, timeout: float = 180) -> str:
        command = [*self.compose, "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), *args]
        result = subprocess.run(command, capture_output=True, text=True, env=self.env(), timeout=timeout, cwd=ROOT)
        assert result.returncode == 0, f"{' '.join(command[-len(args) :])}: {result.returncode}\n{result.stderr}"
        return result.stdout

    def token(self) -> str:
        """The admin API token the composed faasd keeps in its state volume ('' when it keeps none)."""
        script = f'cat "{self.state_dir}/token" 2>/dev/null || true'
        return self.run("exec", "-T", "faasd", "sh", "-c", script, timeout=60).strip()

    def faas(self, *args: str, cwd: Path) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "faas_cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "FAAS_URL": self.url, "FAAS_TOKEN": self.token()},
            timeout=120,
            cwd=cwd,
        )
        assert result.returncode == 0, f"faas {' '.join(args)}: {result.returncode}\n{result.stderr}\n{self.logs()}"
        return result.stdout

    def leftovers(self) -> list[str]:
        """Names of containers of this project or of its faasd, running or not."""
        found = self.engine.api.containers(all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        found += self.engine.api.containers(all=True, filters={"label": f"faasd.owner={self.owner}"})
        return sorted({(c.get("Names") or [c["Id"][:12]])[0].lstrip("/") for c in found})

    def wait_healthy(self, what: str) -> None:
        try:
            wait_for(self.healthy, what, timeout=90, every=0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from None

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def logs(self) -> str:
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            return self.run("logs", "--no-color", "--tail", "50", timeout=60)
        return "(no logs)"


@pytest.fixture(scope="module")
def faasd_image() -> None:
    """The faasd image, built from the repo's Dockerfile (a no-op when it is current)."""
    docker_client()  # fails loudly without an engine or the runtime images
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-faasd-image.sh")], capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, f"build-faasd-image.sh failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def stack(faasd_image: None) -> Iterator[Stack]:
    engine = docker_client()
    stack = Stack(engine, compose_command())
    try:
        yield stack
    finally:
        # Whatever happened: take the stack down, then remove anything it left.
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            stack.run("down", "-v", "--remove-orphans", "--timeout", "60")
        for name in stack.leftovers():
            with contextlib.suppress(docker.errors.NotFound):
                engine.api.remove_container(name, force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            engine.networks.get(stack.network).remove()


def test_compose_file_is_accepted(stack: Stack) -> None:
    config = stack.run("config")
    # faasd in the host's namespace, on loopback only: out of the functions' reach (SECURITY.md).
    assert "network_mode: host" in config
    assert "NET_ADMIN" in config
    assert "FAASD_HOST: 127.0.0.1" in config
    assert f"FAASD_PORT: '{stack.port}'" in config or f'FAASD_PORT: "{stack.port}"' in config, config
    assert f"FAASD_NETWORK: {stack.network}" in config


def test_compose_up_deploy_restart_down(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "hello.js").write_text(HELLO_JS)

    stack.run("up", "-d")
    stack.wait_healthy(f"the composed faasd at {stack.url}")

    out = stack.faas("deploy", "hello.js", "--env", "nodejs", cwd=tmp_path)
    assert out.splitlines()[-1] == f"{stack.url}/hello", out
    response = requests.get(f"{stack.url}/hello", timeout=60)
    assert (response.status_code, response.text) == (200, "Hello, world!\n"), stack.logs()
    # The runtime containers are faasd's, on the stack's network, which keeps them apart.
    containers = stack.engine.containers.list(filters={"label": f"faasd.owner={stack.owner}"})
    assert containers, stack.logs()
    assert all(stack.network in c.attrs["NetworkSettings"]["Networks"] for c in containers)
    network = stack.engine.api.inspect_network(stack.network)
    assert network["Options"].get("com.docker.network.bridge.enable_icc") == "false"
    # A function cannot reach the faasd that holds the Docker socket.
    (tmp_path / "probe.py").write_text(PROBE_PY)
    stack.faas("deploy", "probe.py", "--env", "python", cwd=tmp_path)
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    seen = requests.get(f"{stack.url}/probe", params={"host": gateway, "port": stack.port}, timeout=60)
    assert seen.status_code == 200, seen.text
    assert seen.text in ("refused", "timeout"), seen.text

    stack.run("restart", timeout=180)
    stack.wait_healthy("the composed faasd after the restart")
    # The function and its route survived in the state volume.
    response = requests.get(f"{stack.url}/hello", timeout=60)
    assert (response.status_code, response.text) == (200, "Hello, world!\n"), stack.logs()
    assert "hello" in stack.faas("route", "list", cwd=tmp_path)

    stack.run("down", "-v", "--remove-orphans", "--timeout", "60")
    assert stack.leftovers() == []
    assert not stack.engine.volumes.list(filters={"label": f"com.docker.compose.project={stack.project}"})
    # faasd made the functions' network (not compose): it stays, with nothing attached.
    left = stack.engine.api.inspect_network(stack.network)
    assert not left.get("Containers"), left
    assert not stack.healthy()
