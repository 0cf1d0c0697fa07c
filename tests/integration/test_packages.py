"""Functions with dependencies: packages built by the environments' builders, on the real engine.

Most builds here are offline (a wheel or an npm tarball made by the test and
shipped in the source), so the suite does not hang on a registry; two tests
reach PyPI and the npm registry the way the host does (through its proxy and
CA bundle), as a user's first deploy would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.harness import FaasdProcess, wait_for
from tests.runtimes.packages import make_npm_tgz, make_wheel

GREET_INIT = 'def greet(name):\n    return f"Hello, {name}, from greet {VERSION}"\n\nVERSION = "1.0"\n'


def make_greet_wheel(folder: Path) -> Path:
    return make_wheel(folder, "greet", "1.0", {"greet/__init__.py": GREET_INIT})


def make_shout_tarball(folder: Path) -> Path:
    files = {
        "package.json": json.dumps({"name": "shout", "version": "1.0.0", "main": "index.js"}),
        "index.js": "module.exports = (s) => String(s).toUpperCase() + '!';\n",
    }
    return make_npm_tgz(folder / "shout-1.0.0.tgz", files)


def python_source(folder: Path, greeting: str = "hi") -> Path:
    make_greet_wheel(folder / "wheels")
    (folder / "requirements.txt").write_text("--no-index\n--find-links ./wheels\ngreet==1.0\n")
    (folder / "main.py").write_text(
        "from greet import greet\n\n\ndef main(context):\n"
        f"    return greet(context.request.query.get('name', 'you')) + ' {greeting}'\n"
    )
    return folder


def node_source(folder: Path) -> Path:
    make_shout_tarball(folder / "vendor")
    (folder / "package.json").write_text(
        json.dumps({"name": "loud", "version": "1.0.0", "dependencies": {"shout": "file:./vendor/shout-1.0.0.tgz"}})
    )
    (folder / "index.js").write_text(
        "const shout = require('shout');\n"
        "module.exports = async (context) => shout(context.request.query.name || 'hey');\n"
    )
    return folder


def deploy(daemon: FaasdProcess, source: Path, *extra: str) -> Any:
    return daemon.faas("deploy", str(source), *extra)


def package(daemon: FaasdProcess, name: str) -> dict[str, Any]:
    return dict(daemon.ok("GET", f"/v1/packages/{name}"))


@pytest.fixture(scope="module")
def builder_daemon(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    daemon = FaasdProcess(tmp_path_factory.mktemp("packages"), engine, default_poolsize=1, build_timeout=120)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


def test_a_python_function_with_a_dependency_from_a_local_wheel(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    source = python_source(tmp_path / "greeter")
    done = deploy(builder_daemon, source, "--env", "python")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "building package 'greeter'" in done.stdout
    url = done.stdout.strip().splitlines()[-1]
    answer = requests.get(url, params={"name": "Ada"}, timeout=60)
    assert (answer.status_code, answer.text) == (200, "Hello, Ada, from greet 1.0 hi")
    info = package(builder_daemon, "greeter")
    assert info["status"] == "succeeded"
    assert "cache miss" in info["build_log"]
    assert "Successfully installed greet-1.0" in info["build_log"]

    # The code alone changes: the dependencies are reused, no builder runs.
    (source / "main.py").write_text(
        "from greet import greet\n\n\ndef main(context):\n    return greet('again') + ' v2'\n"
    )
    again = deploy(builder_daemon, source, "--env", "python")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "cache hit" in package(builder_daemon, "greeter")["build_log"]
    wait_for(
        lambda: requests.get(url, timeout=60).text == "Hello, again, from greet 1.0 v2",
        "the new code to answer",
        timeout=60,
    )


def test_a_node_function_with_a_dependency_from_a_local_tarball(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    source = node_source(tmp_path / "loud")
    done = deploy(builder_daemon, source, "--env", "nodejs")
    assert done.returncode == 0, done.stdout + done.stderr
    url = done.stdout.strip().splitlines()[-1]
    answer = requests.get(url, params={"name": "quiet"}, timeout=60)
    assert (answer.status_code, answer.text) == (200, "QUIET!")
    assert package(builder_daemon, "loud")["status"] == "succeeded"


def test_an_unresolvable_requirement_fails_with_pips_own_words(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "requirements.txt").write_text("--no-index\nno-such-package-anywhere==9.9\n")
    (source / "main.py").write_text("def main():\n    return 'never'\n")
    done = deploy(builder_daemon, source, "--env", "python")
    assert done.returncode == 1
    assert "error: package 'broken' failed to build" in done.stderr
    assert "No matching distribution found for no-such-package-anywhere" in done.stdout + done.stderr
    info = package(builder_daemon, "broken")
    assert info["status"] == "failed"
    assert "No matching distribution found" in info["build_log"]
    assert builder_daemon.containers(build="broken") == []


def test_a_function_whose_package_failed_answers_503(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    source = tmp_path / "doomed"
    source.mkdir()
    (source / "requirements.txt").write_text("--no-index\nmissing-dependency==1\n")
    (source / "main.py").write_text("def main():\n    return 'never'\n")
    deploy(builder_daemon, source, "--env", "python")
    wait_for(lambda: package(builder_daemon, "doomed")["status"] == "failed", "the build to fail", timeout=120)
    builder_daemon.ok("POST", "/v1/functions", json={"name": "doomed-fn", "package": "doomed"})
    answer = requests.get(f"{builder_daemon.url}/function/doomed-fn", timeout=60)
    assert answer.status_code == 503, answer.text
    assert "doomed" in answer.json()["error"]["message"]
    assert "failed" in answer.json()["error"]["message"]


def test_a_missing_entrypoint_is_a_500_naming_it(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    source = python_source(tmp_path / "pointy")
    done = deploy(builder_daemon, source, "--env", "python", "--entrypoint", "main.nowhere")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = requests.get(done.stdout.strip().splitlines()[-1], timeout=60)
    assert answer.status_code == 500
    assert "nowhere" in answer.json()["error"]["message"]


def test_a_build_past_its_time_fails_and_leaves_no_builder(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    daemon = start_faasd(default_poolsize=0, build_timeout=3)
    source = tmp_path / "slow"
    source.mkdir()
    (source / "main.py").write_text("def main():\n    return 'slow'\n")
    created = daemon.faas("package", "create", "--src", str(source), "--env", "python", "--buildcmd", "sleep 60")
    assert created.returncode == 0, created.stdout + created.stderr
    wait_for(lambda: package(daemon, "slow")["status"] == "failed", "the build to time out", timeout=60)
    assert "timed out after 3 s" in package(daemon, "slow")["error"]
    wait_for(lambda: daemon.containers(build="slow") == [], "the builder container to go")


def test_a_restart_during_a_build_builds_again_and_leaves_nothing_behind(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = start_faasd(state_dir=state, default_poolsize=0, build_timeout=120)
    source = tmp_path / "interrupted"
    source.mkdir()
    (source / "main.py").write_text("def main():\n    return 'x'\n")
    created = first.faas("package", "create", "--src", str(source), "--env", "python", "--buildcmd", "sleep 60")
    assert created.returncode == 0, created.stdout + created.stderr
    old = wait_for(lambda: first.containers(build="interrupted"), "the builder container to start")
    assert package(first, "interrupted")["status"] == "running"
    first.kill9()
    second = start_faasd(state_dir=state, default_poolsize=0, build_timeout=4)
    # The killed faasd's builder is gone; the build is submitted again, in a new builder...
    new = wait_for(lambda: second.containers(build="interrupted"), "the build to start again", timeout=60)
    assert {c.id for c in new}.isdisjoint({c.id for c in old})
    # ... and ends (here: past the new faasd's time limit), never stuck at running.
    wait_for(lambda: package(second, "interrupted")["status"] == "failed", "the build to end", timeout=90)
    assert "timed out after 4 s" in package(second, "interrupted")["error"]
    wait_for(lambda: second.containers(build="interrupted") == [], "no builder container left")


def test_a_deployment_given_as_it_is_reaches_warm_instances(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    first = tmp_path / "d1"
    first.mkdir()
    (first / "main.py").write_text("def main():\n    return 'deployment one'\n")
    made = builder_daemon.faas("pkg", "create", "--name", "given", "--deploy", str(first), "--env", "python")
    assert made.returncode == 0, made.stdout + made.stderr
    assert package(builder_daemon, "given")["status"] == "succeeded"
    assert builder_daemon.faas("fn", "create", "--name", "given-fn", "--pkg", "given").returncode == 0
    url = f"{builder_daemon.url}/function/given-fn"
    assert requests.get(url, timeout=60).text == "deployment one"  # an instance is warm now
    second = tmp_path / "d2"
    second.mkdir()
    (second / "main.py").write_text("def main():\n    return 'deployment two'\n")
    updated = builder_daemon.faas("pkg", "update", "--name", "given", "--deploy", str(second))
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert requests.get(url, timeout=60).text == "deployment two"


def test_a_failed_rebuild_keeps_the_last_good_deployment_serving(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    source = python_source(tmp_path / "steady", greeting="good")
    assert deploy(builder_daemon, source, "--env", "python").returncode == 0
    url = f"{builder_daemon.url}/function/steady"
    assert requests.get(url, timeout=60).text.endswith(" good")
    (source / "requirements.txt").write_text("--no-index\nno-such-thing==1\n")
    assert deploy(builder_daemon, source, "--env", "python").returncode == 1
    assert package(builder_daemon, "steady")["status"] == "failed"
    # A typo in a redeploy does not take the function down, cold starts included.
    builder_daemon.ok("PATCH", "/v1/functions/steady", json={"timeout": 30})  # new revision: a new instance
    assert requests.get(url, timeout=60).text.endswith(" good")


@pytest.mark.parametrize(
    ("env", "files", "expected"),
    [
        (
            "python",
            {
                "requirements.txt": "six==1.16.0\n",
                "main.py": "import six\n\n\ndef main():\n    return six.__version__\n",
            },
            "1.16.0",
        ),
        (
            "nodejs",
            {
                "package.json": json.dumps({"name": "num", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}),
                "index.js": (
                    "const isNumber = require('is-number');\nmodule.exports = async () => String(isNumber('42'));\n"
                ),
            },
            "true",
        ),
    ],
)
def test_a_dependency_from_the_public_registry(
    builder_daemon: FaasdProcess, tmp_path: Path, env: str, files: dict[str, str], expected: str
) -> None:
    source = tmp_path / f"registry-{env}"
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)
    done = deploy(builder_daemon, source, "--env", env)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = requests.get(done.stdout.strip().splitlines()[-1], timeout=60)
    assert (answer.status_code, answer.text) == (200, expected)


def test_a_new_build_of_a_package_reaches_its_functions(builder_daemon: FaasdProcess, tmp_path: Path) -> None:
    """`pkg update` with new source: once built, the function answers with it, without being touched."""
    source = python_source(tmp_path / "v1", greeting="one")
    created = builder_daemon.faas("pkg", "create", "--name", "shared", "--src", str(source), "--env", "python")
    assert created.returncode == 0, created.stdout + created.stderr
    wait_for(lambda: package(builder_daemon, "shared")["status"] == "succeeded", "the first build", timeout=120)
    made = builder_daemon.faas("fn", "create", "--name", "user", "--pkg", "shared", "--entrypoint", "main.main")
    assert made.returncode == 0, made.stdout + made.stderr
    url = f"{builder_daemon.url}/function/user"
    assert requests.get(url, timeout=60).text == "Hello, you, from greet 1.0 one"
    revision = builder_daemon.ok("GET", "/v1/functions/user")["revision"]

    newer = python_source(tmp_path / "v2", greeting="two")
    updated = builder_daemon.faas("pkg", "update", "--name", "shared", "--src", str(newer))
    assert updated.returncode == 0, updated.stdout + updated.stderr
    wait_for(lambda: requests.get(url, timeout=60).text.endswith(" two"), "the new build to answer", timeout=120)
    assert builder_daemon.ok("GET", "/v1/functions/user")["revision"] == revision + 1
