"""The builder images (runtimes/<lang>/builder, runtimes/README.md "Builders").

Each build runs as faasd runs one: uid 1000, read-only root, HOME on a tmpfs
/tmp, no capabilities, the source at $SRC_PKG=/build/src and an empty
$DEPLOY_PKG=/build/deploy, the host's CA bundle at /etc/faasd/ca.crt, and
`/bin/sh -c build` in $SRC_PKG. Here with NO network: the dependencies are
local (a wheel, an npm tarball, both made by the test), so these tests pass
without any registry. The deployment each build makes (plus the source files,
copied over it as faasd does) is then served by the runtime image.

Needs a running Docker engine and the images from `faasd images build`
(make images); when either is missing the tests FAIL (they do not skip).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .packages import make_npm_tgz, make_wheel, write_tree
from .support import BUILDERS, DEPLOY_DIR, LANGS, docker_client

pytestmark = pytest.mark.docker

LABEL = {"faasd.test": "builders"}
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_BUILDER = "/etc/faasd/ca.crt"
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile")
BUILD_TIMEOUT = 180


@dataclass
class Build:
    exit_code: int
    log: str
    src: Path
    deploy: Path

    def deployed(self) -> set[str]:
        return {str(p.relative_to(self.deploy)) for p in self.deploy.rglob("*") if p.is_file()}


@pytest.fixture
def run_build(tmp_path: Path) -> Iterator[Callable[..., Build]]:
    """``run_build(lang, files, command="build")``: one build of the source tree ``files``."""
    client = docker_client(BUILDERS.values())
    started: list = []

    def run(lang: str, files: dict[str, str], command: str = "build", prepare=None) -> Build:
        root = tmp_path / f"build-{len(started)}"
        src, deploy = root / "src", root / "deploy"
        write_tree(src, files)
        if prepare is not None:
            prepare(src)
        deploy.mkdir()
        # The builder's uid 1000 writes both (faasd gives it /build/src and /build/deploy).
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        volumes = {str(root): {"bind": "/build", "mode": "rw"}}
        environment = {"SRC_PKG": "/build/src", "DEPLOY_PKG": "/build/deploy", "HOME": "/tmp"}
        if HOST_CA.is_file():
            volumes[str(HOST_CA)] = {"bind": CA_IN_BUILDER, "mode": "ro"}
            environment.update(dict.fromkeys(CA_VARIABLES, CA_IN_BUILDER))
        c = client.containers.run(
            BUILDERS[lang],
            command=["/bin/sh", "-c", command],
            working_dir="/build/src",
            detach=True,
            user="1000:1000",
            read_only=True,
            tmpfs={"/tmp": "rw,size=256m,mode=1777"},
            network_mode="none",
            environment=environment,
            volumes=volumes,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="512m",
            pids_limit=256,
            labels=LABEL,
        )
        started.append(c)
        result = c.wait(timeout=BUILD_TIMEOUT)
        log = c.logs(stdout=True, stderr=True).decode(errors="replace")
        return Build(int(result["StatusCode"]), log, src, deploy)

    yield run
    for c in started:
        with contextlib.suppress(Exception):
            c.remove(force=True)


def faasd_merge(build: Build) -> Path:
    """What faasd does with a successful build: the source files copied over $DEPLOY_PKG."""
    shutil.copytree(build.src, build.deploy, dirs_exist_ok=True)
    return build.deploy


# ---------------------------------------------------------------- Python


def python_source(src: Path) -> None:
    """Two local wheels: one found through --find-links, one named by its path."""
    make_wheel(src / "wheels", "greet", "1.0", {"greet/__init__.py": "def hello(x):\n    return 'hello ' + x\n"})
    make_wheel(src / "vendor", "shout", "2.0", {"shout.py": "def shout(x):\n    return x.upper() + '!'\n"})


PYTHON_SOURCE = {
    "requirements.txt": "--no-index\n--find-links ./wheels\ngreet==1.0\n./vendor/shout-2.0-py3-none-any.whl\n",
    "main.py": (
        "import greet\nimport shout\n\n\n"
        "def main():\n    return shout.shout(greet.hello(request.args.get('name', 'x')))\n"
    ),
}


def test_python_builder_installs_local_wheels(run_build, start_container):
    build = run_build("python", PYTHON_SOURCE, prepare=python_source)
    assert build.exit_code == 0, build.log
    deployed = build.deployed()
    # Only the dependencies: the source files are faasd's to add.
    assert {"greet/__init__.py", "shout.py", "greet-1.0.dist-info/METADATA"} <= deployed, deployed
    assert not deployed & {"main.py", "requirements.txt"}, deployed
    assert not any(p.startswith(("wheels/", "vendor/")) for p in deployed), deployed
    assert "pip install" in build.log and "requirements.txt" in build.log
    assert "Successfully installed greet-1.0 shout-2.0" in build.log
    # Bytecode that stays valid in faasd's archives (mtime 0): hash-checked .pyc (PEP 552 flags 0b11).
    pycs = sorted(build.deploy.glob("greet/__pycache__/__init__.cpython-*.pyc"))
    assert pycs, deployed
    assert int.from_bytes(pycs[0].read_bytes()[4:8], "little") == 0b11
    # The deployment works in the runtime image.
    rt = start_container("python", deploy=faasd_merge(build))
    assert rt.specialize_deploy(DEPLOY_DIR, "main.main").status == 200
    r = rt.get("/?name=faasd")
    assert (r.status, r.text) == (200, "HELLO FAASD!"), r


def test_python_builder_failure(run_build):
    build = run_build("python", {"requirements.txt": "--no-index\n./wheels/missing-1.0-py3-none-any.whl\n"})
    assert build.exit_code != 0
    assert "missing-1.0-py3-none-any.whl" in build.log
    assert "pip install failed" in build.log


# ---------------------------------------------------------------- Node.js


def node_source(src: Path) -> None:
    """A dependency and a devDependency as local tarballs (what npm pack makes)."""
    make_npm_tgz(
        src / "vendor" / "dep-1.0.0.tgz",
        {
            "package.json": json.dumps({"name": "dep", "version": "1.0.0", "main": "index.js"}),
            "index.js": "exports.greet = (x) => 'dep greets ' + x;\n",
        },
    )
    make_npm_tgz(
        src / "vendor" / "devdep-1.0.0.tgz",
        {"package.json": json.dumps({"name": "devdep", "version": "1.0.0"}), "index.js": "\n"},
    )


NODE_SOURCE = {
    "package.json": json.dumps(
        {
            "name": "fn",
            "version": "0.0.1",
            "dependencies": {"dep": "file:./vendor/dep-1.0.0.tgz"},
            "devDependencies": {"devdep": "file:./vendor/devdep-1.0.0.tgz"},
        }
    ),
    "index.js": "const dep = require('dep');\nmodule.exports = (c) => dep.greet(c.request.query.name || 'you');\n",
}


def test_node_builder_installs_local_tarball(run_build, start_container):
    build = run_build("nodejs", NODE_SOURCE, prepare=node_source)
    assert build.exit_code == 0, build.log
    deployed = build.deployed()
    assert {"node_modules/dep/index.js", "node_modules/dep/package.json"} <= deployed, deployed
    assert not any(p.startswith("node_modules/devdep/") for p in deployed), "devDependencies are not installed"
    assert not deployed & {"index.js", "package.json"}, deployed
    assert not (build.src / "node_modules").exists(), "node_modules is moved, not copied"
    assert "npm install --omit=dev" in build.log
    rt = start_container("nodejs", deploy=faasd_merge(build))
    assert rt.specialize_deploy(DEPLOY_DIR, "").status == 200
    r = rt.get("/?name=faasd")
    assert (r.status, r.text) == (200, "dep greets faasd"), r


def test_node_builder_failure(run_build):
    source = {"package.json": json.dumps({"name": "fn", "dependencies": {"dep": "file:./vendor/missing.tgz"}})}
    build = run_build("nodejs", source)
    assert build.exit_code != 0
    assert "npm install failed" in build.log


# ---------------------------------------------------------------- both


@pytest.mark.parametrize("lang", LANGS)
def test_builder_without_dependencies(run_build, lang):
    manifest = {"python": "requirements.txt", "nodejs": "package.json"}[lang]
    build = run_build(lang, {"main.py" if lang == "python" else "index.js": "# code only\n"})
    assert build.exit_code == 0, build.log
    assert f"no {manifest}" in build.log
    assert build.deployed() == set()


@pytest.mark.parametrize("lang", LANGS)
def test_builder_runs_a_custom_command(run_build, lang):
    # faasd runs `/bin/sh -c "<buildcmd>"` in $SRC_PKG: `build` is on the PATH for it to call.
    build = run_build(lang, {"hello.txt": "hi\n"}, command='build && cp hello.txt "$DEPLOY_PKG/" && id -u')
    assert build.exit_code == 0, build.log
    assert build.deployed() == {"hello.txt"}
    assert build.log.strip().endswith("1000")


@pytest.mark.parametrize("lang", LANGS)
def test_builder_image_contract(lang):
    client = docker_client([BUILDERS[lang]])
    config = client.images.get(BUILDERS[lang]).attrs["Config"]
    assert config["User"] == "1000:1000"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert (env["SRC_PKG"], env["DEPLOY_PKG"], env["HOME"]) == ("/build/src", "/build/deploy", "/tmp")
    labels = config["Labels"] or {}
    assert labels.get("faasd.builder.hash") and labels.get("faasd.builder.base"), labels
