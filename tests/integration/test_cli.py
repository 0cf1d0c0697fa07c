"""The `faas` CLI against a live faasd on the real engine: every command, and its errors.

Each command runs as a subprocess (`python -m faas_cli`, FAAS_URL pointing at
the module's daemon). A failure must end with exit code 1 and exactly one line
``error: <message>`` on stderr, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tarfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.harness import FaasdProcess, free_port, wait_for

pytestmark = pytest.mark.docker

HELLO_JS = """module.exports = function(context, callback) {
    callback(200, "Hello, world!\\n");
}
"""
ECHO_JS = """module.exports = async (context) => {
    const r = context.request;
    return {
        status: 200,
        headers: {"content-type": "text/plain"},
        body: r.method + " " + (r.headers["x-test"] || "-") + " " + r.rawBody.toString(),
    };
};
"""
FAILING_PY = 'def main():\n    return "went wrong", 500\n'
LOG_LINE = re.compile(r"^\S+ [0-9a-f]{12} (stdout|stderr) (.*)$")


# -- helpers ------------------------------------------------------------------


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The command failed with exit 1 and one readable line that contains ``message``."""
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert message in lines[0], f"{message!r} not in {lines[0]!r}"


def table(text: str) -> list[list[str]]:
    """A CLI table as rows of cells (split on runs of 2+ spaces), header first."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def rows_by_name(text: str) -> dict[str, dict[str, str]]:
    header, *rows = table(text)
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def write(daemon: FaasdProcess, name: str, text: str) -> Path:
    path = daemon.state_dir / name
    path.write_text(text)
    return path


def faas_env(server: str) -> dict[str, str]:
    return {**os.environ, "FAAS_URL": server}


# -- deploy -------------------------------------------------------------------


def test_deploy_goes_from_a_file_to_a_url(faasd: FaasdProcess) -> None:
    write(faasd, "hello.js", HELLO_JS)

    out = ok(faasd.faas("deploy", "hello.js", "--env", "nodejs"))

    assert out.splitlines() == [
        "function 'hello' created in environment 'nodejs'",
        "route GET /hello created",
        f"{faasd.url}/hello",
    ]
    response = requests.get(f"{faasd.url}/hello", timeout=30)
    assert (response.status_code, response.text) == (200, "Hello, world!\n")


def test_deploy_again_updates_the_function_in_place(faasd: FaasdProcess) -> None:
    name = unique("redeploy")
    path = write(faasd, f"{name}.js", 'module.exports = async () => ({status: 200, body: "v1"});\n')
    ok(faasd.faas("deploy", path.name, "--env", "nodejs"))
    assert requests.get(f"{faasd.url}/{name}", timeout=30).text == "v1"

    path.write_text('module.exports = async () => ({status: 200, body: "v2"});\n')
    out = ok(faasd.faas("deploy", path.name, "--env", "nodejs"))

    assert out.splitlines() == [
        f"function '{name}' updated",
        f"route GET /{name} exists",
        f"{faasd.url}/{name}",
    ]
    # The very next call runs the new code, and there is still one route.
    assert requests.get(f"{faasd.url}/{name}", timeout=30).text == "v2"
    routes = json.loads(ok(faasd.faas("route", "list", "--function", name, "-o", "json")))
    assert [(r["method"], r["url"]) for r in routes] == [("GET", f"/{name}")]


def test_deploy_with_name_route_methods_and_timeout(faasd: FaasdProcess) -> None:
    write(faasd, "echo_fn.js", ECHO_JS)
    name = unique("api")

    out = ok(
        faasd.faas(
            "deploy", "echo_fn.js", "--env", "nodejs", "--name", name,
            "--route", f"/api/{name}", "--method", "get", "--method", "POST", "--timeout", "7",
        )
    )  # fmt: skip

    assert out.splitlines()[-1] == f"{faasd.url}/api/{name}"
    assert requests.get(f"{faasd.url}/api/{name}", timeout=30).text == "GET - "
    assert requests.post(f"{faasd.url}/api/{name}", data=b"x", timeout=30).text == "POST - x"
    function = json.loads(ok(faasd.faas("function", "get", "--name", name, "-o", "json")))
    assert (function["timeout"], function["environment"], function["filename"]) == (7, "nodejs", "echo_fn.js")


def test_deploy_name_defaults_to_the_file_stem(faasd: FaasdProcess) -> None:
    write(faasd, "Stem_Name.js", HELLO_JS)

    out = ok(faasd.faas("deploy", "Stem_Name.js", "--env", "nodejs"))

    assert out.splitlines()[0] == "function 'stem-name' created in environment 'nodejs'"
    assert out.splitlines()[-1] == f"{faasd.url}/stem-name"


def test_deploy_reports_bad_input_in_one_line(faasd: FaasdProcess) -> None:
    write(faasd, "orphan.js", HELLO_JS)
    fails(faasd.faas("deploy", "missing.js", "--env", "nodejs"), "code file 'missing.js' not found")
    fails(faasd.faas("deploy", "orphan.js", "--env", "nope"), "environment 'nope' does not exist")
    fails(faasd.faas("deploy", "orphan.js"), "function 'orphan' does not exist yet; give --env to create it")
    # A route the daemon refuses: the function made for it is not kept either.
    fails(
        faasd.faas("deploy", "orphan.js", "--env", "nodejs", "--route", "/v1/orphan"),
        "url '/v1/orphan' is reserved",
    )
    # Nothing was left half-made by the failures.
    fails(faasd.faas("function", "get", "--name", "orphan"), "function 'orphan' not found")


def test_deploy_refuses_a_route_that_calls_another_function(faasd: FaasdProcess) -> None:
    owner, intruder = unique("owner"), unique("intruder")
    write(faasd, f"{owner}.js", HELLO_JS)
    write(faasd, f"{intruder}.js", HELLO_JS)
    ok(faasd.faas("deploy", f"{owner}.js", "--env", "nodejs", "--route", f"/{owner}"))

    result = faasd.faas("deploy", f"{intruder}.js", "--env", "nodejs", "--route", f"/{owner}")

    fails(result, f"route GET /{owner} already calls function '{owner}'")
    fails(faasd.faas("function", "get", "--name", intruder), f"function '{intruder}' not found")


# -- env ----------------------------------------------------------------------


def test_env_create_list_get_update_delete(faasd: FaasdProcess) -> None:
    name = unique("pyenv")

    assert ok(
        faasd.faas("env", "create", "--name", name, "--image", "faasd/runtime-python:latest", "--poolsize", "1")
    ) == (f"environment '{name}' created\n")

    listed = rows_by_name(ok(faasd.faas("env", "list")))
    assert listed[name]["IMAGE"] == "faasd/runtime-python:latest"
    assert listed[name]["POOLSIZE"] == "1"
    assert {"nodejs", "python"} <= listed.keys()
    as_json = {e["name"]: e for e in json.loads(ok(faasd.faas("env", "list", "-o", "json")))}
    assert as_json[name]["poolsize"] == 1

    got = table(ok(faasd.faas("env", "get", "--name", name)))
    assert got[0][:3] == ["NAME", "IMAGE", "POOLSIZE"]
    assert got[1][:3] == [name, "faasd/runtime-python:latest", "1"]
    assert json.loads(ok(faasd.faas("env", "get", "--name", name, "-o", "json")))["name"] == name

    assert ok(faasd.faas("env", "update", "--name", name, "--poolsize", "0")) == f"environment '{name}' updated\n"
    assert json.loads(ok(faasd.faas("env", "get", "--name", name, "-o", "json")))["poolsize"] == 0

    assert ok(faasd.faas("env", "delete", "--name", name)) == f"environment '{name}' deleted\n"
    fails(faasd.faas("env", "get", "--name", name), f"environment '{name}' not found")
    wait_for(lambda: not faasd.containers(environment=name), f"the containers of {name} to be removed")


def test_env_errors(faasd: FaasdProcess) -> None:
    fails(faasd.faas("env", "get", "--name", "no-such-env"), "environment 'no-such-env' not found")
    fails(faasd.faas("env", "delete", "--name", "no-such-env"), "environment 'no-such-env'")
    fails(faasd.faas("env", "update", "--name", "no-such-env", "--poolsize", "1"), "environment 'no-such-env'")
    fails(
        faasd.faas("env", "create", "--name", "nodejs", "--image", "faasd/runtime-nodejs:latest"),
        "environment 'nodejs' exists already",
    )
    fails(faasd.faas("env", "create", "--name", "imageless"), "image")
    fails(faasd.faas("env", "update", "--name", "nodejs"), "nothing to update")


# -- function -----------------------------------------------------------------


def test_function_create_get_list_update_delete(faasd: FaasdProcess) -> None:
    name = unique("fn")
    write(faasd, "v1.js", HELLO_JS)
    write(faasd, "v2.js", ECHO_JS)

    out = ok(faasd.faas("function", "create", "--name", name, "--env", "nodejs", "--code", "v1.js"))
    assert out == f"function '{name}' created\n"

    # `get` prints the code exactly; -o json adds it to the metadata.
    assert ok(faasd.faas("function", "get", "--name", name)) == HELLO_JS
    meta = json.loads(ok(faasd.faas("function", "get", "--name", name, "-o", "json")))
    assert (meta["name"], meta["environment"], meta["code"]) == (name, "nodejs", HELLO_JS)
    got = rows_by_name(ok(faasd.faas("function", "get", "--name", name, "-o", "table")))
    assert got[name]["ENV"] == "nodejs"

    listed = rows_by_name(ok(faasd.faas("function", "list")))
    assert (listed[name]["ENV"], listed[name]["FILENAME"], listed[name]["TIMEOUT"]) == ("nodejs", "v1.js", "60s")
    assert name in {f["name"] for f in json.loads(ok(faasd.faas("function", "list", "-o", "json")))}

    out = ok(faasd.faas("function", "update", "--name", name, "--code", "v2.js", "--timeout", "9"))
    assert out == f"function '{name}' updated\n"
    assert ok(faasd.faas("function", "get", "--name", name)) == ECHO_JS
    assert json.loads(ok(faasd.faas("function", "get", "--name", name, "-o", "json")))["timeout"] == 9

    assert ok(faasd.faas("function", "delete", "--name", name)) == f"function '{name}' deleted\n"
    fails(faasd.faas("function", "get", "--name", name), f"function '{name}' not found")


def test_function_errors(faasd: FaasdProcess) -> None:
    write(faasd, "ok.js", HELLO_JS)
    fails(faasd.faas("function", "get", "--name", "ghost"), "function 'ghost' not found")
    fails(faasd.faas("function", "delete", "--name", "ghost"), "function 'ghost' not found")
    fails(faasd.faas("function", "update", "--name", "ghost", "--timeout", "3"), "function 'ghost' not found")
    fails(faasd.faas("function", "logs", "--name", "ghost"), "function 'ghost' not found")
    fails(
        faasd.faas("function", "create", "--name", "x", "--env", "nodejs", "--code", "nothere.js"),
        "code file 'nothere.js' not found",
    )
    fails(
        faasd.faas("function", "create", "--name", "x", "--env", "nope", "--code", "ok.js"),
        "environment 'nope' does not exist",
    )
    fails(faasd.faas("function", "update", "--name", "x"), "nothing to update")


def test_function_delete_with_routes_needs_force(faasd: FaasdProcess) -> None:
    name = unique("routed")
    write(faasd, f"{name}.js", HELLO_JS)
    ok(faasd.faas("deploy", f"{name}.js", "--env", "nodejs"))

    fails(faasd.faas("function", "delete", "--name", name), "--force")
    deleted = ok(faasd.faas("function", "delete", "--name", name, "--force")).splitlines()
    # The daemon says what went with the function: the route deploy made.
    assert deleted[0] == f"function '{name}' deleted"
    assert len(deleted) == 2 and deleted[1].startswith(f"route '{name}-") and deleted[1].endswith("' deleted")
    assert json.loads(ok(faasd.faas("route", "list", "--function", name, "-o", "json"))) == []


def test_function_test_sends_method_body_and_headers(faasd: FaasdProcess) -> None:
    name = unique("echo")
    write(faasd, "echo.js", ECHO_JS)
    ok(faasd.faas("fn", "create", "--name", name, "--env", "nodejs", "--code", "echo.js"))

    out = ok(faasd.faas("function", "test", "--name", name, "-X", "PUT", "-b", "payload", "-H", "X-Test: yes"))

    assert out == "HTTP 200 OK\nPUT yes payload\n"
    assert ok(faasd.faas("fn", "test", "--name", name)) == "HTTP 200 OK\nGET - \n"


def test_function_test_reports_an_error_status(faasd: FaasdProcess) -> None:
    name = unique("failing")
    write(faasd, "failing.py", FAILING_PY)
    ok(faasd.faas("function", "create", "--name", name, "--env", "python", "--code", "failing.py"))

    result = faasd.faas("function", "test", "--name", name)

    assert result.stdout == "HTTP 500 Internal Server Error\nwent wrong\n"
    fails(result, f"function '{name}' answered HTTP 500 Internal Server Error")
    fails(
        faasd.faas("function", "test", "--name", "ghost"),
        "function 'ghost' answered HTTP 404 Not Found: function 'ghost' not found",
    )
    usage = faasd.faas("function", "test", "--name", name, "-H", "bad")
    assert usage.returncode == 2  # a usage error, as typer reports them; no call was made
    assert "'bad' is not a header" in usage.stderr


def test_function_logs_show_what_the_containers_printed(faasd: FaasdProcess) -> None:
    name = unique("chatty")
    marker = uuid.uuid4().hex
    write(
        faasd,
        "chatty.js",
        "module.exports = async (context) => {\n"
        f'    console.log("out {marker} " + context.request.method);\n'
        f'    console.error("err {marker}");\n'
        '    return {status: 200, body: "ok"};\n'
        "};\n",
    )
    ok(faasd.faas("function", "create", "--name", name, "--env", "nodejs", "--code", "chatty.js"))
    ok(faasd.faas("function", "test", "--name", name))
    ok(faasd.faas("function", "test", "--name", name, "-X", "POST"))

    def logged() -> list[str]:
        lines = ok(faasd.faas("function", "logs", "--name", name)).splitlines()
        mine = [line for line in lines if marker in line]
        return mine if len(mine) == 4 else []

    lines = wait_for(logged, f"four log lines of {name}", timeout=30, every=0.5)
    parsed = [LOG_LINE.match(line) for line in lines]
    assert all(parsed), lines
    # Each line a call printed starts with that call's request id (runtimes/README.md).
    texts = [(m.group(1), re.fullmatch(r"\[(\S+)\] (.*)", m.group(2))) for m in parsed if m]
    assert all(t for _, t in texts), lines
    assert {(stream, t.group(2)) for stream, t in texts if t} == {
        ("stdout", f"out {marker} GET"),
        ("stdout", f"out {marker} POST"),
        ("stderr", f"err {marker}"),
    }
    assert len({t.group(1) for _, t in texts if t}) == 2  # two calls, two ids
    tail = ok(faasd.faas("fn", "logs", "--name", name, "--tail", "1")).splitlines()
    assert len(tail) == 1
    assert tail[0] == ok(faasd.faas("fn", "logs", "--name", name)).splitlines()[-1]


class Follower:
    """`faas function logs -f` in the background, its stdout lines in a queue."""

    def __init__(self, daemon: FaasdProcess, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faas_cli", "function", "logs", "--name", name, "-f"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**faas_env(daemon.url), "FAAS_TOKEN": daemon.token},
            # A shell running the suite in the background ignores SIGINT, and the
            # child would inherit that: give it Ctrl-C back, as a terminal would.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def has(self, text: str) -> bool:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return any(text in line for line in self.seen)

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, stderr = self.proc.communicate(timeout=15)
        return self.proc.returncode, stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@pytest.fixture
def follow(faasd: FaasdProcess) -> Iterator[Any]:
    started: list[Follower] = []

    def start(name: str) -> Follower:
        follower = Follower(faasd, name)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        follower.kill()


def test_function_logs_follow_streams_new_lines_until_ctrl_c(faasd: FaasdProcess, follow: Any) -> None:
    name = unique("followed")
    marker = uuid.uuid4().hex
    code = f'def main(context):\n    print("live {marker} " + context.request.method, flush=True)\n    return "ok"\n'
    write(faasd, "followed.py", code)
    ok(faasd.faas("function", "create", "--name", name, "--env", "python", "--code", "followed.py"))
    ok(faasd.faas("function", "test", "--name", name))

    follower: Follower = follow(name)
    # The kept line shows first: the follow is connected.
    wait_for(lambda: follower.has(f"live {marker} GET"), "the kept line in `logs -f`", timeout=30, every=0.2)
    # A call made now shows up while the command is still running.
    ok(faasd.faas("function", "test", "--name", name, "-X", "POST"))
    wait_for(lambda: follower.has(f"live {marker} POST"), "the new line in `logs -f`", timeout=30, every=0.2)
    assert follower.proc.poll() is None

    # Ctrl-C ends it quietly, with success.
    assert follower.interrupt() == (0, "")


# -- route --------------------------------------------------------------------


def test_route_create_list_get_update_delete(faasd: FaasdProcess) -> None:
    function, trigger = unique("target"), unique("trig")
    write(faasd, "target.js", HELLO_JS)
    ok(faasd.faas("function", "create", "--name", function, "--env", "nodejs", "--code", "target.js"))

    out = ok(
        faasd.faas("route", "create", "--name", trigger, "--method", "post", "--url", f"/r/{trigger}",
                   "--function", function)
    )  # fmt: skip
    assert out == f"route '{trigger}' created: POST /r/{trigger} -> {function}\n"
    assert requests.post(f"{faasd.url}/r/{trigger}", timeout=30).text == "Hello, world!\n"

    listed = rows_by_name(ok(faasd.faas("route", "list")))
    assert (listed[trigger]["METHOD"], listed[trigger]["URL"], listed[trigger]["FUNCTION"]) == (
        "POST",
        f"/r/{trigger}",
        function,
    )
    only = json.loads(ok(faasd.faas("route", "list", "--function", function, "-o", "json")))
    assert [r["name"] for r in only] == [trigger]
    got = rows_by_name(ok(faasd.faas("httptrigger", "get", "--name", trigger)))
    assert got[trigger]["URL"] == f"/r/{trigger}"
    assert json.loads(ok(faasd.faas("route", "get", "--name", trigger, "-o", "json")))["method"] == "POST"

    out = ok(faasd.faas("route", "update", "--name", trigger, "--url", f"/moved/{trigger}", "--method", "get"))
    assert out == f"route '{trigger}' updated\n"
    assert requests.get(f"{faasd.url}/moved/{trigger}", timeout=30).text == "Hello, world!\n"
    assert requests.post(f"{faasd.url}/r/{trigger}", timeout=30).status_code == 404

    assert ok(faasd.faas("httptrigger", "delete", "--name", trigger)) == f"route '{trigger}' deleted\n"
    fails(faasd.faas("route", "get", "--name", trigger), f"route '{trigger}' not found")
    assert requests.get(f"{faasd.url}/moved/{trigger}", timeout=30).status_code == 404


def test_route_errors(faasd: FaasdProcess) -> None:
    function = unique("dup")
    write(faasd, "dup.js", HELLO_JS)
    ok(faasd.faas("function", "create", "--name", function, "--env", "nodejs", "--code", "dup.js"))
    ok(faasd.faas("route", "create", "--url", f"/{function}", "--function", function))

    fails(
        faasd.faas("route", "create", "--url", f"/{function}", "--function", function),
        f"route GET /{function} exists already",
    )
    fails(
        faasd.faas("route", "create", "--url", "/ghostly", "--function", "ghost"),
        "function 'ghost' does not exist",
    )
    fails(faasd.faas("route", "get", "--name", "ghost-route"), "route 'ghost-route' not found")
    fails(faasd.faas("route", "delete", "--name", "ghost-route"), "route 'ghost-route' not found")
    fails(faasd.faas("route", "update", "--name", "ghost-route", "--url", "/x"), "route 'ghost-route' not found")
    fails(faasd.faas("route", "update", "--name", "ghost-route"), "nothing to update")


# -- status -------------------------------------------------------------------


def test_status_shows_health_pools_and_instances(faasd: FaasdProcess) -> None:
    name = unique("warm")
    write(faasd, "warm.js", HELLO_JS)
    ok(faasd.faas("deploy", "warm.js", "--env", "nodejs", "--name", name))
    ok(faasd.faas("function", "test", "--name", name))

    out = ok(faasd.faas("status"))

    assert out.splitlines()[0] == f"faasd 0.1.0 at {faasd.url}: ok"
    envs, functions = out.split("\n\n")[1:3]
    pools = rows_by_name(envs)
    assert list(table(envs)[0]) == ["ENVIRONMENT", "IMAGE", "POOLSIZE", "READY", "SPECIALIZED"]
    assert pools["nodejs"]["POOLSIZE"] == "2"
    assert int(pools["nodejs"]["SPECIALIZED"]) >= 1
    assert rows_by_name(functions)[name]["INSTANCES"] == "1"

    report = json.loads(ok(faasd.faas("status", "-o", "json")))
    assert (report["server"], report["health"]["status"], report["version"]) == (faasd.url, "ok", "0.1.0")
    nodejs = next(e for e in report["environments"] if e["name"] == "nodejs")
    assert {"poolsize", "pool_ready", "specialized"} <= nodejs.keys()
    assert next(f for f in report["functions"] if f["name"] == name)["instances"] == 1


# -- the daemon's address -----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["env", "list"],
        ["function", "get", "--name", "x"],
        ["route", "list", "-o", "json"],
        ["function", "logs", "--name", "x", "-f"],
        ["function", "test", "--name", "x"],
    ],
)
def test_an_unreachable_daemon_names_the_address_and_how_to_start_faasd(args: list[str], tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "faas_cli", *args],
        capture_output=True,
        text=True,
        env=faas_env(server),
        timeout=60,
        cwd=tmp_path,
    )
    fails(result, f"cannot reach faasd at {server} (connection refused); start it with 'make run' or 'faasd'")


def test_deploy_to_an_unreachable_daemon_given_with_server(faasd: FaasdProcess) -> None:
    write(faasd, "far.js", HELLO_JS)
    server = f"http://127.0.0.1:{free_port()}"
    # --server wins over FAAS_URL, which the harness points at the live daemon.
    fails(faasd.faas("--server", server, "deploy", "far.js", "--env", "nodejs"), f"cannot reach faasd at {server}")
    fails(faasd.faas("function", "get", "--name", "far"), "function 'far' not found")


def test_shell_completion_is_offered(faasd: FaasdProcess) -> None:
    assert "--install-completion" in ok(faasd.faas("--help"))
    assert "_faas_completion" in ok(faasd.faas("--show-completion", "bash"))
    # What bash gets when it completes `faas fn <TAB>`.
    result = subprocess.run(
        [sys.executable, "-m", "faas_cli"],
        capture_output=True,
        text=True,
        env={**faas_env(faasd.url), "_FAAS_COMPLETE": "complete_bash", "COMP_WORDS": "faas fn ", "COMP_CWORD": "2"},
        timeout=60,
    )
    assert {"create", "get", "list", "update", "delete", "logs", "test"} <= set(ok(result).split())


# -- variables, secrets, limits and scaling -------------------------------------------

SETTINGS_PY = """import os


def main():
    return {"greeting": os.environ.get("GREETING"), "key": os.environ.get("API_KEY")}
"""


def test_function_variables_secrets_and_limits_from_the_cli(
    faasd: FaasdProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("settings")
    write(faasd, "settings.py", SETTINGS_PY)
    monkeypatch.setenv("API_KEY", "from-my-shell")
    ok(
        faasd.faas(
            "fn", "create", "--name", name, "--env", "python", "--code", "settings.py",
            "--setenv", "GREETING=hi", "--secret", "API_KEY",
            "--memory", "128", "--concurrency", "1", "--max-instances", "2", "--queue-timeout", "0",
        )
    )  # fmt: skip
    assert requests.get(f"{faasd.url}/function/{name}", timeout=30).json() == {"greeting": "hi", "key": "from-my-shell"}
    shown = ok(faasd.faas("fn", "get", "--name", name, "-o", "json"))
    assert "from-my-shell" not in shown
    described = json.loads(shown)
    assert described["env"] == {"GREETING": "hi"}
    assert described["secrets"] == ["API_KEY"]
    assert (described["memory_mb"], described["concurrency"], described["max_instances"]) == (128, 1, 2)
    assert described["queue_timeout"] == 0

    ok(faasd.faas("fn", "update", "--name", name, "--secret", "API_KEY=rotated", "--min-instances", "1"))
    assert requests.get(f"{faasd.url}/function/{name}", timeout=30).json()["key"] == "rotated"
    assert json.loads(ok(faasd.faas("fn", "get", "--name", name, "-o", "json")))["min_instances"] == 1
    wait_for(lambda: faasd.instances(name) >= 1, "the warm instance min_instances asks for")

    fails(faasd.faas("fn", "update", "--name", name, "--setenv", "NOVALUE"), "--setenv 'NOVALUE' must be NAME=VALUE")
    monkeypatch.delenv("API_KEY")
    fails(faasd.faas("fn", "update", "--name", name, "--secret", "API_KEY"), "has no value")
    fails(faasd.faas("fn", "update", "--name", name, "--min-instances", "3"), "min_instances (3) cannot be above")


def test_cpu_limit_and_network_from_the_cli(faasd: FaasdProcess) -> None:
    name = unique("limits")
    write(faasd, "limits.py", SETTINGS_PY)
    out = ok(faasd.faas("deploy", "limits.py", "--env", "python", "--name", name, "--cpu", "500", "--network", "none"))
    assert f"function '{name}' created" in out
    assert requests.get(f"{faasd.url}/{name}", timeout=30).status_code == 200
    described = json.loads(ok(faasd.faas("fn", "get", "--name", name, "-o", "json")))
    assert (described["cpu_millis"], described["network"]) == (500, "none")
    shown = rows_by_name(ok(faasd.faas("fn", "get", "--name", name, "-o", "table")))[name]
    assert (shown["CPU"], shown["NETWORK"], shown["MEMORY"]) == ("500m", "none", "256MB")

    ok(faasd.faas("fn", "update", "--name", name, "--cpu", "2000", "--network", "default"))
    described = json.loads(ok(faasd.faas("fn", "get", "--name", name, "-o", "json")))
    assert (described["cpu_millis"], described["network"]) == (2000, "default")

    # A function made without them has the defaults: one core, the default network.
    plain = unique("plain")
    ok(faasd.faas("fn", "create", "--name", plain, "--env", "python", "--code", "limits.py"))
    described = json.loads(ok(faasd.faas("fn", "get", "--name", plain, "-o", "json")))
    assert (described["cpu_millis"], described["network"]) == (1000, "default")

    fails(faasd.faas("fn", "update", "--name", name, "--cpu", "10"), "cpu_millis must be between 50 and 64000, got 10")
    fails(faasd.faas("fn", "update", "--name", name, "--network", "host"), "network must be one of default, none")
    fails(faasd.faas("fn", "update", "--name", name, "--cpu", "lots"), "--cpu 'lots' must be a whole number")
    fails(
        faasd.faas("fn", "create", "--name", unique("bad"), "--env", "python", "--code", "limits.py", "--cpu", "0"),
        "cpu_millis must be between 50 and 64000, got 0",
    )
    assert json.loads(ok(faasd.faas("fn", "get", "--name", name, "-o", "json")))["cpu_millis"] == 2000


# -- packages (from a ready deployment: no build needed) ------------------------------


def _zip(path: Path, files: dict[str, str]) -> Path:
    """A zip as `zip -r` makes it: an entry for each folder too."""
    with zipfile.ZipFile(path, "w") as zf:
        for folder in sorted({name.rsplit("/", 1)[0] + "/" for name in files if "/" in name}):
            zf.writestr(folder, b"")
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def test_package_from_a_deployment_create_info_list_get_delete(faasd: FaasdProcess) -> None:
    name = unique("site")
    _zip(faasd.state_dir / f"{name}.zip", {f"{name}/main.py": "def main():\n    return 'hi'\n"})

    out = ok(faasd.faas("package", "create", "--deploy", f"{name}.zip", "--env", "python"))
    assert out == f"package '{name}' created (status: succeeded)\n"

    info = ok(faasd.faas("pkg", "info", "--name", name)).splitlines()
    assert info == [f"Name:        {name}", "Environment: python", "Status:      succeeded", "Build Logs:"]
    listed = rows_by_name(ok(faasd.faas("pkg", "list")))
    assert (listed[name]["ENV"], listed[name]["STATUS"], listed[name]["SOURCE"]) == ("python", "succeeded", "-")

    out = ok(faasd.faas("pkg", "get", "--name", name, "--output", "got.tar"))
    assert out.startswith(f"package '{name}': deployment archive written to got.tar (")
    with tarfile.open(faasd.state_dir / "got.tar") as tar:
        # The top directory of the zip is stripped; a deployment sits under deploy/.
        assert tar.getnames() == ["deploy", "deploy/main.py"]

    ok(faasd.faas("fn", "create", "--name", name, "--pkg", name, "--entrypoint", "main.main"))
    function = json.loads(ok(faasd.faas("fn", "get", "--name", name, "-o", "json")))
    assert (function["package"], function["environment"], function["code_size"]) == (name, "python", 0)
    fails(faasd.faas("pkg", "delete", "--name", name), f"is used by function(s) {name}")

    assert ok(faasd.faas("pkg", "delete", "--name", name, "--force")) == f"package '{name}' deleted\n"
    fails(faasd.faas("pkg", "info", "--name", name), f"package '{name}' not found")
    fails(faasd.faas("fn", "get", "--name", name), f"function '{name}' not found")


def test_package_archive_leading_out_of_itself_is_one_error_line(faasd: FaasdProcess) -> None:
    name = unique("evil")
    with tarfile.open(faasd.state_dir / f"{name}.tar", "w") as tar:
        for member in ("ok.py", "../escaped.py"):
            info = tarfile.TarInfo(member)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))

    fails(
        faasd.faas("pkg", "create", "--deploy", f"{name}.tar", "--env", "python"),
        "the deployment archive: archive member '../escaped.py' leaves the package",
    )
    fails(faasd.faas("pkg", "info", "--name", name), f"package '{name}' not found")
    assert not (faasd.state_dir.parent / "escaped.py").exists()
    # The upload was not kept anywhere either.
    assert [p.name for p in (faasd.state_dir / "tmp").glob("upload-*")] == []


def test_package_errors(faasd: FaasdProcess) -> None:
    fails(faasd.faas("pkg", "info", "--name", "ghost"), "package 'ghost' not found")
    fails(faasd.faas("pkg", "create", "--env", "python"), "give --src")
    fails(
        faasd.faas("pkg", "create", "--deploy", "nothere.zip", "--env", "python"), "deployment 'nothere.zip' not found"
    )
    _zip(faasd.state_dir / "plain.zip", {"main.py": "x = 1\n"})
    fails(faasd.faas("pkg", "create", "--deploy", "plain.zip", "--env", "nope"), "environment 'nope' does not exist")
    fails(faasd.faas("fn", "create", "--name", "x", "--pkg", "ghost"), "package 'ghost' does not exist")
