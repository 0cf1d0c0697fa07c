"""`faas package` (alias `pkg`), `faas fn create --pkg` and `faas deploy DIR|ZIP`, against a small fake daemon.

The fake records what the CLI sends (multipart uploads parsed back into
fields and files) and plays a build: each GET of a package moves it one step
along a scripted list of statuses.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from faas_cli import archives
from faas_cli.archives import package_name_for
from faas_cli.commands import package as package_command
from faas_cli.main import app

LOG = "\n".join(f"step {n}" for n in range(1, 31)) + "\n"


@dataclass
class Sent:
    method: str
    path: str
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    json: dict[str, Any] | None = None


@dataclass
class FakeDaemon:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    # What a build goes through, one step per GET of the package; the last one stays.
    script: list[str] = field(default_factory=lambda: ["pending", "running", "succeeded"])
    error: str = ""
    deploy: bytes = b"a deployment tar"

    def calls(self, method: str, prefix: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.path.startswith(prefix)]


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


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": "x", "message": message}}


def _package(daemon: FakeDaemon, name: str, environment: str, sent: Sent) -> dict[str, Any]:
    building = "source" in sent.files
    return {
        "name": name,
        "environment": environment,
        "status": "pending" if building else "succeeded",
        "buildcmd": sent.fields.get("buildcmd", ""),
        "source_size": len(sent.files.get("source", b"")),
        "deploy_size": len(sent.files.get("deploy", b"")),
        "error": "",
        "build_log": "",
        "updated_at": "2026-11-29T10:00:00Z",
        "_steps": list(daemon.script) if building else ["succeeded"],
    }


def _shown(package: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in package.items() if not k.startswith("_")}


def _answer(daemon: FakeDaemon, sent: Sent) -> tuple[int, Any]:
    method, path = sent.method, sent.path
    if path == "/v1/packages" and method == "POST":
        name = sent.fields["name"]
        if name in daemon.packages:
            return _error(409, f"package '{name}' exists already")
        daemon.packages[name] = _package(daemon, name, sent.fields["environment"], sent)
        return 201, _shown(daemon.packages[name])
    if path == "/v1/packages" and method == "GET":
        return 200, {"items": [_shown(p) for p in daemon.packages.values()]}
    if path.startswith("/v1/packages/"):
        rest = path.removeprefix("/v1/packages/")
        name, _, tail = rest.partition("?")[0].partition("/")
        package = daemon.packages.get(name)
        if package is None:
            return _error(404, f"package '{name}' not found")
        if tail == "deploy":
            return 200, daemon.deploy
        if tail == "rebuild":
            package["_steps"] = list(daemon.script)
            package["status"] = "pending"
            return 202, _shown(package)
        if method == "GET":
            step = package["_steps"].pop(0) if len(package["_steps"]) > 1 else package["_steps"][0]
            package["status"] = step
            if step == "failed":
                package["error"], package["build_log"] = daemon.error, LOG
            return 200, _shown(package)
        if method == "PATCH":
            updated = _package(daemon, name, sent.fields.get("environment", package["environment"]), sent)
            daemon.packages[name] = updated
            return 200, _shown(updated)
        if method == "DELETE":
            users = [f for f, v in daemon.functions.items() if v.get("package") == name]
            if users and "force=true" not in path:
                return _error(409, f"package '{name}' is used by function(s) {', '.join(users)}")
            del daemon.packages[name]
            return 204, None
    if path == "/v1/functions" and method == "POST":
        assert sent.json is not None
        daemon.functions[sent.json["name"]] = dict(sent.json)
        return 201, sent.json
    if path.startswith("/v1/functions/"):
        name = path.removeprefix("/v1/functions/")
        if name not in daemon.functions:
            return _error(404, f"function '{name}' not found")
        if method == "PATCH":
            daemon.functions[name].update(sent.json or {})
        return 200, {"name": name, **daemon.functions[name]}
    if path.startswith("/v1/triggers/http") and method == "GET":
        return 200, {"items": daemon.triggers}
    if path == "/v1/triggers/http" and method == "POST":
        assert sent.json is not None
        daemon.triggers.append({"name": "t", **sent.json})
        return 201, {"name": "t", **sent.json}
    if path == "/v1/environments" and method == "POST":
        return 201, sent.json
    return _error(404, f"no {method} {path} in the fake")


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    fake = FakeDaemon()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            sent = Sent(self.command, self.path)
            kind = self.headers.get("Content-Type", "")
            if kind.startswith("multipart/form-data"):
                sent.fields, sent.files = _parse_form(kind, raw)
            elif raw:
                sent.json = json.loads(raw)
            fake.sent.append(sent)
            status, answer = _answer(fake, sent)
            data = answer if isinstance(answer, bytes) else b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-tar" if isinstance(answer, bytes) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_command, "POLL_SECONDS", 0.0)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory to deploy, with what must not be uploaded next to what must."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "My_App"
    (root / "lib").mkdir(parents=True)
    (root / "main.py").write_text("def main():\n    return 'hi'\n")
    (root / "lib" / "util.py").write_text("X = 1\n")
    (root / "requirements.txt").write_text("six\n")
    for skipped in (".git", "__pycache__", "node_modules", "lib/__pycache__"):
        (root / skipped).mkdir(parents=True)
        (root / skipped / "junk").write_text("never uploaded\n")
    return root


def run(daemon: FakeDaemon, *args: str) -> Result:
    return CliRunner().invoke(app, ["--server", daemon.url, *args], env={"FAAS_URL": None, "FAAS_TOKEN": "t"})


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(zf.namelist())


# -- naming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [("My_App", "my-app"), ("build/site.tar.gz", "site"), ("x/Web App.zip", "web-app"), ("__.tgz", "package")],
)
def test_a_package_is_named_after_its_directory_or_archive(path: str, name: str) -> None:
    assert package_name_for(Path(path)) == name


def test_the_name_of_the_current_directory_is_its_real_name(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert package_name_for(Path(".")) == "my-app"


# -- faas package ---------------------------------------------------------------------------


def test_create_zips_a_directory_without_git_caches_or_node_modules(daemon: FakeDaemon, project: Path) -> None:
    result = run(daemon, "package", "create", "--src", str(project), "--env", "python", "--buildcmd", "./build.sh")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("package 'my-app' created (status: pending;")
    (sent,) = daemon.calls("POST", "/v1/packages")
    assert sent.fields == {"name": "my-app", "environment": "python", "buildcmd": "./build.sh"}
    assert zip_names(sent.files["source"]) == ["lib/util.py", "main.py", "requirements.txt"]
    assert "deploy" not in sent.files


def test_create_sends_an_archive_as_it_is_and_takes_a_name(daemon: FakeDaemon, tmp_path: Path) -> None:
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w") as zf:
        zf.writestr("main.py", "x = 1\n")

    result = run(daemon, "pkg", "create", "--deploy", str(built), "--env", "python", "--name", "site")

    assert result.exit_code == 0, result.output
    assert result.stdout == "package 'site' created (status: succeeded)\n"
    (sent,) = daemon.calls("POST", "/v1/packages")
    assert sent.files == {"deploy": built.read_bytes()}
    assert sent.fields == {"name": "site", "environment": "python"}


def test_create_needs_something_to_package(daemon: FakeDaemon) -> None:
    result = run(daemon, "pkg", "create", "--env", "python")
    assert result.exit_code == 1
    assert result.stderr == "error: give --src (a source to build) or --deploy (a ready deployment), or both\n"
    assert daemon.sent == []


def test_a_link_out_of_the_directory_is_refused_before_anything_is_sent(daemon: FakeDaemon, project: Path) -> None:
    (project / "passwd").symlink_to("/etc/passwd")
    result = run(daemon, "pkg", "create", "--src", str(project), "--env", "python")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: '")
    assert "is a link that leads out of" in result.stderr
    assert daemon.sent == []


def test_a_directory_over_the_limit_is_refused_before_the_upload(
    daemon: FakeDaemon, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_PACKAGE_BYTES", 10)
    result = run(daemon, "pkg", "create", "--src", str(project), "--env", "python")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: source directory '{project}' holds ")
    assert result.stderr.endswith("bytes; the limit is 10\n")
    assert daemon.sent == []


def test_info_prints_as_fission_does(daemon: FakeDaemon, project: Path) -> None:
    daemon.script, daemon.error = ["failed"], "exit code 1"
    run(daemon, "pkg", "create", "--src", str(project), "--env", "python")

    result = run(daemon, "pkg", "info", "--name", "my-app")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:5] == [
        "Name:        my-app",
        "Environment: python",
        "Status:      failed",
        "Error:       exit code 1",
        "Build Logs:",
    ]
    assert lines[5:] == LOG.splitlines()


def test_list_and_get(daemon: FakeDaemon, project: Path, tmp_path: Path) -> None:
    run(daemon, "pkg", "create", "--src", str(project), "--env", "python")

    listed = run(daemon, "pkg", "list")
    as_json = run(daemon, "pkg", "list", "-o", "json")
    out = tmp_path / "out" / "deploy.tar"
    out.parent.mkdir()
    got = run(daemon, "pkg", "get", "--name", "my-app", "--output", str(out))
    piped = run(daemon, "pkg", "get", "--name", "my-app")

    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "ENV", "STATUS", "SOURCE", "DEPLOY", "UPDATED"]
    assert row.split()[:3] == ["my-app", "python", "pending"]
    assert [p["name"] for p in json.loads(as_json.stdout)] == ["my-app"]
    assert got.exit_code == 0, got.output
    assert out.read_bytes() == daemon.deploy
    assert got.stdout == f"package 'my-app': deployment archive written to {out} ({len(daemon.deploy)} bytes)\n"
    assert os.listdir(out.parent) == ["deploy.tar"]
    assert piped.stdout_bytes == daemon.deploy


def test_get_of_an_unknown_package_is_one_line_and_writes_nothing(daemon: FakeDaemon, tmp_path: Path) -> None:
    out = tmp_path / "deploy.tar"
    result = run(daemon, "pkg", "get", "--name", "ghost", "--output", str(out))
    assert result.exit_code == 1
    assert result.stderr == "error: package 'ghost' not found\n"
    assert list(tmp_path.iterdir()) == []


def test_rebuild_and_delete(daemon: FakeDaemon, project: Path) -> None:
    run(daemon, "pkg", "create", "--src", str(project), "--env", "python")
    daemon.functions["my-app"] = {"package": "my-app"}

    rebuilt = run(daemon, "pkg", "rebuild", "--name", "my-app")
    refused = run(daemon, "pkg", "delete", "--name", "my-app")
    forced = run(daemon, "pkg", "delete", "--name", "my-app", "--force")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert rebuilt.stdout.startswith("package 'my-app' is built again (status: pending;")
    assert refused.exit_code == 1
    assert refused.stderr == "error: package 'my-app' is used by function(s) my-app (with faas: --force)\n"
    assert forced.exit_code == 0
    assert forced.stdout == "package 'my-app' deleted\n"


def test_update_sends_only_what_was_given(daemon: FakeDaemon, project: Path) -> None:
    run(daemon, "pkg", "create", "--src", str(project), "--env", "python")
    result = run(daemon, "pkg", "update", "--name", "my-app", "--buildcmd", "make")
    nothing = run(daemon, "pkg", "update", "--name", "my-app")

    assert result.exit_code == 0, result.output
    (sent,) = daemon.calls("PATCH", "/v1/packages/my-app")
    assert (sent.fields, sent.files) == ({"buildcmd": "make"}, {})
    assert nothing.exit_code == 1
    assert nothing.stderr == "error: nothing to update; give --src, --deploy, --buildcmd or --env\n"


# -- faas fn create --pkg, faas env --builder --------------------------------------------------------


def test_fn_create_with_a_package_sends_no_code(daemon: FakeDaemon) -> None:
    result = run(daemon, "fn", "create", "--name", "f", "--pkg", "my-app", "--entrypoint", "main.main")
    assert result.exit_code == 0, result.output
    (sent,) = daemon.calls("POST", "/v1/functions")
    assert sent.json == {"name": "f", "package": "my-app", "entrypoint": "main.main"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pkg", "p", "--code", "f.py"], "give --code FILE (one source file) or --pkg PACKAGE"),
        ([], "give --code FILE (one source file) or --pkg PACKAGE"),
        (["--code", "f.py"], "give --env: the environment a function of one source file runs in"),
    ],
)
def test_fn_create_takes_code_or_a_package(daemon: FakeDaemon, args: list[str], message: str) -> None:
    result = run(daemon, "fn", "create", "--name", "f", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {message}")
    assert daemon.sent == []


def test_fn_update_moves_a_function_to_a_package(daemon: FakeDaemon) -> None:
    daemon.functions["f"] = {"environment": "python"}
    result = run(daemon, "fn", "update", "--name", "f", "--pkg", "my-app", "--entrypoint", "app.handler")
    assert result.exit_code == 0, result.output
    (sent,) = daemon.calls("PATCH", "/v1/functions/f")
    assert sent.json == {"package": "my-app", "entrypoint": "app.handler"}


def test_env_create_and_update_take_a_builder(daemon: FakeDaemon) -> None:
    result = run(daemon, "env", "create", "--name", "py", "--image", "me/py:1", "--builder", "me/b:1")
    assert result.exit_code == 0, result.output
    (sent,) = daemon.calls("POST", "/v1/environments")
    assert sent.json == {"name": "py", "image": "me/py:1", "builder": "me/b:1"}


# -- faas deploy DIR|ZIP ------------------------------------------------------------------


def test_deploy_of_a_directory_builds_its_package_then_makes_the_function_and_route(
    daemon: FakeDaemon, project: Path
) -> None:
    result = run(daemon, "deploy", str(project), "--env", "python")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "building package 'my-app' ...",
        "package 'my-app' built",
        "function 'my-app' created in environment 'python'",
        "route GET /my-app created",
        f"{daemon.url}/my-app",
    ]
    (upload,) = daemon.calls("POST", "/v1/packages")
    assert zip_names(upload.files["source"]) == ["lib/util.py", "main.py", "requirements.txt"]
    assert len(daemon.calls("GET", "/v1/packages/my-app")) >= 3  # polled until it succeeded
    (created,) = daemon.calls("POST", "/v1/functions")
    assert created.json == {"name": "my-app", "package": "my-app", "entrypoint": ""}
    assert daemon.triggers[0]["url"] == "/my-app"


def test_deploy_again_updates_the_package_and_the_function(daemon: FakeDaemon, project: Path) -> None:
    assert run(daemon, "deploy", str(project), "--env", "python").exit_code == 0
    result = run(daemon, "deploy", str(project), "--entrypoint", "main.other", "--name", "my-app")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "building package 'my-app' ...",
        "package 'my-app' built",
        "function 'my-app' updated",
        "route GET /my-app exists",
        f"{daemon.url}/my-app",
    ]
    (patched,) = daemon.calls("PATCH", "/v1/packages/my-app")
    assert set(patched.files) == {"source"} and patched.fields == {}
    (updated,) = daemon.calls("PATCH", "/v1/functions/my-app")
    assert updated.json == {"package": "my-app", "entrypoint": "main.other"}


def test_deploy_of_a_file_deployed_function_from_a_zip_resets_its_entrypoint(
    daemon: FakeDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with zipfile.ZipFile(tmp_path / "hello.zip", "w") as zf:
        zf.writestr("index.js", "module.exports = async () => 'hi';\n")
    daemon.functions["hello"] = {"environment": "nodejs", "filename": "hello.js", "entrypoint": "handler"}

    result = run(daemon, "deploy", "hello.zip", "--env", "nodejs")

    assert result.exit_code == 0, result.output
    (updated,) = daemon.calls("PATCH", "/v1/functions/hello")
    assert updated.json == {"package": "hello", "entrypoint": ""}


def test_a_failed_build_prints_the_logs_tail_and_one_error_line(daemon: FakeDaemon, project: Path) -> None:
    daemon.script, daemon.error = ["pending", "running", "failed"], "the build command exited with code 1"

    result = run(daemon, "deploy", str(project), "--env", "python")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["building package 'my-app' ...", *LOG.splitlines()[-20:]]
    assert result.stderr == ("error: package 'my-app' failed to build: the build command exited with code 1\n")
    assert daemon.calls("POST", "/v1/functions") == []
    assert daemon.triggers == []


def test_deploy_of_a_new_package_needs_an_environment(daemon: FakeDaemon, project: Path) -> None:
    result = run(daemon, "deploy", str(project))
    assert result.exit_code == 1
    assert result.stderr == "error: package 'my-app' does not exist yet; give --env to create it\n"
    assert daemon.calls("POST", "/v1/packages") == []


def test_a_route_taken_by_another_function_stops_a_package_deploy_before_the_upload(
    daemon: FakeDaemon, project: Path
) -> None:
    daemon.triggers.append({"name": "t9", "method": "GET", "url": "/my-app", "function": "other"})
    result = run(daemon, "deploy", str(project), "--env", "python")
    assert result.exit_code == 1
    assert "already calls function 'other'" in result.stderr
    assert daemon.calls("POST", "/v1/packages") == []


def test_deploy_of_a_missing_archive_is_one_line(daemon: FakeDaemon, tmp_path: Path) -> None:
    result = run(daemon, "deploy", str(tmp_path / "nope.zip"), "--env", "python")
    assert result.exit_code == 1
    assert result.stderr == f"error: source '{tmp_path / 'nope.zip'}' not found\n"
