"""`fission`: the same program as `faas`, taking Fission v1.22's command lines (docs/fission.md).

A small stateful fake daemon on a loopback port keeps what the CLI creates and
records every request (JSON bodies, multipart uploads parsed back into fields
and files), so each test checks what a Fission-spelled command line sends, and
what it prints: Fission's flags that do what faasd does are the request's
fields; those that mean nothing without Kubernetes are one ``note:`` line on
stderr, once a run.
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import io
import json
import re
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner, Result

from faas_cli import fission as fission_cli
from faas_cli.commands.function import wait_of
from faas_cli.main import app, server_from_fission
from faas_cli.options import label_pairs

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = (
    "/v1/environments",
    "/v1/functions",
    "/v1/triggers/http",
    "/v1/triggers/mq",
    "/v1/timers",
    "/v1/watches",
    "/v1/packages",
)
LOG_LINES = [
    "2026-11-30T10:00:00.000Z 0123456789ab stdout hello from one",
    "2026-11-30T10:00:01.000Z fedcba987654 stderr warning: two",
    "2026-11-30T10:00:02.000Z 0123456789ab stdout three  spaced",
]
INSTANCES = [{"id": "0123456789ab", "state": "idle", "inflight": 0, "calls": 3, "age_seconds": 61.2,
              "idle_seconds": 4.0}]  # fmt: skip


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class FakeDaemon:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {c: {} for c in COLLECTIONS})
    script: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        self.script[(method, path)] = (status, body)

    def requests(self, method: str | None = None, prefix: str = "") -> list[Sent]:
        return [s for s in self.sent if method in (None, s.method) and s.path.startswith(prefix)]

    def bodies(self, method: str, path: str) -> list[Any]:
        return [s.body for s in self.sent if s.method == method and s.path == path]

    def add(self, collection: str, **item: Any) -> None:
        self.store[collection][item["name"]] = item


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": "not_found" if status == 404 else "bad_request", "message": message}}


def _parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename() is not None:
            files[name] = data
        else:
            fields[name] = data.decode()
    return fields, files


def _answer(daemon: FakeDaemon, sent: Sent) -> tuple[int, Any]:
    method, path = sent.method, sent.path
    if (method, path) in daemon.script:
        return daemon.script[(method, path)]
    if path == "/healthz":
        return 200, {"status": "ok", "version": "9.9.9"}
    if path.startswith("/function/"):
        body = sent.body if isinstance(sent.body, str) else json.dumps(sent.body) if sent.body else ""
        return 200, f"{method} {path}?{urllib.parse.urlencode(sent.query)} {body}"
    if path.endswith("/logs"):
        return 200, "".join(line + "\n" for line in LOG_LINES)
    if path.endswith("/instances"):
        return 200, {"instances": INSTANCES}
    collection = next((c for c in COLLECTIONS if path == c or path.startswith(c + "/")), None)
    if collection is None:
        return _error(404, f"no admin API endpoint {method} {path}")
    items = daemon.store[collection]
    if path == collection:
        if method == "GET":
            listed = list(items.values())
            if "function" in sent.query:
                listed = [i for i in listed if i.get("function") == sent.query["function"]]
            return 200, {"items": listed}
        made = dict(sent.fields if collection == "/v1/packages" else sent.body)
        made.setdefault("name", f"{made.get('function', 'x')}-{len(daemon.sent):08x}")
        if collection == "/v1/packages":
            made["status"] = "pending" if "source" in sent.files else "succeeded"
            made["updated_at"] = "2026-11-30T10:00:00Z"
        if made["name"] in items:
            return _error(409, f"'{made['name']}' exists already")
        items[made["name"]] = made
        return 201, made
    name, _, rest = path[len(collection) + 1 :].partition("/")
    if rest:
        return _error(404, f"no admin API endpoint {method} {path}")
    if name not in items:
        return _error(404, f"'{name}' not found")
    if method == "GET":
        return 200, items[name]
    if method == "PATCH":
        items[name].update(sent.fields if collection == "/v1/packages" else sent.body)
        return 200, items[name]
    if method == "DELETE":
        del items[name]
        return 204, None
    return _error(404, f"no {method} {path} in the fake")


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    fake = FakeDaemon()
    fake.add("/v1/environments", name="python", image="faasd/runtime-python:latest", poolsize=2, builder="b")
    fake.add("/v1/functions", name="f", environment="python", package="", executor="newdeploy", min_instances=1,
             max_instances=3, cpu_millis=500, memory_mb=128, secrets=["TOKEN"])  # fmt: skip
    fake.add("/v1/packages", name="p", environment="python", status="succeeded", updated_at="2026-11-30T09:00:00Z")
    fake.add("/v1/triggers/http", name="r", method="GET", url="/r", function="f")
    fake.add("/v1/triggers/mq", name="m", function="f", mqtype="redis", topic="t")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            sent = Sent(self.command, parts.path, query, headers)
            kind = headers.get("content-type", "")
            if kind.startswith("multipart/form-data"):
                sent.fields, sent.files = _parse_form(kind, raw)
            elif raw:
                try:
                    sent.body = json.loads(raw)
                except ValueError:
                    sent.body = raw.decode()
            fake.sent.append(sent)
            status, answer = _answer(fake, sent)
            data = (
                b"" if answer is None else answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            if parts.path.startswith("/function/"):
                self.send_header("X-Request-Id", "req-1")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True, scope="module")
def built_once() -> Iterator[None]:
    """The command tree is built once for the module's many runs, not once a run (0.1 s each)."""
    command = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _app: command)
        yield


CLEAN = {"FAAS_URL": None, "FAAS_TOKEN": "t", "FISSION_URL": None, "FISSION_ROUTER": None, "COLUMNS": "200"}


def fission(daemon: FakeDaemon, *args: str, **env: str | None) -> Result:
    """``fission ARGS`` as a Fission user types it: the daemon named by FISSION_URL."""
    return CliRunner().invoke(app, list(args), prog_name="fission", env={**CLEAN, "FISSION_URL": daemon.url, **env})


def faas(daemon: FakeDaemon, *args: str) -> Result:
    return CliRunner().invoke(app, ["--server", daemon.url, *args], prog_name="faas", env=CLEAN)


def notes(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


@pytest.fixture
def code(tmp_path: Path) -> Path:
    path = tmp_path / "hello.py"
    path.write_text("def main():\n    return 'hi'\n")
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "main.py").write_text("def main():\n    return 'hi'\n")
    (root / "requirements.txt").write_text("six\n")
    return root


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return sorted(archive.namelist())


# -- the program ----------------------------------------------------------------------------


def test_fission_alone_shows_its_help() -> None:
    result = CliRunner().invoke(app, [], prog_name="fission", env=CLEAN)

    assert "Usage: fission [OPTIONS] COMMAND" in result.stdout
    for group in ("function", "package", "env", "route", "timer", "mqtrigger", "watch"):
        assert group in result.stdout


def test_the_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'fission = "faas_cli.main:fission"' in text


def test_version_prints_the_client_and_the_servers(daemon: FakeDaemon) -> None:
    result = fission(daemon, "version")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "client:" and lines[1].startswith("  faas: ")
    assert lines[2:] == ["server:", "  faasd: 9.9.9"]


def test_version_without_a_daemon_still_prints_the_client() -> None:
    result = CliRunner().invoke(
        app, ["version"], prog_name="fission", env={**CLEAN, "FISSION_URL": "http://127.0.0.1:9"}
    )

    assert result.exit_code == 0
    assert result.stdout.startswith("client:\n  faas: ")
    assert "  faasd: unknown (cannot reach faasd at http://127.0.0.1:9" in result.stdout


# -- where the daemon is ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "server"),
    [
        ({"FISSION_URL": "http://10.0.0.1:31313"}, "http://10.0.0.1:31313"),
        ({"FISSION_ROUTER": "10.0.0.2:31314"}, "http://10.0.0.2:31314"),
        ({"FISSION_URL": "http://a:1", "FISSION_ROUTER": "b:2"}, "http://a:1"),
        ({"FISSION_URL": " ", "FISSION_ROUTER": "https://r.example"}, "https://r.example"),
        ({}, None),
    ],
)
def test_fission_url_then_fission_router_name_the_daemon(
    env: dict[str, str], server: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("FISSION_URL", "FISSION_ROUTER"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert server_from_fission() == server


def test_the_daemon_at_fission_router_is_used(daemon: FakeDaemon) -> None:
    host = daemon.url.removeprefix("http://")

    result = fission(daemon, "env", "list", FISSION_URL=None, FISSION_ROUTER=host)

    assert result.exit_code == 0, result.output
    assert daemon.requests("GET", "/v1/environments")


def test_faas_url_wins_over_fission_url(daemon: FakeDaemon) -> None:
    result = fission(daemon, "env", "list", FAAS_URL=daemon.url, FISSION_URL="http://127.0.0.1:9")

    assert result.exit_code == 0, result.output
    assert daemon.requests("GET", "/v1/environments")


def test_the_server_option_wins_over_fission_url(daemon: FakeDaemon) -> None:
    result = fission(daemon, "--server", daemon.url, "env", "list", FISSION_URL="http://127.0.0.1:9")

    assert result.exit_code == 0, result.output


def test_faas_never_reads_fissions_variables(daemon: FakeDaemon) -> None:
    # Only `fission` does: `faas` would send its token to whatever FISSION_URL names.
    result = CliRunner().invoke(app, ["env", "list"], prog_name="faas", env={**CLEAN, "FISSION_URL": daemon.url})

    assert result.exit_code == 1
    assert "127.0.0.1:8080" in result.output
    assert daemon.sent == []


# -- fn create / update: the flags that do what faasd does --------------------------------------


def test_fn_create_maps_fissions_flags_to_the_functions_fields(daemon: FakeDaemon, code: Path) -> None:
    result = fission(daemon, "fn", "create", "--name", "hello", "--env", "python", "--code", str(code),
                     "--entrypoint", "hello.main", "--fntimeout", "30", "--minscale", "1", "--maxscale", "4",
                     "--maxmemory", "512", "--maxcpu", "1500", "--executortype", "newdeploy",
                     "--idletimeout", "300", "--requestsperpod", "5", "--labels", "app=shop,tier=web")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout == "function 'hello' created\n"
    assert result.stderr == ""
    (body,) = daemon.bodies("POST", "/v1/functions")
    assert body == {
        "name": "hello",
        "environment": "python",
        "code": code.read_text(),
        "filename": "hello.py",
        "entrypoint": "hello.main",
        "timeout": 30,
        "min_instances": 1,
        "max_instances": 4,
        "memory_mb": 512,
        "cpu_millis": 1500,
        "executor": "newdeploy",
        "idle_timeout": 300,
        "concurrency": 5,
        "labels": {"app": "shop", "tier": "web"},
    }


def test_fissions_short_aliases_are_taken(daemon: FakeDaemon, code: Path) -> None:
    result = fission(daemon, "function", "create", "--name", "hello", "--env", "python", "--code", str(code),
                     "--entry", "main", "--ft", "9", "--rpp", "2", "--executortype", "PoolMgr")  # fmt: skip

    assert result.exit_code == 0, result.output
    (body,) = daemon.bodies("POST", "/v1/functions")
    assert (body["entrypoint"], body["timeout"], body["concurrency"], body["executor"]) == ("main", 9, 2, "poolmgr")


def test_no_executortype_sends_no_executor(daemon: FakeDaemon, code: Path) -> None:
    fission(daemon, "fn", "create", "--name", "hello", "--env", "python", "--code", str(code))

    (body,) = daemon.bodies("POST", "/v1/functions")
    assert "executor" not in body


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("container", "--executortype container (an image of your own) is not supported"),
        ("lambda", "--executortype 'lambda' must be poolmgr or newdeploy"),
    ],
)
def test_an_executortype_faasd_has_not_is_one_line(daemon: FakeDaemon, code: Path, value: str, message: str) -> None:
    result = fission(daemon, "fn", "create", "--name", "h", "--env", "python", "--code", str(code),
                     "--executortype", value)  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {message}")
    assert daemon.requests("POST") == []


def test_fissions_concurrency_is_the_most_instances(daemon: FakeDaemon, code: Path) -> None:
    result = fission(daemon, "fn", "create", "--name", "h", "--env", "python", "--code", str(code),
                     "--concurrency", "8")  # fmt: skip

    assert result.exit_code == 0, result.output
    (body,) = daemon.bodies("POST", "/v1/functions")
    assert body["max_instances"] == 8 and "concurrency" not in body


def test_maxscale_wins_over_fissions_concurrency(daemon: FakeDaemon) -> None:
    result = fission(daemon, "fn", "update", "--name", "f", "--concurrency", "8", "--maxscale", "2")

    assert result.exit_code == 0, result.output
    assert daemon.bodies("PATCH", "/v1/functions/f") == [{"max_instances": 2}]


def test_fissions_default_concurrency_is_capped_at_faasds_limit_with_a_note(daemon: FakeDaemon) -> None:
    result = fission(daemon, "fn", "update", "--name", "f", "--con", "500")

    assert result.exit_code == 0, result.output
    assert daemon.bodies("PATCH", "/v1/functions/f") == [{"max_instances": 100}]
    assert notes(result) == [
        "note: --concurrency 500: faasd runs at most 100 instances of a function; max instances set to 100"
    ]


def test_faas_concurrency_keeps_its_meaning(daemon: FakeDaemon) -> None:
    result = faas(daemon, "fn", "update", "--name", "f", "--concurrency", "8")

    assert result.exit_code == 0, result.output
    assert daemon.bodies("PATCH", "/v1/functions/f") == [{"concurrency": 8}]


def test_fn_update_maps_each_flag(daemon: FakeDaemon) -> None:
    for flag, value, fields in [
        ("--fntimeout", "45", {"timeout": 45}),
        ("--minscale", "2", {"min_instances": 2}),
        ("--maxscale", "6", {"max_instances": 6}),
        ("--maxmemory", "1024", {"memory_mb": 1024}),
        ("--maxcpu", "250", {"cpu_millis": 250}),
        ("--entrypoint", "app.handler", {"entrypoint": "app.handler"}),
        ("--executortype", "poolmgr", {"executor": "poolmgr"}),
        ("--labels", "a=b", {"labels": {"a": "b"}}),
        ("--idletimeout", "60", {"idle_timeout": 60}),
        ("--pkgname", "p", {"package": "p"}),
    ]:
        result = fission(daemon, "fn", "update", "--name", "f", flag, value)
        assert result.exit_code == 0, (flag, result.output)
        assert daemon.bodies("PATCH", "/v1/functions/f")[-1] == fields, flag


@pytest.mark.parametrize("text", ["a", "=b", "a=b,c"])
def test_a_label_without_a_value_is_one_line(daemon: FakeDaemon, text: str) -> None:
    result = fission(daemon, "fn", "update", "--name", "f", "--labels", text)

    assert result.exit_code == 1
    assert result.stderr == f"error: --labels {text!r}: each label must be KEY=VALUE, comma-separated\n"


def test_labels_are_parsed_as_fission_writes_them() -> None:
    assert label_pairs("app=shop, tier=web,") == {"app": "shop", "tier": "web"}
    assert label_pairs("empty=") == {"empty": ""}
    assert label_pairs("") == {}
    assert label_pairs(None) is None


# -- fn create / update from a source or a deployment: a package of its own --------------------


def test_fn_create_with_src_and_buildcmd_makes_its_package_then_the_function(daemon: FakeDaemon, source: Path) -> None:
    result = fission(daemon, "fn", "create", "--name", "hello", "--env", "python", "--src", str(source),
                     "--buildcmd", "./build.sh", "--entrypoint", "main.main")  # fmt: skip

    assert result.exit_code == 0, result.output
    (upload,) = daemon.requests("POST", "/v1/packages")
    package = upload.fields["name"]
    assert re.fullmatch(r"hello-[0-9a-f]{4}", package)
    assert upload.fields == {"name": package, "environment": "python", "buildcmd": "./build.sh"}
    assert zip_names(upload.files["source"]) == ["main.py", "requirements.txt"]
    (body,) = daemon.bodies("POST", "/v1/functions")
    assert body == {"name": "hello", "environment": "python", "package": package, "entrypoint": "main.main"}
    assert result.stdout.splitlines() == [
        f"package '{package}' created (status: pending; 'fission pkg info --name {package}' shows the build)",
        "function 'hello' created",
    ]


def test_fn_create_with_a_deploy_file_and_a_glob_zips_them(daemon: FakeDaemon, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = 1\n")
    (tmp_path / "c.txt").write_text("c\n")

    result = fission(daemon, "fn", "create", "--name", "hello", "--env", "python",
                     "--deploy", str(tmp_path / "*.py"), "--deploy", str(tmp_path / "c.txt"))  # fmt: skip

    assert result.exit_code == 0, result.output
    (upload,) = daemon.requests("POST", "/v1/packages")
    assert set(upload.files) == {"deploy"}
    assert zip_names(upload.files["deploy"]) == ["a.py", "b.py", "c.txt"]


def test_the_package_made_for_a_function_that_could_not_be_made_is_deleted(daemon: FakeDaemon, source: Path) -> None:
    daemon.answer("POST", "/v1/functions", 400, {"error": {"code": "bad_request", "message": "timeout too long"}})

    result = fission(daemon, "fn", "create", "--name", "hello", "--env", "python", "--src", str(source))

    assert result.exit_code == 1
    assert result.stderr.endswith("error: timeout too long\n")
    (upload,) = daemon.requests("POST", "/v1/packages")
    assert [s.path for s in daemon.requests("DELETE")] == [f"/v1/packages/{upload.fields['name']}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--src", "x", "--code", "y"], "give --code FILE (one source file) or --pkg PACKAGE"),
        (["--env", "python", "--code", "y", "--buildcmd", "make"], "--buildcmd goes with --src"),
        (["--src", "x"], "give --env: the environment whose builder builds the package"),
        (["--env", "python", "--code", "y", "--method", "POST"], "--method goes with --url"),
    ],
)
def test_fn_create_checks_its_sources_before_sending(daemon: FakeDaemon, args: list[str], message: str) -> None:
    result = fission(daemon, "fn", "create", "--name", "h", *args)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {message}")
    assert daemon.requests("POST") == []


@pytest.mark.parametrize(("flag", "what"), [("--code", "code file"), ("--src", "source"), ("--deploy", "deployment")])
def test_an_archive_url_is_refused_as_the_cli_uploads_local_files(daemon: FakeDaemon, flag: str, what: str) -> None:
    result = fission(daemon, "fn", "create", "--name", "h", "--env", "python", flag, "https://example.com/a.zip")

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the {what} 'https://example.com/a.zip' is a URL: faasd's CLI uploads local files; download it first\n"
    )
    assert daemon.sent == []


def test_fn_update_with_src_updates_the_functions_package(daemon: FakeDaemon, source: Path) -> None:
    daemon.store["/v1/functions"]["f"]["package"] = "p"

    result = fission(daemon, "fn", "update", "--name", "f", "--src", str(source), "--buildcmd", "make")

    assert result.exit_code == 0, result.output
    (upload,) = daemon.requests("PATCH", "/v1/packages/p")
    assert upload.fields == {"buildcmd": "make"} and set(upload.files) == {"source"}
    assert daemon.bodies("PATCH", "/v1/functions/f") == [{"package": "p"}]


def test_fn_update_with_deploy_gives_a_one_file_function_a_package(daemon: FakeDaemon, code: Path) -> None:
    result = fission(daemon, "fn", "update", "--name", "f", "--deploy", str(code))

    assert result.exit_code == 0, result.output
    (upload,) = daemon.requests("POST", "/v1/packages")
    assert upload.fields["environment"] == "python"
    assert zip_names(upload.files["deploy"]) == ["hello.py"]
    assert daemon.bodies("PATCH", "/v1/functions/f") == [{"package": upload.fields["name"]}]


def test_fn_create_with_url_routes_it_as_fission_did(daemon: FakeDaemon, code: Path) -> None:
    result = fission(daemon, "fn", "create", "--name", "hello", "--env", "python", "--code", str(code),
                     "--url", "hello", "--method", "GET", "--method", "POST")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert [(b["method"], b["url"], b["function"]) for b in daemon.bodies("POST", "/v1/triggers/http")] == [
        ("GET", "/hello", "hello"),
        ("POST", "/hello", "hello"),
    ]


# -- fn test, logs, getmeta, pods, list, delete ---------------------------------------------------


def test_fn_test_sends_method_body_headers_and_query_and_prints_the_body_alone(daemon: FakeDaemon) -> None:
    result = fission(daemon, "fn", "test", "--name", "f", "--method", "POST", "--body", '{"a": 1}',
                     "-H", "Content-Type: application/json", "--header", "X-Test: yes",
                     "-q", "x=1", "--query", "y=two words", "--subpath", "/items")  # fmt: skip

    assert result.exit_code == 0, result.output
    (sent,) = daemon.requests(prefix="/function/")
    assert (sent.method, sent.path, sent.query) == ("POST", "/function/f/items", {"x": "1", "y": "two words"})
    assert sent.headers["content-type"] == "application/json" and sent.headers["x-test"] == "yes"
    assert sent.body == {"a": 1}
    # As Fission's: what the function answered, as it is: no status line, no newline added.
    assert result.stdout == 'POST /function/f/items?x=1&y=two+words {"a": 1}'
    assert result.stderr == ""


def test_faas_fn_test_still_prints_the_status_line(daemon: FakeDaemon) -> None:
    result = faas(daemon, "fn", "test", "--name", "f", "-q", "x=1")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "HTTP 200 OK"
    assert daemon.requests(prefix="/function/")[0].query == {"x": "1"}


def test_a_failing_fn_test_is_the_error_line_with_the_body(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/function/f", 500, "went wrong\n")

    result = fission(daemon, "fn", "test", "--name", "f")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: function 'f' answered HTTP 500 Internal Server Error: went wrong "
        "(fission fn logs --name f --request req-1 --detail)\n"
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60.0), ("1m30s", 90.0), ("2", 2.0), ("1.5s", 1.5), ("500ms", 0.5), ("1h", 3600.0)]
)
def test_fn_test_timeout_is_seconds_or_a_go_duration(text: str, seconds: float) -> None:
    assert wait_of(text) == seconds


def test_a_zero_timeout_is_no_limit_and_a_bad_one_an_error(daemon: FakeDaemon) -> None:
    assert wait_of("0") == wait_of("-1s") == 24 * 3600
    result = fission(daemon, "fn", "test", "--name", "f", "--timeout", "soon")
    assert result.exit_code == 1
    assert result.stderr == "error: --timeout 'soon' must be seconds or a duration such as 60s, 2m or 1m30s\n"


def test_fn_logs_prints_what_the_function_wrote_and_detail_the_whole_record(daemon: FakeDaemon) -> None:
    plain = fission(daemon, "fn", "logs", "--name", "f")
    detail = fission(daemon, "fn", "log", "--name", "f", "--detail")
    short = fission(daemon, "fn", "logs", "--name", "f", "-d")
    native = faas(daemon, "fn", "logs", "--name", "f")

    assert plain.exit_code == detail.exit_code == short.exit_code == native.exit_code == 0, plain.output
    assert plain.stdout.splitlines() == ["hello from one", "warning: two", "three  spaced"]
    assert detail.stdout.splitlines() == short.stdout.splitlines() == native.stdout.splitlines() == LOG_LINES


def test_fn_logs_recordcount_reverse_and_pod(daemon: FakeDaemon) -> None:
    result = fission(daemon, "fn", "logs", "--name", "f", "--recordcount", "20", "-r", "--pod", "0123", "-f",
                     "--allpods")  # fmt: skip

    assert result.exit_code == 0, result.output
    (sent,) = daemon.requests("GET", "/v1/functions/f/logs")
    assert sent.query == {"tail": "20", "follow": "true"}
    # --reverse means nothing while following (as in Fission); --pod keeps that instance's lines.
    assert result.stdout.splitlines() == ["hello from one", "three  spaced"]
    assert result.stderr == ""

    reversed_ = fission(daemon, "fn", "logs", "--name", "f", "--reverse", "--detail")
    assert reversed_.stdout.splitlines() == LOG_LINES[::-1]


def test_fn_getmeta_and_pods(daemon: FakeDaemon) -> None:
    meta = fission(daemon, "fn", "getmeta", "--name", "f")
    as_json = fission(daemon, "fn", "getmeta", "--name", "f", "-o", "json")
    pods = fission(daemon, "fn", "pods", "--name", "f")

    assert meta.exit_code == as_json.exit_code == pods.exit_code == 0, meta.output + pods.output
    header, row = rows(meta.stdout)
    assert header[:2] == ["NAME", "ENV"] and row[:2] == ["f", "python"]
    assert json.loads(as_json.stdout)["executor"] == "newdeploy"
    assert rows(pods.stdout) == [["NAME", "STATE", "INFLIGHT", "CALLS", "AGE", "IDLE"],
                                 ["0123456789ab", "idle", "0", "3", "61s", "4s"]]  # fmt: skip


def test_fn_list_prints_fissions_columns(daemon: FakeDaemon) -> None:
    result = fission(daemon, "fn", "list")
    native = faas(daemon, "fn", "list")

    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [
        ["NAME", "ENV", "EXECUTORTYPE", "MINSCALE", "MAXSCALE", "MINCPU", "MAXCPU", "MINMEMORY", "MAXMEMORY",
         "SECRETS"],
        ["f", "python", "newdeploy", "1", "3", "0", "500m", "0", "128Mi", "TOKEN"],
    ]  # fmt: skip
    assert rows(native.stdout)[0][:3] == ["NAME", "ENV", "FILENAME"]
    # Fission's scripts take the first column as the name.
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["f"]


def test_fn_delete_goes_whatever_calls_it_as_in_fission(daemon: FakeDaemon) -> None:
    gone = {"routes": ["r"], "timers": ["t1"], "watches": ["w1"], "mqtriggers": ["m1"]}
    daemon.answer("DELETE", "/v1/functions/f", 200, {"deleted": gone})

    result = fission(daemon, "fn", "delete", "--name", "f")

    assert result.exit_code == 0, result.output
    (sent,) = daemon.requests("DELETE")
    assert sent.query == {"force": "true"}
    assert result.stdout.splitlines() == ["function 'f' deleted", "route 'r' deleted", "timer 't1' deleted",
                                          "watch 'w1' deleted", "mqtrigger 'm1' deleted"]  # fmt: skip


def test_faas_fn_delete_still_asks_for_force(daemon: FakeDaemon) -> None:
    faas(daemon, "fn", "delete", "--name", "f")

    (sent,) = daemon.requests("DELETE")
    assert sent.query == {}


@pytest.mark.parametrize(
    "args",
    [
        ["fn", "delete", "--name", "nope"],
        ["env", "delete", "--name", "nope"],
        ["pkg", "delete", "--name", "nope"],
        ["httptrigger", "delete", "--name", "nope"],
        ["tt", "delete", "--name", "nope"],
        ["mqt", "delete", "--name", "nope"],
        ["watch", "delete", "--name", "nope"],
    ],
)
def test_ignorenotfound_makes_a_missing_object_no_error(daemon: FakeDaemon, args: list[str]) -> None:
    missing = fission(daemon, *args)
    ignored = fission(daemon, *args, "--ignorenotfound")

    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert ignored.exit_code == 0, ignored.output
    assert ignored.stdout == ignored.stderr == ""


# -- packages ---------------------------------------------------------------------------------


def test_pkg_create_from_a_source_archive_with_a_build_command(daemon: FakeDaemon, tmp_path: Path) -> None:
    archive = tmp_path / "demo-src-pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("main.py", "def main():\n    return 'hi'\n")

    result = fission(daemon, "package", "create", "--sourcearchive", str(archive), "--env", "python",
                     "--buildcmd", "./build.sh")  # fmt: skip

    assert result.exit_code == 0, result.output
    (upload,) = daemon.requests("POST", "/v1/packages")
    name = upload.fields["name"]
    # Fission makes a package name unique with a suffix: a script that creates twice gets two.
    assert re.fullmatch(r"demo-src-pkg-[0-9a-f]{4}", name)
    assert upload.files == {"source": archive.read_bytes()}
    assert upload.fields["buildcmd"] == "./build.sh"
    # Fission's scripts cut the name out of "Package 'NAME' created": the second word, quoted.
    assert result.stdout.split()[1].strip("'") == name


def test_faas_pkg_create_keeps_its_plain_name(daemon: FakeDaemon, source: Path) -> None:
    result = faas(daemon, "pkg", "create", "--src", str(source), "--env", "python")

    assert result.exit_code == 0, result.output
    assert daemon.requests("POST", "/v1/packages")[0].fields["name"] == "src"


def test_pkg_create_from_code_and_labels(daemon: FakeDaemon, code: Path) -> None:
    result = fission(daemon, "pkg", "create", "--name", "one", "--env", "python", "--code", str(code),
                     "--labels", "app=shop")  # fmt: skip

    assert result.exit_code == 0, result.output
    (upload,) = daemon.requests("POST", "/v1/packages")
    assert upload.fields == {"name": "one", "environment": "python", "labels": '{"app": "shop"}'}
    assert zip_names(upload.files["deploy"]) == ["hello.py"]


def test_pkg_info_prints_fissions_lines(daemon: FakeDaemon) -> None:
    daemon.store["/v1/packages"]["p"].update(build_log="collecting six\ndone\n", status="succeeded")

    result = fission(daemon, "pkg", "info", "--name", "p")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Name:        p",
        "Environment: python",
        "Status:      succeeded",
        "Build Logs:",
        "collecting six",
        "done",
    ]


def test_pkg_list_prints_fissions_columns_and_filters(daemon: FakeDaemon) -> None:
    daemon.add("/v1/packages", name="broken", environment="python", status="failed", updated_at="t")
    daemon.store["/v1/functions"]["f"]["package"] = "p"

    listed = fission(daemon, "pkg", "list")
    failed = fission(daemon, "pkg", "list", "--status", "failed")
    orphans = fission(daemon, "pkg", "list", "--orphan")

    assert rows(listed.stdout) == [
        ["NAME", "BUILD_STATUS", "ENV", "LASTUPDATEDAT"],
        ["p", "succeeded", "python", "2026-11-30T09:00:00Z"],
        ["broken", "failed", "python", "t"],
    ]
    assert [r[0] for r in rows(failed.stdout)[1:]] == ["broken"]
    assert [r[0] for r in rows(orphans.stdout)[1:]] == ["broken"]


def test_pkg_delete_orphan_deletes_the_unused_ones(daemon: FakeDaemon) -> None:
    daemon.add("/v1/packages", name="unused", environment="python", status="succeeded")
    daemon.store["/v1/functions"]["f"]["package"] = "p"

    result = fission(daemon, "pkg", "delete", "--orphan")

    assert result.exit_code == 0, result.output
    assert result.stdout == "package 'unused' deleted\n"
    assert set(daemon.store["/v1/packages"]) == {"p"}


def test_pkg_update_getdeploy_and_getsrc(daemon: FakeDaemon, source: Path, tmp_path: Path) -> None:
    daemon.answer("GET", "/v1/packages/p/deploy", 200, "tar bytes")
    updated = fission(daemon, "pkg", "update", "--name", "p", "--src", str(source), "--force")
    deploy = fission(daemon, "pkg", "getdeploy", "--name", "p", "-o", str(tmp_path / "d.tar"))
    src = fission(daemon, "pkg", "getsrc", "--name", "p")

    assert updated.exit_code == deploy.exit_code == 0, updated.output + deploy.output
    assert set(daemon.requests("PATCH", "/v1/packages/p")[0].files) == {"source"}
    assert (tmp_path / "d.tar").read_text() == "tar bytes"
    assert src.exit_code == 1
    assert src.stderr == (
        "error: this faasd does not hand a package's source back; "
        "'fission pkg getdeploy --name p' gets its deployment archive\n"
    )
    daemon.answer("GET", "/v1/packages/p/source", 200, "source tar")
    served = fission(daemon, "pkg", "getsrc", "--name", "p", "-o", str(tmp_path / "s.tar"))
    assert served.exit_code == 0, served.output
    assert (tmp_path / "s.tar").read_text() == "source tar"


# -- environments, routes, timers, message-queue triggers, watches ------------------------------


def test_env_create_as_fission_writes_it(daemon: FakeDaemon) -> None:
    result = fission(daemon, "env", "create", "--name", "py", "--image", "faasd/runtime-python:latest",
                     "--builder", "faasd/builder-python:latest", "--poolsize", "3", "--version", "3")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert daemon.bodies("POST", "/v1/environments") == [
        {"name": "py", "image": "faasd/runtime-python:latest", "builder": "faasd/builder-python:latest",
         "poolsize": 3}
    ]  # fmt: skip
    assert notes(result) == [f"note: --version ignored: {fission_cli.why_of('env', 'create', '--version')}"]


def test_env_list_prints_fissions_columns(daemon: FakeDaemon) -> None:
    result = fission(daemon, "env", "list")

    assert rows(result.stdout) == [
        ["NAME", "IMAGE", "BUILDER_IMAGE", "POOLSIZE"],
        ["python", "faasd/runtime-python:latest", "b", "2"],
    ]


def test_route_create_makes_one_route_per_method(daemon: FakeDaemon) -> None:
    result = fission(daemon, "httptrigger", "create", "--name", "hello", "--url", "/users/{id:[0-9]+}",
                     "--function", "f", "--method", "GET", "--method", "post")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert [(b["name"], b["method"], b["url"]) for b in daemon.bodies("POST", "/v1/triggers/http")] == [
        ("hello", "GET", "/users/{id}"),
        ("hello-post", "POST", "/users/{id}"),
    ]
    assert notes(result) == ["note: --url /users/{id:[0-9]+}: faasd matches any segment, so the route is /users/{id}"]


def test_a_canary_route_splits_the_calls_by_weight(daemon: FakeDaemon) -> None:
    result = fission(daemon, "ht", "create", "--name", "c", "--url", "/c", "--function", "f", "--weight", "80",
                     "--function", "g", "--weight", "20")  # fmt: skip
    daemon.store["/v1/triggers/http"]["c"]["functions"] = [{"function": "f", "weight": 80},
                                                          {"function": "g", "weight": 20}]  # fmt: skip
    listed = fission(daemon, "ht", "list")
    moved = fission(daemon, "ht", "update", "--name", "c", "--function", "f", "--weight", "50",
                    "--function", "g", "--weight", "50")  # fmt: skip

    assert result.exit_code == listed.exit_code == moved.exit_code == 0, result.output + moved.output
    assert result.stdout == "route 'c' created: GET /c -> f (80%), g (20%)\n"
    (body,) = daemon.bodies("POST", "/v1/triggers/http")
    assert body == {"name": "c", "method": "GET", "url": "/c",
                    "functions": [{"function": "f", "weight": 80}, {"function": "g", "weight": 20}]}  # fmt: skip
    assert {r[0]: r[3] for r in rows(listed.stdout)[1:]}["c"] == "f:80,g:20"
    assert daemon.bodies("PATCH", "/v1/triggers/http/c") == [
        {"functions": [{"function": "f", "weight": 50}, {"function": "g", "weight": 50}]}
    ]


def test_functions_without_their_weights_are_one_line(daemon: FakeDaemon) -> None:
    result = fission(daemon, "ht", "create", "--url", "/c", "--function", "f", "--function", "g")

    assert result.exit_code == 1
    assert result.stderr == "error: give a --weight for each --function; the weights add up to 100\n"
    assert daemon.requests("POST") == []


def test_route_delete_by_function(daemon: FakeDaemon) -> None:
    daemon.add("/v1/triggers/http", name="r2", method="POST", url="/r", function="f")

    result = fission(daemon, "route", "delete", "--function", "f")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["route 'r' deleted", "route 'r2' deleted"]


def test_timer_create_without_a_name_and_show(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/cron/schedule", 200, {"next": ["2026-11-30T11:00:00Z"]})

    created = fission(daemon, "tt", "create", "--function", "f", "--cron", "@every 5m")
    shown = fission(daemon, "timetrigger", "show", "--cron", "@hourly", "--round", "1")
    listed = fission(daemon, "timer", "list")

    assert created.exit_code == shown.exit_code == 0, created.output + shown.output
    (body,) = daemon.bodies("POST", "/v1/timers")
    assert re.fullmatch(r"f-[0-9a-f]{8}", body["name"]) and body["cron"] == "@every 5m"
    assert shown.stdout == "2026-11-30T11:00:00Z\n"
    assert rows(listed.stdout)[0] == ["NAME", "CRON", "FUNCTION_NAME", "METHOD", "SUBPATH"]


def test_mqtrigger_create_as_fission_writes_it(daemon: FakeDaemon) -> None:
    result = fission(daemon, "mqt", "create", "--function", "f", "--mqtype", "nats-jetstream", "--topic", "in",
                     "--resptopic", "out", "--errortopic", "err", "--maxretries", "3", "-c", "text/plain",
                     "--connection", "nats://n:4222", "--metadata", "stream=x")  # fmt: skip

    assert result.exit_code == 0, result.output
    (body,) = daemon.bodies("POST", "/v1/triggers/mq")
    assert {k: v for k, v in body.items() if k != "name"} == {
        "function": "f", "mqtype": "nats", "topic": "in", "resptopic": "out", "errortopic": "err",
        "maxretries": 3, "contenttype": "text/plain", "connection": "nats://n:4222",
    }  # fmt: skip
    assert "note: --mqtype nats-jetstream is faasd's nats" in notes(result)


def test_watch_create_as_fission_writes_it(daemon: FakeDaemon) -> None:
    result = fission(daemon, "watch", "create", "--function", "f", "--type", "pod", "--ns", "default",
                     "--labels", "app=shop,tier=web")  # fmt: skip

    assert result.exit_code == 0, result.output
    (body,) = daemon.bodies("POST", "/v1/watches")
    assert (body["type"], body["labels"]) == ("container", {"app": "shop", "tier": "web"})
    assert notes(result) == [
        f"note: --ns ignored: {fission_cli.why_of('watch', 'create', '--ns')}",
        "note: --type pod: faasd watches the Docker engine's containers",
    ]


# -- output formats -------------------------------------------------------------------------


def test_yaml_output_is_json_and_wide_is_the_table(daemon: FakeDaemon) -> None:
    as_yaml = fission(daemon, "env", "list", "-o", "yaml")
    wide = fission(daemon, "env", "list", "-o", "wide")

    assert json.loads(as_yaml.stdout)[0]["name"] == "python"
    assert notes(as_yaml) == ["note: -o yaml prints JSON (which is YAML too: any YAML parser reads it)"]
    assert wide.stdout == fission(daemon, "env", "list").stdout


# -- the flags that mean nothing without Kubernetes --------------------------------------------


MINIMAL: dict[tuple[str, str], list[str]] = {
    ("", "version"): ["version"],
    ("function", "create"): ["fn", "create", "--name", "h", "--env", "python", "--code", "{code}"],
    ("function", "update"): ["fn", "update", "--name", "f", "--fntimeout", "5"],
    ("function", "list"): ["fn", "list"],
    ("function", "test"): ["fn", "test", "--name", "f"],
    ("function", "logs"): ["fn", "logs", "--name", "f"],
    ("function", "log"): ["fn", "log", "--name", "f"],
    ("env", "create"): ["env", "create", "--name", "e", "--image", "i"],
    ("env", "update"): ["env", "update", "--name", "python", "--poolsize", "1"],
    ("env", "list"): ["env", "list"],
    ("env", "delete"): ["env", "delete", "--name", "python"],
    ("package", "create"): ["pkg", "create", "--env", "python", "--deploy", "{code}"],
    ("package", "update"): ["pkg", "update", "--name", "p", "--buildcmd", "make"],
    ("package", "list"): ["pkg", "list"],
    ("route", "create"): ["route", "create", "--url", "/x", "--function", "f"],
    ("route", "update"): ["route", "update", "--name", "r", "--url", "/y"],
    ("route", "list"): ["route", "list"],
    ("timer", "create"): ["tt", "create", "--function", "f", "--cron", "@hourly"],
    ("timer", "list"): ["tt", "list"],
    ("mqtrigger", "create"): [
        "mqt",
        "create",
        "--function",
        "f",
        "--mqtype",
        "redis",
        "--topic",
        "t",
        "--connection",
        "redis://r:6379",
    ],
    ("mqtrigger", "update"): ["mqt", "update", "--name", "m", "--topic", "u"],
    ("mqtrigger", "list"): ["mqt", "list"],
    ("watch", "create"): ["watch", "create", "--function", "f"],
    ("watch", "list"): ["watch", "list"],
}
IGNORED = [
    pytest.param(command, flag, name, id=f"{command[0] or 'fission'} {command[1]} {name}")
    for command in MINIMAL
    for flag in fission_cli.flags_of(*command)
    if not flag.refuse
    # The global flags' every spelling on one command; their first on the others.
    for name in (flag.names if flag not in fission_cli.GLOBAL or command == ("function", "list") else flag.names[:1])
]
REFUSED = [
    pytest.param(command, flag, id=f"{command[0]} {command[1]} {flag.names[0]}")
    for command in MINIMAL
    for flag in fission_cli.flags_of(*command)
    if flag.refuse
]


def _args(command: tuple[str, str], code: Path) -> list[str]:
    return [arg.replace("{code}", str(code)) for arg in MINIMAL[command]]


def _given(flag: fission_cli.Flag, name: str) -> list[str]:
    if flag.kind == "flag":
        return [name]
    if flag.kind == "multiple":
        return [name, "a=1", name, "b=2"]
    return [name, "1"]


@pytest.mark.parametrize(("command", "flag", "name"), IGNORED)
def test_each_kubernetes_only_flag_is_taken_and_explained_once(
    daemon: FakeDaemon, code: Path, command: tuple[str, str], flag: fission_cli.Flag, name: str
) -> None:
    if command not in _BARE:  # the same command without the flag: what it sends and notes
        before = copy.deepcopy(daemon.store)
        bare = fission(daemon, *_args(command, code))
        assert bare.exit_code == 0, bare.output
        _BARE[command] = (_requests(daemon), notes(bare))
        daemon.sent.clear()
        daemon.store = before
    sent_bare, notes_bare = _BARE[command]

    result = fission(daemon, *_args(command, code), *_given(flag, name))

    assert result.exit_code == 0, result.output
    expected = [] if flag.quiet else [f"note: {flag.names[0]} ignored: {flag.why}"]
    assert [n for n in notes(result) if n not in notes_bare] == expected
    # Nothing of it reaches the daemon: the requests are those of the same command without it.
    assert _requests(daemon) == sent_bare


_BARE: dict[tuple[str, str], tuple[list[Any], list[str]]] = {}


def _requests(daemon: FakeDaemon) -> list[Any]:
    """What was sent, with the generated names (random suffixes) left out."""
    drop = re.compile(r"-[0-9a-f]{4,8}$")
    out = []
    for sent in daemon.sent:
        body = sent.body
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "name" or not drop.search(str(v))}
        fields = {k: v for k, v in sent.fields.items() if k != "name"}
        out.append((sent.method, sent.path, body, fields))
    return out


@pytest.mark.parametrize(("command", "flag"), REFUSED)
def test_a_flag_that_would_do_something_else_is_refused(
    daemon: FakeDaemon, code: Path, command: tuple[str, str], flag: fission_cli.Flag
) -> None:
    result = fission(daemon, *_args(command, code), *_given(flag, flag.names[0]))

    assert result.exit_code == 1
    assert result.stderr == f"error: {flag.names[0]} is not supported: {flag.why}\n"
    assert daemon.sent == []


def test_a_global_flag_given_twice_is_explained_once(daemon: FakeDaemon) -> None:
    result = fission(daemon, "--namespace", "default", "fn", "list", "-n", "default", "--fnNamespace", "x")

    assert result.exit_code == 0, result.output
    assert notes(result) == [f"note: --namespace ignored: {fission_cli.NAMESPACE}"]


def test_faas_takes_the_same_flags(daemon: FakeDaemon) -> None:
    result = faas(daemon, "fn", "list", "-n", "default")

    assert result.exit_code == 0, result.output
    assert notes(result) == [f"note: --namespace ignored: {fission_cli.NAMESPACE}"]


def test_the_hidden_flags_stay_out_of_help() -> None:
    result = CliRunner().invoke(app, ["fn", "create", "--help"], prog_name="fission", env=CLEAN)

    assert result.exit_code == 0
    for hidden in ("--mincpu", "--targetcpu", "--kube-context", "--configmap"):
        assert hidden not in result.stdout
    for shown in ("--fntimeout", "--minscale", "--executortype", "--src", "--deploy", "--buildcmd", "--spec"):
        assert shown in result.stdout


# -- --spec: the spec file instead of the object ------------------------------------------------


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: Path, source: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["spec", "init"], prog_name="fission", env=CLEAN)
    assert result.exit_code == 0, result.output
    return tmp_path / "specs"


def test_spec_writes_the_spec_files_and_sends_nothing(daemon: FakeDaemon, specs: Path) -> None:
    for args in (
        ["env", "create", "--name", "py", "--image", "img", "--spec"],
        ["fn", "create", "--name", "hello", "--env", "python", "--code", "hello.py", "--maxscale", "3",
         "--executortype", "newdeploy", "--url", "/hello", "--spec"],
        ["pkg", "create", "--name", "p1", "--env", "python", "--src", "src", "--buildcmd", "make", "--spec"],
        ["tt", "create", "--name", "t1", "--function", "hello", "--cron", "@hourly", "--spec"],
        ["route", "create", "--name", "r1", "--function", "hello", "--url", "/r1", "--spec"],
    ):  # fmt: skip
        result = fission(daemon, *args)
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout.startswith("spec file specs/"), result.stdout

    assert daemon.sent == []
    written = sorted(p.name for p in specs.glob("*.yaml"))
    assert written == ["env-py.yaml", "fission-deployment-config.yaml", "function-hello.yaml", "package-p1.yaml",
                       "route-hello.yaml", "route-r1.yaml", "timetrigger-t1.yaml"]  # fmt: skip
    function = (specs / "function-hello.yaml").read_text()
    assert "ExecutorType: newdeploy" in function and "MaxScale: 3" in function
    assert "buildcmd: make" in (specs / "package-p1.yaml").read_text()
    validated = CliRunner().invoke(app, ["spec", "validate"], prog_name="fission", env=CLEAN)
    assert validated.exit_code == 0, validated.output


def test_fn_create_spec_with_a_source_writes_its_package_too(daemon: FakeDaemon, specs: Path) -> None:
    result = fission(daemon, "fn", "create", "--name", "built", "--env", "python", "--src", "src", "--spec")

    assert result.exit_code == 0, result.output
    package, function = result.stdout.splitlines()
    assert re.fullmatch(r"spec file specs/package-built-[0-9a-f]{4}\.yaml written", package)
    assert function == "spec file specs/function-built.yaml written"


def test_dry_prints_the_spec_and_writes_nothing(daemon: FakeDaemon, tmp_path: Path, code: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())

    result = fission(daemon, "fn", "create", "--name", "hello", "--env", "python", "--code", str(code),
                     "--fntimeout", "30", "--dry", "--specdir", str(tmp_path / "specs"))  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "kind: Function" in result.stdout and "functionTimeout: 30" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert daemon.sent == []


def test_spec_without_a_spec_directory_is_one_line(daemon: FakeDaemon, tmp_path: Path, code: Path) -> None:
    result = fission(daemon, "env", "create", "--name", "py", "--image", "i", "--spec",
                     "--specdir", str(tmp_path / "none"))  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "spec init" in result.stderr
    assert daemon.sent == []


# -- the compatibility table --------------------------------------------------------------------


def test_docs_list_every_flag_fission_takes_here() -> None:
    text = (ROOT / "docs" / "fission.md").read_text()
    for (_group, _command), flags in fission_cli.COMMANDS.items():
        for flag in flags:
            for name in flag.names:
                assert f"`{name}" in text, name
    for flag in fission_cli.GLOBAL:
        for name in flag.names:
            assert f"`{name}" in text, name
    for spelling in ("--fntimeout", "--minscale", "--maxscale", "--maxmemory", "--maxcpu", "--executortype",
                     "--requestsperpod", "--detail", "--recordcount", "--query", "FISSION_URL", "FISSION_ROUTER",
                     "getmeta", "getdeploy", "getsrc", "--ignorenotfound"):  # fmt: skip
        assert spelling in text, spelling
