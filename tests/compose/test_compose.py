"""docker-compose.yml end to end: build, up, deploy through the CLI, restart, down.

The composed faasd drives this host's engine through the Docker socket, so the
stack gets names of its own (project, network, apps network, state dir,
published ports) and a finalizer that takes it down even after a failure.
Nothing is pulled or built by compose here: `faasd images build --brokers
--source .` (what `make compose` runs) builds the runtime, builder and broker
images and faasd's own (skipping what is current), so compose finds faasd's
image present and the composed faasd finds its runtime and builder images
current (the same recipes, the same tags). The brokers run from the official
images when they are here (FAASD_REDIS_IMAGE / FAASD_NATS_IMAGE choose), else
from faasd/broker-redis and faasd/broker-nats.
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
from typing import Any

import docker
import docker.errors
import pytest
import requests
import yaml

from faasd.core.recipes import RecipeBook, runtime_recipes
from tests.integration.brokers import nats_info, probe_aliases, redis_command
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


def broker_image(engine: docker.DockerClient, variable: str, official: str, local: str) -> str:
    """The image the stack runs a broker from: $variable, else the official one when it is
    here (nothing is pulled), else the one `faasd images build --brokers` built."""
    if os.environ.get(variable):
        return os.environ[variable]
    try:
        engine.images.get(official)
        return official
    except docker.errors.ImageNotFound:
        return local


def published(ports: list[Any]) -> list[str]:
    """A service's ports as host_ip:published:target, from compose v1's short or v2's long form."""
    out = []
    for port in ports:
        if isinstance(port, str):
            out.append(port.removesuffix("/tcp"))
        else:
            out.append(f"{port.get('host_ip', '')}:{port['published']}:{port['target']}")
    return out


def stock_images() -> list[str]:
    """The stock runtime and builder images (recipe tags) a faasd from this clone runs."""
    book = RecipeBook(runtime_recipes())
    found = []
    for name in ("nodejs", "python"):
        runtime = book.runtime(name)
        builder = book.builder_of(runtime)
        found += [runtime.reference] + ([builder.reference] if builder is not None else [])
    return found


@dataclass
class Stack:
    """One compose project of docker-compose.yml, named for this test run."""

    engine: docker.DockerClient
    compose: list[str]
    redis_image: str = "faasd/broker-redis:latest"
    nats_image: str = "faasd/broker-nats:latest"
    project: str = field(default_factory=lambda: f"faasdtest{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    nats_port: int = field(default_factory=free_port)

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
    def apps_network(self) -> str:
        """The brokers' network (faasd-apps outside this test)."""
        return f"{self.project}-apps"

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
            "FAASD_APPS_NETWORK": self.apps_network,
            "FAASD_REDIS_PORT": str(self.redis_port),
            "FAASD_NATS_PORT": str(self.nats_port),
            "FAASD_REDIS_IMAGE": self.redis_image,
            "FAASD_NATS_IMAGE": self.nats_image,
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

    def status(self, token: str) -> dict[str, Any]:
        """GET /v1/status of the composed faasd, with its admin token (`token()`)."""
        response = requests.get(self.url + "/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200, f"GET /v1/status: {response.status_code} {response.text}"
        body: dict[str, Any] = response.json()
        return body

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

    def wait_brokers(self) -> dict[str, Any]:
        """Wait until Redis answers PING and NATS greets with JetStream on the host's loopback; NATS's INFO."""

        def redis_ready() -> bool:
            try:
                return bool(redis_command("127.0.0.1", self.redis_port, "PING", timeout=2) == "PONG")
            except Exception:  # not up yet: refused, reset by the proxy, -LOADING
                return False

        def nats_ready() -> dict[str, Any] | None:
            try:
                info = nats_info("127.0.0.1", self.nats_port, timeout=2)
            except Exception:
                return None
            return info if info.get("jetstream") else None

        try:
            wait_for(redis_ready, f"redis at 127.0.0.1:{self.redis_port}", timeout=60, every=0.2)
            return wait_for(nats_ready, f"nats with JetStream at 127.0.0.1:{self.nats_port}", timeout=60, every=0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from None

    def logs(self) -> str:
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            return self.run("logs", "--no-color", "--tail", "50", timeout=60)
        return "(no logs)"


@pytest.fixture(scope="module")
def project_images() -> None:
    """The runtime, builder and broker images and faasd's own, from this clone, as `make compose`
    builds them (`faasd images build --brokers --source .`: a no-op when they are current)."""
    command = [sys.executable, "-m", "faasd", "images", "build", "--brokers", "--source", str(ROOT)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert result.returncode == 0, f"faasd images build failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def stack(project_images: None) -> Iterator[Stack]:
    engine = docker_client()
    stack = Stack(
        engine,
        compose_command(),
        redis_image=broker_image(engine, "FAASD_REDIS_IMAGE", "redis:7-bookworm", "faasd/broker-redis:latest"),
        nats_image=broker_image(engine, "FAASD_NATS_IMAGE", "nats:2.10", "faasd/broker-nats:latest"),
    )
    try:
        yield stack
    finally:
        # Whatever happened: take the stack down, then remove anything it left.
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            stack.run("down", "-v", "--remove-orphans", "--timeout", "60")
        for name in stack.leftovers():
            with contextlib.suppress(docker.errors.NotFound):
                engine.api.remove_container(name, force=True, v=True)
        for network in (stack.network, stack.apps_network):
            with contextlib.suppress(docker.errors.NotFound):
                engine.networks.get(network).remove()


def test_compose_file_is_accepted(stack: Stack) -> None:
    config = stack.run("config")
    # faasd in the host's namespace, on loopback only: out of the functions' reach (SECURITY.md).
    assert "network_mode: host" in config
    assert "NET_ADMIN" in config
    assert "FAASD_HOST: 127.0.0.1" in config
    assert f"FAASD_PORT: '{stack.port}'" in config or f'FAASD_PORT: "{stack.port}"' in config, config
    assert f"FAASD_NETWORK: {stack.network}" in config

    parsed = yaml.safe_load(config)
    services = parsed["services"]
    # No build-only services: faasd builds its runtime and builder images itself, and waits for none.
    assert set(services) == {"faasd", "redis", "nats"}, sorted(services)
    assert "depends_on" not in services["faasd"], services["faasd"]
    # The brokers: on the apps network (by its own name), published on the host's loopback only.
    assert parsed["networks"]["apps"]["name"] == stack.apps_network
    port_in = {"redis": 6379, "nats": 4222}
    for service, port, image in (
        ("redis", stack.redis_port, stack.redis_image),
        ("nats", stack.nats_port, stack.nats_image),
    ):
        assert services[service]["image"] == image
        assert list(services[service]["networks"]) == ["apps"]
        assert published(services[service]["ports"]) == [f"127.0.0.1:{port}:{port_in[service]}"]


def test_compose_defaults_are_the_official_brokers_on_faasd_apps(stack: Stack) -> None:
    """Without the test's variables: what a user's `docker compose up` runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAASD_")}
    command = [*stack.compose, "-p", stack.project, "-f", str(ROOT / "docker-compose.yml"), "config"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    parsed = yaml.safe_load(result.stdout)
    assert parsed["networks"]["apps"]["name"] == "faasd-apps"
    redis, nats = parsed["services"]["redis"], parsed["services"]["nats"]
    assert redis["image"] == "redis:7-bookworm"
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert nats["image"] == "nats:2.10"
    assert nats["command"][:1] == ["--jetstream"]
    assert published(redis["ports"]) == ["127.0.0.1:6379:6379"]
    assert published(nats["ports"]) == ["127.0.0.1:4222:4222"]
    volumes = {v.split(":")[0] if isinstance(v, str) else v["source"] for s in (redis, nats) for v in s["volumes"]}
    assert volumes == {"redis-data", "nats-data"}
    assert {"redis-data", "nats-data"} <= set(parsed["volumes"])


def test_compose_up_deploy_restart_down(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "hello.js").write_text(HELLO_JS)

    stack.run("up", "-d")
    stack.wait_healthy(f"the composed faasd at {stack.url}")
    # The composed faasd found the stock runtime and builder images that `faasd images build` made
    # current: the tags of the recipes its image carries are this clone's.
    wanted, token = stock_images(), stack.token()

    def images_ready() -> dict[str, str] | None:
        images: dict[str, str] = stack.status(token).get("images", {})
        failed = {image: images[image] for image in wanted if images.get(image, "").startswith("failed")}
        assert not failed, f"the composed faasd could not build {failed} (all: {images})"
        return images if all(images.get(image) == "ready" for image in wanted) else None

    try:
        wait_for(images_ready, f"the composed faasd's {', '.join(wanted)} ready", timeout=60, every=0.5)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{stack.logs()}") from None
    # The brokers: on the host's loopback for faasd, by their names for containers on the apps network.
    assert stack.wait_brokers()["jetstream"] is True
    assert redis_command("127.0.0.1", stack.redis_port, "SET", "survivor", "kept") == "OK"
    by_alias = probe_aliases(stack.engine, stack.apps_network, "redis", "nats")
    assert by_alias["redis"] == "+PONG\r\n", by_alias
    assert by_alias["nats"].startswith("INFO ") and '"jetstream":true' in by_alias["nats"], by_alias

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
    # Redis kept its data (the append-only file in its volume).
    stack.wait_brokers()
    assert redis_command("127.0.0.1", stack.redis_port, "GET", "survivor") == "kept"
    # The function and its route survived in the state volume.
    response = requests.get(f"{stack.url}/hello", timeout=60)
    assert (response.status_code, response.text) == (200, "Hello, world!\n"), stack.logs()
    assert "hello" in stack.faas("route", "list", cwd=tmp_path)

    stack.run("down", "-v", "--remove-orphans", "--timeout", "60")
    assert stack.leftovers() == []
    assert not stack.engine.volumes.list(filters={"label": f"com.docker.compose.project={stack.project}"})
    # Compose made the apps network: it goes with the stack.
    with pytest.raises(docker.errors.NotFound):
        stack.engine.api.inspect_network(stack.apps_network)
    # faasd made the functions' network (not compose): it stays, with nothing attached.
    left = stack.engine.api.inspect_network(stack.network)
    assert not left.get("Containers"), left
    assert not stack.healthy()
