"""faasd installed from its wheel, as a user who never clones the repository would.

The sdist is built from this checkout, the wheel from the sdist (so both carry
everything), and the wheel is installed with pip into a new venv
(its dependencies from the package index). Everything then runs from that
venv, in a folder outside the checkout: `faasd` starts with an image
namespace of its own, so it finds none of its runtime images and builds them
itself (on the local Debian bases where no registry answers, as here), while
the quick start's `faas deploy hello.js --env nodejs` and calls go on; every
answer before the image is ready is a 503 with Retry-After that says why.
Then: a changed recipe makes a new tag that the next first call runs, `faasd
images prune` removes the old one, and `faasd doctor` names a stopped engine.

Needs the Docker engine (make test starts it); fails loudly without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
import requests

from faasd.engines.firewall import HostFirewall
from tests.integration.harness import docker_client, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
HELLO_JS = """module.exports = async function (context) {
    return { status: 200, body: "Hello, world!\\n" };
};
"""


@dataclass
class Installed:
    """A venv with faasd installed from the wheel, and a home outside the checkout."""

    venv: Path
    home: Path
    wheel: Path
    namespace: str

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def environ(self, **extra: str) -> dict[str, str]:
        """No FAASD_/FAAS_ variable of the test run, no checkout on the path: a user's shell."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAAS", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env["HOME"] = str(self.home)
        env["FAASD_IMAGE_NAMESPACE"] = self.namespace
        return {**env, **extra}

    def run(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=self.home, env=self.environ(**extra), capture_output=True, text=True, timeout=timeout
        )

    def site_packages(self) -> Path:
        [found] = (self.venv / "lib").glob("python3*/site-packages")
        return found

    def reference(self, name: str) -> str:
        """The tag this install's faasd gives the runtime ``name`` (its recipe's hash)."""
        code = (
            "from faasd.core.recipes import RecipeBook, runtime_recipes; "
            f"print(RecipeBook(runtime_recipes({self.namespace!r})).runtime({name!r}).reference)"
        )
        done = self.run(self.bin("python"), "-c", code)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    return docker_client()


@pytest.fixture(scope="module")
def installed(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    _run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(ROOT)])
    [sdist] = dist.glob("faasd-*.tar.gz")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(sdist)])
    [wheel] = dist.glob("faasd-*.whl")
    print(f"\nsdist {sdist.stat().st_size / 1024:.0f} KiB, wheel {wheel.stat().st_size / 1024:.0f} KiB")
    venv.EnvBuilder(with_pip=True).create(work / "venv")
    home = work / "home"
    home.mkdir()
    install = Installed(work / "venv", home, wheel, f"faasdwheel{uuid.uuid4().hex[:8]}")
    done = install.run(install.bin("pip"), "install", "--quiet", str(wheel), timeout=900)
    assert done.returncode == 0, f"pip install of the wheel failed:\n{done.stdout}\n{done.stderr}"
    try:
        yield install
    finally:
        _remove_images(engine, install.namespace)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def _remove_images(engine: docker.DockerClient, namespace: str) -> None:
    for image in engine.api.images():
        for tag in image.get("RepoTags") or []:
            if tag.startswith(namespace + "/"):
                with contextlib.suppress(docker.errors.APIError):
                    engine.api.remove_image(tag)


class Daemon:
    """`faasd` from the venv, on a free port, with a state dir and owner of its own."""

    def __init__(self, install: Installed, engine: docker.DockerClient) -> None:
        self.install = install
        self.engine = engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = install.home / "state"
        self.owner = f"wheel{uuid.uuid4().hex[:8]}"
        self.log = install.home / "faasd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.install.bin("faasd"), "--port", str(self.port), "--firewall", "on"],
                cwd=self.install.home,
                env=self.install.environ(FAASD_STATE_DIR=str(self.state), FAASD_OWNER_LABEL=self.owner),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, f"the installed faasd to answer /healthz (log: {self.log})", timeout=60)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"faasd exited with {self.proc.returncode}:\n{self.log.read_text()}")
        with contextlib.suppress(requests.ConnectionError):
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        for container in self.engine.api.containers(all=True, filters={"label": f"faasd.owner={self.owner}"}):
            with contextlib.suppress(docker.errors.APIError):
                self.engine.api.remove_container(container["Id"], force=True)
        HostFirewall(self.owner).teardown()

    def faas(self, *args: str) -> subprocess.CompletedProcess[str]:
        token = (self.state / "token").read_text().strip()
        return self.install.run(self.install.bin("faas"), *args, FAAS_URL=self.url, FAAS_TOKEN=token)

    def images_of(self, environment: str) -> set[str]:
        found = self.engine.api.containers(
            all=True, filters={"label": [f"faasd.owner={self.owner}", f"faasd.environment={environment}"]}
        )
        return {self.engine.api.inspect_container(c["Id"])["Config"]["Image"] for c in found}


@pytest.fixture
def daemon(installed: Installed, engine: docker.DockerClient) -> Iterator[Daemon]:
    running = Daemon(installed, engine)
    try:
        yield running
    finally:
        running.cleanup()


def call_until_hello(url: str) -> list[requests.Response]:
    """Call ``url`` until it says hello; every answer before must say the image is being built."""
    early: list[requests.Response] = []

    def hello() -> bool:
        response = requests.get(url, timeout=60)
        if response.status_code == 200:
            assert response.text == "Hello, world!\n"
            return True
        assert response.status_code == 503, (response.status_code, response.text)
        assert response.headers.get("Retry-After") == "5"
        assert "is being built" in response.json()["error"]["message"], response.text
        early.append(response)
        return False

    wait_for(hello, f"{url} to say hello", timeout=600, every=0.5)
    return early


def test_pip_install_then_faasd_builds_its_images_and_serves_the_quick_start(
    installed: Installed, daemon: Daemon
) -> None:
    # Nothing of the checkout: the recipes come from the installed package.
    recipes = installed.site_packages() / "faasd_runtimes"
    assert (recipes / "nodejs" / "Dockerfile").is_file() and (recipes / "python" / "server.py").is_file()
    assert (installed.site_packages() / "faasd_migrations" / "env.py").is_file()
    assert (installed.site_packages() / "faasd" / "ui" / "index.html").is_file()
    nodejs = installed.reference("nodejs")
    assert re.fullmatch(rf"{installed.namespace}/runtime-nodejs:[0-9a-f]{{12}}", nodejs)

    daemon.start()
    (installed.home / "hello.js").write_text(HELLO_JS)
    deployed = daemon.faas("deploy", "hello.js", "--env", "nodejs")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip().splitlines()[-1] == f"{daemon.url}/hello"
    call_until_hello(f"{daemon.url}/hello")

    log = daemon.log.read_text()
    assert f"building 4 image(s) faasd needs: {nodejs}" in log, log
    assert f"built {nodejs}" in log, log
    assert daemon.images_of("nodejs") == {nodejs}
    status = requests.get(
        f"{daemon.url}/v1/status", headers={"Authorization": f"Bearer {(daemon.state / 'token').read_text().strip()}"}
    ).json()
    assert status["images"][nodejs] == "ready"
    listed = installed.run(installed.bin("faasd"), "images", "list")
    assert listed.returncode == 0 and re.search(rf"^{re.escape(nodejs)}\s+yes\s", listed.stdout, re.M), listed.stdout


def test_a_changed_recipe_gets_a_new_tag_that_the_next_first_call_runs(
    installed: Installed, daemon: Daemon, engine: docker.DockerClient
) -> None:
    old = installed.reference("nodejs")
    engine.api.inspect_image(old)  # built by the first test
    # An upgrade of the runtime: its server changes.
    server = installed.site_packages() / "faasd_runtimes" / "nodejs" / "server.js"
    server.write_text(server.read_text() + "\n// faasd upgraded\n")
    new = installed.reference("nodejs")
    assert new != old and new.rpartition(":")[0] == old.rpartition(":")[0]

    daemon.start()
    (installed.home / "hello.js").write_text(HELLO_JS)
    deployed = daemon.faas("deploy", "hello.js", "--env", "nodejs")
    assert deployed.returncode == 0, deployed.stderr
    call_until_hello(f"{daemon.url}/hello")
    assert daemon.images_of("nodejs") == {new}
    labels = engine.api.inspect_image(new)["Config"]["Labels"]
    assert labels["faasd.runtime.hash"].startswith(new.rpartition(":")[2])
    latest = engine.api.inspect_image(f"{installed.namespace}/runtime-nodejs:latest")["Id"]
    assert latest == engine.api.inspect_image(new)["Id"]
    daemon.stop()

    # The old tag is no environment's and no recipe's any more: prune takes it, not the new one.
    pruned = installed.run(installed.bin("faasd"), "images", "prune", "--state-dir", str(daemon.state))
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed {old}" in pruned.stdout, pruned.stdout
    with pytest.raises(docker.errors.ImageNotFound):
        engine.api.inspect_image(old)
    engine.api.inspect_image(new)


def test_doctor_names_a_stopped_engine(installed: Installed) -> None:
    sock = "unix:///nonexistent/docker.sock"
    done = installed.run(installed.bin("faasd"), "doctor", "--port", str(free_port()), DOCKER_HOST=sock)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    [engine_line] = [line for line in out.splitlines() if line.startswith("FAIL") and "engine" in line]
    assert sock in engine_line or sock in out, out
