"""`fission` against a live faasd on the real engine: Fission v1.22's own command lines, unchanged.

Each command runs as a subprocess of the `fission` console script (or, where
it is not installed, the same entry point through ``python -c``), with the
daemon named the way Fission's CLI is told where it is: FISSION_URL (or
FISSION_ROUTER), and no FAAS_URL. The token is the local daemon's, found
through FAASD_STATE_DIR as a user's own faasd's would be.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

from tests.integration.harness import FaasdProcess, wait_for

pytestmark = pytest.mark.docker

HELLO_PY = "def main():\n    return 'Hello from faasd'\n\n\ndef other():\n    return 'the other one'\n"
ECHO_PY = """def main(context):
    r = context.request
    print("echo-marker", r.method, flush=True)
    return f"{r.method} {r.headers.get('x-test', '-')} {r.query.get('k', '-')} {r.text}"
"""
STAMPED_PY = """import os


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "stamp.txt")) as f:
        return "stamp " + f.read().strip()
"""
BUILD_SH = 'echo "building with the fission build command"\necho "made by build.sh" > "$DEPLOY_PKG/stamp.txt"\n'
RECORD = re.compile(r"^\S+ [0-9a-f]{12} (stdout|stderr) (.*)$")


def fission_program() -> list[str]:
    script = Path(sys.executable).parent / "fission"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from faas_cli.main import fission; fission()"]


def fission(daemon: FaasdProcess, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("FAAS_URL", "FAAS_TOKEN", "FISSION_ROUTER")}
    environ.update({"FISSION_URL": daemon.url, "FAASD_STATE_DIR": str(daemon.state_dir), **env})
    return subprocess.run(
        [*fission_program(), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=240,
        cwd=cwd or daemon.state_dir,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def row_of(text: str, name: str) -> dict[str, str]:
    header, *rows = table(text)
    found = [dict(zip(header, row, strict=True)) for row in rows if row[0] == name]
    assert found, f"{name} not listed in:\n{text}"
    return found[0]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def write(daemon: FaasdProcess, name: str, text: str) -> Path:
    path = daemon.state_dir / name
    path.write_text(text)
    return path


def meta(daemon: FaasdProcess, name: str) -> dict[str, object]:
    return dict(json.loads(ok(fission(daemon, "fn", "getmeta", "--name", name, "-o", "json"))))


def built(daemon: FaasdProcess, package: str) -> list[str]:
    """`fission pkg info` once the build is over (it must have succeeded)."""

    def finished() -> list[str] | None:
        lines = ok(fission(daemon, "pkg", "info", "--name", package)).splitlines()
        return lines if lines[2].split()[-1] in ("succeeded", "failed") else None

    lines = wait_for(finished, f"package {package} to be built", timeout=180, every=0.5)
    assert lines[2] == "Status:      succeeded", "\n".join(lines)
    return lines


# -- the program and where the daemon is ------------------------------------------------------


def test_version_and_help(faasd: FaasdProcess) -> None:
    assert "Usage: fission" in ok(fission(faasd))
    out = ok(fission(faasd, "version"))
    server = requests.get(f"{faasd.url}/healthz", timeout=10).json()["version"]
    assert out.splitlines()[-2:] == ["server:", f"  faasd: {server}"]


def test_fission_router_as_fission_writes_it(faasd: FaasdProcess) -> None:
    result = fission(faasd, "env", "list", FISSION_URL="", FISSION_ROUTER=faasd.url.removeprefix("http://"))
    assert "python" in [row[0] for row in table(ok(result))[1:]]


# -- environments ---------------------------------------------------------------------------------


def test_env_create_list_delete_with_kubernetes_flags_explained(faasd: FaasdProcess) -> None:
    name = unique("pyenv")

    result = fission(faasd, "env", "create", "--name", name, "--image", "faasd/runtime-python:latest",
                     "--poolsize", "0", "--version", "3", "--mincpu", "40", "--maxmemory", "128",
                     "--graceperiod", "10", "-n", "default")  # fmt: skip

    assert ok(result) == f"environment '{name}' created\n"
    explained = [line.split(" ignored:")[0] for line in result.stderr.splitlines()]
    assert explained == ["note: --mincpu", "note: --maxmemory", "note: --graceperiod", "note: --version",
                         "note: --namespace"]  # fmt: skip
    listed = ok(fission(faasd, "env", "list"))
    assert table(listed)[0] == ["NAME", "IMAGE", "BUILDER_IMAGE", "POOLSIZE"]
    assert row_of(listed, name)["POOLSIZE"] == "0"
    assert ok(fission(faasd, "env", "delete", "--name", name)) == f"environment '{name}' deleted\n"
    assert ok(fission(faasd, "env", "delete", "--name", name, "--ignorenotfound")) == ""


# -- functions ------------------------------------------------------------------------------------


def test_fn_create_and_update_with_fissions_flags(faasd: FaasdProcess) -> None:
    name = unique("hello")
    write(faasd, "hello.py", HELLO_PY)

    ok(fission(faasd, "fn", "create", "--name", name, "--env", "python", "--code", "hello.py",
               "--fntimeout", "30", "--minscale", "1", "--maxscale", "4", "--maxmemory", "192",
               "--maxcpu", "500", "--entrypoint", "hello.main"))  # fmt: skip

    got = meta(faasd, name)
    assert (got["timeout"], got["min_instances"], got["max_instances"]) == (30, 1, 4)
    assert (got["memory_mb"], got["cpu_millis"], got["entrypoint"], got["executor"]) == (192, 500, "hello.main",
                                                                                       "poolmgr")  # fmt: skip
    assert ok(fission(faasd, "fn", "test", "--name", name)) == "Hello from faasd"
    listed = row_of(ok(fission(faasd, "fn", "list")), name)
    assert (listed["ENV"], listed["EXECUTORTYPE"], listed["MINSCALE"], listed["MAXSCALE"]) == ("python", "poolmgr",
                                                                                               "1", "4")  # fmt: skip
    assert (listed["MAXCPU"], listed["MAXMEMORY"]) == ("500m", "192Mi")

    for flag, value, field, expected in [
        ("--fntimeout", "20", "timeout", 20),
        ("--minscale", "0", "min_instances", 0),
        ("--maxscale", "2", "max_instances", 2),
        ("--maxmemory", "256", "memory_mb", 256),
        ("--maxcpu", "1000", "cpu_millis", 1000),
        ("--entrypoint", "hello.other", "entrypoint", "hello.other"),
        ("--executortype", "newdeploy", "executor", "newdeploy"),
    ]:
        assert ok(fission(faasd, "fn", "update", "--name", name, flag, value)) == f"function '{name}' updated\n"
        assert meta(faasd, name)[field] == expected, flag
    # The last update's entrypoint and executor: a container started for the function runs hello.other.
    assert ok(fission(faasd, "fn", "test", "--name", name)) == "the other one"
    ok(fission(faasd, "fn", "delete", "--name", name))


def test_fn_test_with_method_body_header_and_query_then_logs(faasd: FaasdProcess) -> None:
    name = unique("echo")
    write(faasd, "echo.py", ECHO_PY)
    ok(fission(faasd, "fn", "create", "--name", name, "--env", "python", "--code", "echo.py"))

    out = ok(fission(faasd, "fn", "test", "--name", name, "--method", "POST", "--body", "payload",
                     "-H", "X-Test: yes", "--query", "k=v"))  # fmt: skip

    assert out == "POST yes v payload"

    def marked(*flags: str) -> list[str] | None:
        lines = ok(fission(faasd, "fn", "logs", "--name", name, *flags)).splitlines()
        found = [line for line in lines if "echo-marker POST" in line]
        return found or None

    plain = wait_for(marked, "the call's log line", timeout=30, every=0.3)
    # Fission's way: what the function wrote (the runtime's [request id] first), no record fields.
    assert all(not RECORD.match(line) and line.endswith("echo-marker POST") for line in plain), plain
    detailed = marked("--detail")
    assert detailed and all(RECORD.match(line) for line in detailed), detailed
    assert RECORD.match(detailed[0]).group(1) == "stdout"  # type: ignore[union-attr]
    assert marked("--recordcount", "50", "--reverse") == plain[::-1]
    ok(fission(faasd, "fn", "delete", "--name", name))


def test_a_failing_fn_test_is_one_error_line(faasd: FaasdProcess) -> None:
    name = unique("fail")
    write(faasd, "fail.py", "def main():\n    return 'went wrong', 500\n")
    ok(fission(faasd, "fn", "create", "--name", name, "--env", "python", "--code", "fail.py"))

    result = fission(faasd, "fn", "test", "--name", name)

    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: function '{name}' answered HTTP 500 Internal Server Error: went wrong (")
    ok(fission(faasd, "fn", "delete", "--name", name))


# -- routes, timers -----------------------------------------------------------------------------


def test_route_create_list_and_fn_delete_takes_it_along(faasd: FaasdProcess) -> None:
    name = unique("routed")
    write(faasd, "hello.py", HELLO_PY)
    ok(fission(faasd, "fn", "create", "--name", name, "--env", "python", "--code", "hello.py"))

    out = ok(fission(faasd, "httptrigger", "create", "--name", name, "--method", "GET", "--url", f"/{name}",
                     "--function", name, "--createingress"))  # fmt: skip

    assert out.startswith(f"route '{name}' created")
    assert requests.get(f"{faasd.url}/{name}", timeout=30).text == "Hello from faasd"
    listed = row_of(ok(fission(faasd, "route", "list")), name)
    assert (listed["METHOD"], listed["URL"], listed["FUNCTION"]) == ("GET", f"/{name}", name)
    # As in Fission, deleting the function needs no --force.
    ok(fission(faasd, "fn", "delete", "--name", name))
    assert name not in [row[0] for row in table(ok(fission(faasd, "route", "list")))[1:]]


def test_a_canary_route_splits_the_calls_by_weight(faasd: FaasdProcess) -> None:
    old, new = unique("old"), unique("new")
    write(faasd, "old.py", "def main():\n    return 'old'\n")
    write(faasd, "new.py", "def main():\n    return 'new'\n")
    ok(fission(faasd, "fn", "create", "--name", old, "--env", "python", "--code", "old.py"))
    ok(fission(faasd, "fn", "create", "--name", new, "--env", "python", "--code", "new.py"))
    url = f"/{unique('canary')}"

    out = ok(fission(faasd, "route", "create", "--name", old, "--url", url, "--function", old, "--weight", "100",
                     "--function", new, "--weight", "0"))  # fmt: skip

    assert out == f"route '{old}' created: GET {url} -> {old} (100%), {new} (0%)\n"
    assert {requests.get(faasd.url + url, timeout=30).text for _ in range(5)} == {"old"}
    ok(fission(faasd, "route", "update", "--name", old, "--function", old, "--weight", "0", "--function", new,
               "--weight", "100"))  # fmt: skip
    assert {requests.get(faasd.url + url, timeout=30).text for _ in range(5)} == {"new"}
    assert row_of(ok(fission(faasd, "route", "list")), old)["FUNCTION"] == f"{old}:0,{new}:100"
    ok(fission(faasd, "route", "delete", "--name", old))
    for function in (old, new):
        ok(fission(faasd, "fn", "delete", "--name", function))


def test_spec_writes_files_that_spec_apply_makes(faasd: FaasdProcess) -> None:
    project = faasd.state_dir / unique("project")
    project.mkdir()
    (project / "hello.py").write_text(HELLO_PY)
    name = unique("specced")
    ok(fission(faasd, "spec", "init", cwd=project))

    dry = ok(fission(faasd, "fn", "create", "--name", name, "--env", "python", "--code", "hello.py",
                     "--fntimeout", "25", "--dry", cwd=project))  # fmt: skip
    written = ok(fission(faasd, "fn", "create", "--name", name, "--env", "python", "--code", "hello.py",
                         "--fntimeout", "25", "--url", f"/{name}", "--spec", cwd=project))  # fmt: skip

    assert "kind: Function" in dry and "functionTimeout: 25" in dry
    assert written.splitlines() == [f"spec file specs/function-{name}.yaml written",
                                    f"spec file specs/route-{name}.yaml written"]  # fmt: skip
    assert name not in ok(fission(faasd, "fn", "list"))
    ok(fission(faasd, "spec", "apply", cwd=project))
    assert meta(faasd, name)["timeout"] == 25
    assert requests.get(f"{faasd.url}/{name}", timeout=30).text == "Hello from faasd"
    ok(fission(faasd, "spec", "destroy", cwd=project))


def test_timer_create_list_delete(faasd: FaasdProcess) -> None:
    name, function = unique("tick"), unique("ticked")
    write(faasd, "hello.py", HELLO_PY)
    ok(fission(faasd, "fn", "create", "--name", function, "--env", "python", "--code", "hello.py"))

    ok(fission(faasd, "tt", "create", "--name", name, "--function", function, "--cron", "@every 1h"))

    listed = ok(fission(faasd, "timetrigger", "list"))
    assert table(listed)[0] == ["NAME", "CRON", "FUNCTION_NAME", "METHOD", "SUBPATH"]
    assert row_of(listed, name)["FUNCTION_NAME"] == function
    assert ok(fission(faasd, "tt", "delete", "--name", name)) == f"timer '{name}' deleted\n"
    ok(fission(faasd, "fn", "delete", "--name", function))


# -- packages -----------------------------------------------------------------------------------


def source_zip(folder: Path) -> Path:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("main.py", STAMPED_PY)
        archive.writestr("build.sh", BUILD_SH)
    path = folder / "stamped-src.zip"
    path.write_bytes(data.getvalue())
    return path


def test_pkg_create_from_a_source_archive_with_a_build_command(faasd: FaasdProcess) -> None:
    archive = source_zip(faasd.state_dir)

    out = ok(fission(faasd, "package", "create", "--src", archive.name, "--env", "python",
                     "--buildcmd", "sh ./build.sh"))  # fmt: skip

    # What Fission's scripts do: the package's name is the second word, quoted.
    package = out.split()[1].strip("'")
    assert re.fullmatch(r"stamped-src-[0-9a-f]{4}", package), out
    lines = built(faasd, package)
    assert lines[:4] == [f"Name:        {package}", "Environment: python", "Status:      succeeded", "Build Logs:"]
    assert "building with the fission build command" in lines[4:]
    assert row_of(ok(fission(faasd, "pkg", "list")), package)["BUILD_STATUS"] == "succeeded"

    function = unique("stamped")
    ok(fission(faasd, "fn", "create", "--name", function, "--pkg", package, "--entrypoint", "main.main"))
    assert ok(fission(faasd, "fn", "test", "--name", function)) == "stamp made by build.sh"
    ok(fission(faasd, "fn", "delete", "--name", function))
    assert ok(fission(faasd, "pkg", "delete", "--name", package)) == f"package '{package}' deleted\n"


def test_fn_create_from_a_source_makes_its_own_package(faasd: FaasdProcess) -> None:
    folder = faasd.state_dir / unique("srcdir")
    folder.mkdir()
    (folder / "main.py").write_text(STAMPED_PY)
    (folder / "build.sh").write_text(BUILD_SH)
    function = unique("own")

    out = ok(fission(faasd, "fn", "create", "--name", function, "--env", "python", "--src", folder.name,
                     "--buildcmd", "sh ./build.sh", "--entrypoint", "main.main", "--maxscale", "2"))  # fmt: skip

    package = out.split()[1].strip("'")
    assert package.startswith(f"{function}-")
    assert out.splitlines()[-1] == f"function '{function}' created"
    built(faasd, package)
    assert ok(fission(faasd, "fn", "test", "--name", function)) == "stamp made by build.sh"
    assert meta(faasd, function)["package"] == package
    ok(fission(faasd, "fn", "delete", "--name", function))
    ok(fission(faasd, "pkg", "delete", "--name", package))


# -- the flags that mean nothing without Kubernetes ------------------------------------------------


def test_kubernetes_flags_are_explained_once_and_prefix_refused(faasd: FaasdProcess) -> None:
    result = fission(faasd, "--namespace", "default", "fn", "list", "-n", "default", "--all-namespaces")

    ok(result)
    assert result.stderr.splitlines() == [
        "note: --namespace ignored: faasd has one namespace: a name is unique on the daemon",
        "note: --all-namespaces ignored: faasd has one namespace: a name is unique on the daemon",
    ]
    write(faasd, "hello.py", HELLO_PY)
    refused = fission(faasd, "fn", "create", "--name", "prefixed", "--env", "python", "--code", "hello.py",
                      "--prefix", "/api")  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: --prefix is not supported: ")
    assert "prefixed" not in ok(fission(faasd, "fn", "list"))
