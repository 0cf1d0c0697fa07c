"""`--cpu` and `--network` on `fn create`, `fn update` and `deploy`, and `fn get` showing them.

A small fake daemon on a loopback port records what the CLI sends and answers
the way faasd does, a 400 with faasd's message included.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from faas_cli.main import app
from faas_cli.options import function_settings

FUNCTION = {
    "name": "f",
    "environment": "python",
    "filename": "f.py",
    "entrypoint": "",
    "timeout": 60,
    "code_size": 30,
    "memory_mb": 256,
    "cpu_millis": 1000,
    "network": "default",
    "updated_at": "2026-11-28T10:00:00Z",
}


@dataclass
class FakeDaemon:
    url: str = ""
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [body or {} for verb, path, body in self.requests if verb == method and path.startswith("/v1/functions")]


def _answer(daemon: FakeDaemon, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    # faasd's own checks of these two fields (faasd/control/controller.py).
    cpu = (body or {}).get("cpu_millis", 1000)
    if not 50 <= cpu <= 64000:
        return 400, {"error": {"code": "bad_request", "message": f"cpu_millis must be between 50 and 64000, got {cpu}"}}
    network = (body or {}).get("network", "default")
    if network not in ("default", "none"):
        message = f"network must be one of default, none, got {network!r}"
        return 400, {"error": {"code": "bad_request", "message": message}}
    if path == "/v1/triggers/http" and method == "GET":
        return 200, {"items": []}
    if path == "/v1/triggers/http" and method == "POST":
        return 201, {"name": "t", **(body or {})}
    if path == "/v1/functions" and method == "POST":
        assert body is not None
        created = {**FUNCTION, **{k: v for k, v in body.items() if k != "code"}}
        daemon.functions[created["name"]] = created
        return 201, created
    name = path.removeprefix("/v1/functions/")
    if name.endswith("/code"):
        return 200, "def main():\n    return 'ok'\n"
    if name not in daemon.functions:
        return 404, {"error": {"code": "not_found", "message": f"function '{name}' not found"}}
    if method == "PATCH":
        daemon.functions[name] = {**daemon.functions[name], **{k: v for k, v in (body or {}).items() if k != "code"}}
    return 200, daemon.functions[name]


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    fake = FakeDaemon()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((self.command, self.path, body))
            status, answer = _answer(fake, self.command, self.path, body)
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "f.py"
    path.write_text("def main():\n    return 'ok'\n", encoding="utf-8")
    return path


def run(daemon: FakeDaemon, *args: str) -> Result:
    return CliRunner().invoke(app, ["--server", daemon.url, *args], env={"FAAS_URL": None, "FAAS_TOKEN": "t"})


def test_the_options_become_the_api_fields_and_are_left_out_when_not_given() -> None:
    assert function_settings(cpu="500", network="none") == {"cpu_millis": 500, "network": "none"}
    assert function_settings(cpu=" 2000 ") == {"cpu_millis": 2000}
    assert function_settings() == {}


@pytest.mark.parametrize("args", [["fn", "create"], ["function", "update"], ["deploy"]])
def test_create_update_and_deploy_offer_cpu_and_network(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "--cpu" in result.stdout
    assert "MILLICORES" in result.stdout
    assert "--network" in result.stdout
    assert "default|none" in result.stdout


def test_create_sends_cpu_and_network(daemon: FakeDaemon, source: Path) -> None:
    result = run(
        daemon, "fn", "create", "--name", "f", "--env", "python", "--code", "f.py", "--cpu", "500", "--network", "none"
    )

    assert result.exit_code == 0, result.output
    (sent,) = daemon.sent("POST")
    assert (sent["cpu_millis"], sent["network"]) == (500, "none")


def test_update_sends_only_what_was_given(daemon: FakeDaemon, source: Path) -> None:
    daemon.functions["f"] = dict(FUNCTION)

    assert run(daemon, "fn", "update", "--name", "f", "--cpu", "250").exit_code == 0
    assert run(daemon, "fn", "update", "--name", "f", "--network", "none").exit_code == 0

    assert daemon.sent("PATCH") == [{"cpu_millis": 250}, {"network": "none"}]


def test_deploy_sends_cpu_and_network_on_create_and_on_update(daemon: FakeDaemon, source: Path) -> None:
    created = run(daemon, "deploy", "f.py", "--env", "python", "--cpu", "2000", "--network", "none")
    updated = run(daemon, "deploy", "f.py", "--cpu", "100")

    assert created.exit_code == 0, created.output
    assert updated.exit_code == 0, updated.output
    assert daemon.sent("POST")[0]["cpu_millis"] == 2000
    assert daemon.sent("POST")[0]["network"] == "none"
    patched = daemon.sent("PATCH")[0]
    assert patched["cpu_millis"] == 100
    assert "network" not in patched


def test_get_shows_the_cpu_limit_and_network(daemon: FakeDaemon) -> None:
    daemon.functions["f"] = {**FUNCTION, "cpu_millis": 250, "network": "none"}

    table = run(daemon, "fn", "get", "--name", "f", "-o", "table")
    as_json = run(daemon, "fn", "get", "--name", "f", "-o", "json")

    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert (cells["CPU"], cells["NETWORK"], cells["MEMORY"]) == ("250m", "none", "256MB")
    described = json.loads(as_json.stdout)
    assert (described["cpu_millis"], described["network"]) == (250, "none")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--cpu", "10", "error: cpu_millis must be between 50 and 64000, got 10\n"),
        ("--cpu", "99999", "error: cpu_millis must be between 50 and 64000, got 99999\n"),
        ("--network", "host", "error: network must be one of default, none, got 'host'\n"),
    ],
)
def test_a_value_the_daemon_refuses_is_its_message_on_one_line(
    daemon: FakeDaemon, source: Path, option: str, value: str, message: str
) -> None:
    daemon.functions["f"] = dict(FUNCTION)
    for args in (
        ["fn", "create", "--name", "g", "--env", "python", "--code", "f.py"],
        ["fn", "update", "--name", "f"],
        ["deploy", "f.py"],
    ):
        result = run(daemon, *args, option, value)

        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == message
        assert result.stdout == ""
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("value", ["abc", "1.5", "", "500m"])
def test_a_cpu_that_is_not_a_whole_number_is_refused_before_the_daemon_is_asked(
    daemon: FakeDaemon, source: Path, value: str
) -> None:
    for args in (
        ["fn", "create", "--name", "g", "--env", "python", "--code", "f.py"],
        ["fn", "update", "--name", "f"],
        ["deploy", "f.py", "--env", "python"],
    ):
        result = run(daemon, *args, "--cpu", value)

        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == f"error: --cpu {value!r} must be a whole number of millicores (1000 = one core)\n"
    assert daemon.requests == []
