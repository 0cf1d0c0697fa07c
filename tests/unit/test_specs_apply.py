"""`faas spec apply|destroy|list|export` against a fake faasd that keeps its objects.

The fake keeps environments, packages, functions, routes, timers, watches and
mq triggers with their labels (POST/PATCH/DELETE, ``?label=key=value``), as
faasd's API does; a package's archives are normalized with faasd's own code,
so the digests an apply compares are real. Each test reads what the CLI sent
(``daemon.sent``) to check the plan: what was created, updated, deleted, and
that a second apply sends nothing.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from faas_cli.commands.spec import watch_loop
from faas_cli.main import app
from faas_cli.specs import schema
from faas_cli.specs.files import init
from faasd.builds import archive as faasd_archive

KINDS = {
    "environments": "environment",
    "packages": "package",
    "functions": "function",
    "triggers/http": "route",
    "timers": "timer",
    "watches": "watch",
    "triggers/mq": "mqtrigger",
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "environment": {"builder": "", "poolsize": 3},
    "function": {
        "filename": "", "entrypoint": "", "timeout": 60, "env": {}, "secrets": [], "memory_mb": 256,
        "concurrency": 50, "max_instances": 10, "min_instances": 0, "idle_timeout": None, "queue_timeout": 10,
        "cpu_millis": 1000, "network": "default", "package": "", "retries": 4, "retry_max_age": 21600,
        "executor": "poolmgr", "code_sha256": "", "code_size": 0,
    },
    "route": {"method": "GET", "async": False},
    "timer": {"timezone": "UTC", "method": "POST", "subpath": "", "overlap": "forbid", "catch_up": "once"},
    "watch": {"type": "container", "labels": {}, "events": ["added", "removed", "updated"], "include_faasd": False},
    "mqtrigger": {"resptopic": "", "errortopic": "", "maxretries": 3, "maxconcurrency": 10,
                  "contenttype": "application/json", "connection": "", "connection_secret": "", "method": "POST"},
    "package": {"buildcmd": "", "source_sha256": "", "source_size": 0, "deploy_sha256": "", "deploy_size": 0,
                "status": "succeeded", "error": "", "build_log": ""},
}  # fmt: skip


@dataclass
class Sent:
    method: str
    path: str
    body: Any


@dataclass
class FakeFaasd:
    """faasd's admin API, in memory."""

    folder: Path
    url: str = ""
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {k: {} for k in KINDS.values()})
    blobs: dict[str, bytes] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    build: str = "succeeded"  # the status a package with a new source gets
    polls_until_built: int = 0
    serves_sources: bool = True

    def writes(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.sent if s.method != "GET"]

    def clear(self) -> None:
        self.sent.clear()

    def names(self, kind: str) -> list[str]:
        return sorted(self.objects[kind])

    # -- handling ---------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        self.sent.append(Sent(method, path, body))
        parts = path.removeprefix("/v1/").split("/")
        if parts[0] == "triggers":
            parts = [f"triggers/{parts[1]}", *parts[2:]]
        kind = KINDS.get(parts[0])
        if kind is None:
            return 404, {"error": {"code": "not_found", "message": f"no admin API endpoint {method} {path}"}}
        name = parts[1] if len(parts) > 1 else None
        extra = parts[2] if len(parts) > 2 else None
        if name is None and method == "GET":
            return 200, {"items": self.listed(kind, query.get("label", []))}
        if name is None and method == "POST":
            return self.create(kind, body)
        found = self.objects[kind].get(name or "")
        if found is None:
            return 404, {"error": {"code": "not_found", "message": f"{kind} '{name}' not found"}}
        if method == "GET" and extra == "code":
            return 200, self.codes[name or ""]
        if method == "GET" and extra in ("source", "deploy"):
            if extra == "source" and not self.serves_sources:
                return 404, {"error": {"code": "not_found", "message": f"no admin API endpoint GET {path}"}}
            return 200, self.blobs[found[f"{extra}_sha256"]]
        if method == "GET":
            if kind == "package" and found["status"] in ("pending", "running"):
                if self.polls_until_built <= 0:
                    found["status"] = self.build
                self.polls_until_built -= 1
            return 200, found
        if method in ("PATCH", "PUT"):
            return self.update(kind, found, body)
        if method == "DELETE":
            used = any(r["function"] == name for r in self.objects["route"].values())
            if kind == "function" and used and query.get("force") != ["true"]:
                return 409, {"error": {"code": "conflict", "message": f"function '{name}' is used by routes"}}
            del self.objects[kind][name or ""]
            return 204, None
        return 405, {"error": {"code": "method", "message": method}}

    def listed(self, kind: str, selectors: list[str]) -> list[dict[str, Any]]:
        items = [self.objects[kind][n] for n in sorted(self.objects[kind])]
        own = "resource_labels" if kind == "watch" else "labels"  # a watch's "labels" select containers
        for selector in selectors:
            key, eq, value = selector.partition("=")
            items = [i for i in items if key in i[own] and (not eq or i[own][key] == value)]
        return [{k: v for k, v in i.items() if k != "build_log"} for i in items]

    def create(self, kind: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = body["name"]
        if name in self.objects[kind]:
            return 409, {"error": {"code": "conflict", "message": f"{kind} '{name}' exists already"}}
        item = {"name": name, **DEFAULTS.get(kind, {}), "labels": {}}
        if kind == "watch":
            item["resource_labels"] = {}
        self.objects[kind][name] = item
        return self.update(kind, item, body, status=201)

    def update(self, kind: str, item: dict[str, Any], body: dict[str, Any], status: int = 200) -> tuple[int, Any]:
        body = dict(body)
        if kind == "package":
            try:
                return status, self.put_package(item, body)
            except ValueError as error:
                return 400, {"error": {"code": "bad_request", "message": str(error)}}
        if kind == "watch":
            if "resource_labels" in body:
                item["resource_labels"] = body.pop("resource_labels")
        elif "labels" in body:
            item["labels"] = body.pop("labels")
        code = body.pop("code", None)
        if code is not None:
            self.codes[item["name"]] = code
            data = code.encode()
            item.update(code_sha256=hashlib.sha256(data).hexdigest(), code_size=len(data), package="")
        if kind == "function" and body.get("package"):
            item.update(filename="", code_sha256="", code_size=0)
        if kind == "function" and "secrets" in body:
            body["secrets"] = sorted(body["secrets"])
        if kind == "mqtrigger" and "***" in str(body.get("connection", "")):
            return 400, {"error": {"code": "bad_request", "message": "a masked connection"}}
        item.update({k: v for k, v in body.items() if k != "name"})
        return status, item

    def put_package(self, item: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
        files = form.pop("_files", {})
        if "name" not in form and not files and not set(form) & {"environment", "buildcmd"}:
            raise ValueError("nothing to change: give source, deploy, buildcmd or environment")  # faasd's 400
        if "labels" in form:
            item["labels"] = json.loads(form.pop("labels"))
        item.update({k: v for k, v in form.items() if k != "name"})
        for which, data in files.items():
            upload = self.folder / "upload"
            upload.write_bytes(data)
            out = self.folder / "normal.tar"
            info = faasd_archive.normalize(upload, out)
            if which == "deploy":
                info = faasd_archive.retag(out, self.folder / "retagged.tar", prefix="deploy", owner=0)
                out = self.folder / "retagged.tar"
            self.blobs[info.sha256] = out.read_bytes()
            key = "source" if which == "source" else "deploy"
            item[f"{key}_sha256"], item[f"{key}_size"] = info.sha256, info.size
        if "source" in files:  # "built": the deployment is the source, as a builder with nothing to install
            item["status"] = "pending"
            built = self.folder / "built.tar"
            info = faasd_archive.retag(self.folder / "normal.tar", built, prefix="deploy", owner=0)
            self.blobs[info.sha256] = built.read_bytes()
            item["deploy_sha256"], item["deploy_size"] = info.sha256, info.size
        elif "deploy" in files:
            item["status"] = "succeeded"
        return item


def parse_form(content_type: str, body: bytes) -> dict[str, Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    form: dict[str, Any] = {"_files": {}}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename():
            form["_files"][name] = data
        else:
            form[name] = data.decode()
    return form


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeFaasd]:
    folder = tmp_path / "daemon"
    folder.mkdir()
    fake = FakeFaasd(folder)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            body: Any = parse_form(kind, raw) if kind.startswith("multipart/") else (json.loads(raw) if raw else None)
            parts = urllib.parse.urlsplit(self.path)
            with lock:
                status, answer = fake.handle(self.command, parts.path, urllib.parse.parse_qs(parts.query), body)
            data = b""
            if isinstance(answer, bytes):
                data = answer
            elif isinstance(answer, str):
                data = answer.encode()
            elif answer is not None:
                data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def faas(daemon: FakeFaasd, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["--server", daemon.url, *args], env={"FAAS_URL": None, "FAAS_TOKEN": "t", "COLUMNS": "200"}
    )


# -- a project ---------------------------------------------------------------------------------------------

SPECS = """\
apiVersion: fission.io/v1
kind: Environment
metadata: {name: py}
spec:
  runtime: {image: fission/python-env}
  builder: {image: fission/python-builder}
  poolsize: 1
---
kind: ArchiveUploadSpec
name: shop-src
include: ["shop/*"]
---
apiVersion: fission.io/v1
kind: Package
metadata: {name: shop}
spec:
  environment: {name: py}
  source: {type: url, url: "archive://shop-src"}
---
apiVersion: fission.io/v1
kind: Function
metadata: {name: shop, labels: {team: web}}
spec:
  environment: {name: py}
  package: {packageref: {name: shop}, functionName: main.main}
  functionTimeout: 20
---
kind: ArchiveUploadSpec
name: hello-code
include: [hello.py]
---
apiVersion: fission.io/v1
kind: Package
metadata: {name: hello-code}
spec:
  environment: {name: py}
  deployment: {type: url, url: "archive://hello-code"}
---
apiVersion: fission.io/v1
kind: Function
metadata: {name: hello}
spec:
  environment: {name: py}
  package: {packageref: {name: hello-code}}
---
apiVersion: fission.io/v1
kind: HTTPTrigger
metadata: {name: shop}
spec:
  relativeurl: /shop
  methods: [GET, POST]
  functionref: {type: name, name: shop}
---
apiVersion: fission.io/v1
kind: TimeTrigger
metadata: {name: nightly}
spec:
  cron: "@daily"
  functionref: {type: name, name: hello}
"""


def make_project(root: Path, specs: str = SPECS) -> Path:
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "main.py").write_text("def main():\n    return 'shop'\n")
    (root / "shop" / "requirements.txt").write_text("\n")
    (root / "hello.py").write_text("def main():\n    return 'hello'\n")
    specdir = root / "specs"
    init(specdir, "shop", "uid-1")
    (specdir / "app.yaml").write_text(specs)
    return specdir


def apply(daemon: FakeFaasd, specdir: Path, *args: str) -> Result:
    return faas(daemon, "spec", "apply", "--specdir", str(specdir), *args)


def test_apply_creates_everything_labelled_then_does_nothing(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    result = apply(daemon, specdir)
    assert result.exit_code == 0, result.output
    assert daemon.names("environment") == ["py"]
    assert daemon.names("package") == ["shop"]
    assert daemon.names("function") == ["hello", "shop"]
    assert daemon.names("route") == ["shop", "shop-post"]
    assert daemon.names("timer") == ["nightly"]
    uid = {schema.UID_LABEL: "uid-1", schema.NAME_LABEL: "shop"}
    assert daemon.objects["function"]["shop"]["labels"] == {"team": "web", **uid}
    assert all(o["labels"] == uid for o in daemon.objects["route"].values())
    assert daemon.objects["environment"]["py"]["image"] == "faasd/runtime-python:latest"
    assert daemon.objects["function"]["hello"]["code_size"] > 0
    assert daemon.objects["function"]["shop"]["package"] == "shop"
    assert "environment 'py' created" in result.output and "building: shop" in result.output
    order = [path for method, path in daemon.writes()]
    assert order.index("/v1/environments") < order.index("/v1/packages") < order.index("/v1/functions")

    daemon.clear()
    again = apply(daemon, specdir)
    assert again.exit_code == 0, again.output
    assert daemon.writes() == []  # idempotent: the same archive is not even sent again
    assert "everything up to date" in again.output


def test_a_change_updates_only_what_changed(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    assert apply(daemon, specdir).exit_code == 0
    daemon.clear()
    (tmp_path / "shop" / "main.py").write_text("def main():\n    return 'shop 2'\n")
    (tmp_path / "hello.py").write_text("def main():\n    return 'hello 2'\n")
    text = (specdir / "app.yaml").read_text().replace("functionTimeout: 20", "functionTimeout: 25")
    (specdir / "app.yaml").write_text(text)
    result = apply(daemon, specdir)
    assert result.exit_code == 0, result.output
    assert sorted(daemon.writes()) == [
        ("PATCH", "/v1/functions/hello"),
        ("PATCH", "/v1/functions/shop"),
        ("PATCH", "/v1/packages/shop"),
    ]
    shop = next(s for s in daemon.sent if s.path == "/v1/functions/shop")
    assert shop.body == {"timeout": 25}
    hello = next(s for s in daemon.sent if s.path == "/v1/functions/hello")
    assert hello.body == {"code": "def main():\n    return 'hello 2'\n", "filename": "hello.py"}
    assert "function 'shop' updated (timeout)" in result.output
    assert "package 'shop' updated (source)" in result.output


def test_delete_removes_what_the_specs_dropped_and_only_that(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    assert apply(daemon, specdir).exit_code == 0
    daemon.objects["function"]["mine"] = {"name": "mine", **DEFAULTS["function"], "labels": {}}
    text = (specdir / "app.yaml").read_text()
    dropped = text.split("---\napiVersion: fission.io/v1\nkind: TimeTrigger")[0]
    dropped = dropped.replace("  methods: [GET, POST]\n", "  methods: [GET]\n")
    (specdir / "app.yaml").write_text(dropped)
    daemon.clear()
    kept = apply(daemon, specdir)  # without --delete nothing goes
    assert kept.exit_code == 0 and daemon.writes() == []
    result = apply(daemon, specdir, "--delete")
    assert result.exit_code == 0, result.output
    assert daemon.writes() == [("DELETE", "/v1/timers/nightly"), ("DELETE", "/v1/triggers/http/shop-post")]
    assert daemon.names("function") == ["hello", "mine", "shop"]  # not the spec's: never touched
    assert "timer 'nightly' deleted" in result.output


def test_an_object_the_spec_did_not_make_is_a_conflict_unless_it_is_the_same(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    daemon.objects["environment"]["py"] = {
        "name": "py", "image": "faasd/runtime-python:latest", "builder": "faasd/builder-python:latest",
        "poolsize": 1, "labels": {},
    }  # fmt: skip
    same = apply(daemon, specdir)
    assert same.exit_code == 0, same.output
    assert daemon.objects["environment"]["py"]["labels"] == {}  # the same: left as it is, not the spec's
    assert ("POST", "/v1/environments") not in daemon.writes()
    assert faas(daemon, "spec", "destroy", "--specdir", str(specdir)).exit_code == 0
    assert daemon.names("environment") == ["py"]  # so destroy leaves it

    daemon.objects["timer"]["nightly"] = {"name": "nightly", "function": "x", "cron": "@hourly",
                                          **DEFAULTS["timer"], "labels": {}}  # fmt: skip
    daemon.clear()
    result = apply(daemon, specdir)
    assert result.exit_code == 1
    assert "timer 'nightly' exists, not made by this spec, and differs (function, cron)" in result.output
    assert daemon.writes() == []  # nothing done
    result = apply(daemon, specdir, "--allow-conflicts")
    assert result.exit_code == 0, result.output
    assert daemon.objects["timer"]["nightly"]["labels"][schema.UID_LABEL] == "uid-1"
    assert "timer 'nightly' updated (function, cron, labels) (taken over by this spec)" in result.output


def test_a_change_of_labels_alone_is_sent_as_such(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    assert apply(daemon, specdir).exit_code == 0
    text = (specdir / "app.yaml").read_text().replace("metadata: {name: shop}\nspec:\n  environment: {name: py}\n  "
                                                      "source", "metadata: {name: shop, labels: {tier: gold}}\n"
                                                      "spec:\n  environment: {name: py}\n  source")  # fmt: skip
    (specdir / "app.yaml").write_text(text)
    daemon.clear()
    result = apply(daemon, specdir)
    assert result.exit_code == 0, result.output
    assert daemon.writes() == [("PATCH", "/v1/packages/shop")]
    form = daemon.sent[-1].body
    assert json.loads(form["labels"])["tier"] == "gold" and form["environment"] == "py" and not form["_files"]
    assert "package 'shop' updated (labels)" in result.output


def test_watches_and_mq_triggers_are_made_and_deleted(daemon: FakeFaasd, tmp_path: Path) -> None:
    extra = """\
---
apiVersion: fission.io/v1
kind: KubernetesWatchTrigger
metadata: {name: pods, annotations: {faasd.io/events: "added,removed"}}
spec:
  type: pod
  functionref: {type: name, name: hello}
---
apiVersion: fission.io/v1
kind: MessageQueueTrigger
metadata: {name: orders, annotations: {faasd.io/connection: "redis://:pw@127.0.0.1:6379"}}
spec:
  messageQueueType: redis
  topic: orders
  functionref: {type: name, name: hello}
"""
    specdir = make_project(tmp_path, SPECS + extra)
    result = apply(daemon, specdir)
    assert result.exit_code == 0, result.output
    assert daemon.objects["watch"]["pods"]["events"] == ["added", "removed"]
    assert daemon.objects["watch"]["pods"]["resource_labels"][schema.UID_LABEL] == "uid-1"
    mq = daemon.objects["mqtrigger"]["orders"]
    assert mq["connection"] == "redis://:pw@127.0.0.1:6379" and mq["labels"][schema.UID_LABEL] == "uid-1"
    mq["connection"] = "redis://***@127.0.0.1:6379"  # as faasd shows it
    daemon.clear()
    assert apply(daemon, specdir).exit_code == 0 and daemon.writes() == []
    (specdir / "app.yaml").write_text(SPECS)
    result = apply(daemon, specdir, "--delete")
    assert result.exit_code == 0, result.output
    assert daemon.writes() == [("DELETE", "/v1/triggers/mq/orders"), ("DELETE", "/v1/watches/pods")]


def test_dry_run_changes_nothing(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    result = apply(daemon, specdir, "--dry-run")
    assert result.exit_code == 0, result.output
    assert daemon.writes() == []
    assert "2 Functions would be created: hello, shop" in result.output


def test_wait_waits_for_builds_and_fails_on_a_failed_one(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    daemon.polls_until_built = 2
    result = apply(daemon, specdir, "--wait")
    assert result.exit_code == 0, result.output
    assert "package 'shop' built" in result.output
    (tmp_path / "shop" / "main.py").write_text("syntax error(\n")
    daemon.build = "failed"
    daemon.objects["package"]["shop"]["build_log"] = "line 1\nboom"
    daemon.objects["package"]["shop"]["error"] = "pip failed"
    failed = apply(daemon, specdir, "--wait")
    assert failed.exit_code == 1
    assert "package 'shop' failed to build: pip failed" in failed.output and "  boom" in failed.output


def test_a_failed_build_is_built_again_by_the_next_apply(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    assert apply(daemon, specdir).exit_code == 0
    daemon.objects["package"]["shop"]["status"] = "failed"
    daemon.clear()
    assert apply(daemon, specdir).exit_code == 0
    assert daemon.writes() == [("PATCH", "/v1/packages/shop")]


def test_errors_in_the_specs_apply_nothing(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path, SPECS.replace("name: shop}\nspec:\n  relativeurl", "name: shop}\nspec:\n  x"))
    result = apply(daemon, specdir)
    assert result.exit_code == 1
    assert "spec.relativeurl is required" in result.output and "nothing was applied" in result.output
    assert daemon.sent == []


def test_destroy_and_list(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = make_project(tmp_path)
    assert apply(daemon, specdir).exit_code == 0
    daemon.objects["function"]["mine"] = {"name": "mine", **DEFAULTS["function"], "labels": {}}
    listed = faas(daemon, "spec", "list", "--specdir", str(specdir), "-o", "json")
    assert listed.exit_code == 0, listed.output
    assert sorted((i["kind"], i["name"]) for i in json.loads(listed.output)) == [
        ("environment", "py"), ("function", "hello"), ("function", "shop"), ("package", "shop"),
        ("route", "shop"), ("route", "shop-post"), ("timer", "nightly"),
    ]  # fmt: skip
    result = faas(daemon, "spec", "destroy", "--specdir", str(specdir))
    assert result.exit_code == 0, result.output
    deletes = [path for method, path in daemon.writes() if method == "DELETE"]
    assert deletes == [
        "/v1/timers/nightly",
        "/v1/triggers/http/shop",
        "/v1/triggers/http/shop-post",
        "/v1/functions/hello",
        "/v1/functions/shop",
        "/v1/packages/shop",
        "/v1/environments/py",
    ]
    assert daemon.names("function") == ["mine"]
    assert faas(daemon, "spec", "destroy", "--specdir", str(specdir)).output.strip() == "nothing to delete"


def state(daemon: FakeFaasd) -> dict[str, Any]:
    return {kind: {n: dict(o) for n, o in objects.items()} for kind, objects in daemon.objects.items()}


@pytest.mark.parametrize("sources", [True, False])
def test_export_destroy_apply_is_the_same_state(daemon: FakeFaasd, tmp_path: Path, sources: bool) -> None:
    specdir = make_project(tmp_path / "app")
    assert apply(daemon, specdir).exit_code == 0
    daemon.serves_sources = sources
    before = state(daemon)
    exported = tmp_path / "exported"
    result = faas(daemon, "spec", "export", str(exported))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (exported / "specs").iterdir())
    assert files == [
        "README", "env-py.yaml", "fission-deployment-config.yaml", "function-hello.yaml", "function-shop.yaml",
        "package-shop.yaml", "route-shop.yaml", "timetrigger-nightly.yaml",
    ]  # fmt: skip
    config = yaml.safe_load((exported / "specs" / "fission-deployment-config.yaml").read_text())
    assert config == {"apiVersion": "fission.io/v1", "kind": "DeploymentConfig", "name": "shop", "uid": "uid-1"}
    assert (exported / "functions" / "hello" / "hello.py").read_text() == "def main():\n    return 'hello'\n"
    assert (exported / "packages" / "shop" / "main.py").exists()
    route = yaml.safe_load((exported / "specs" / "route-shop.yaml").read_text())
    assert route["spec"]["methods"] == ["GET", "POST"]

    destroyed = faas(daemon, "spec", "destroy", "--specdir", str(exported / "specs"))
    assert destroyed.exit_code == 0, destroyed.output
    assert all(not objects for objects in daemon.objects.values())
    again = apply(daemon, exported / "specs")
    assert again.exit_code == 0, again.output
    after = state(daemon)
    if not sources:  # the built deployment comes back in place of the source
        assert "its built deployment is exported instead" in result.output
        for package in (before["package"]["shop"], after["package"]["shop"]):
            for key in ("source_sha256", "source_size", "deploy_sha256", "deploy_size", "status"):
                package.pop(key)
    assert after == before
    daemon.clear()
    assert apply(daemon, exported / "specs").exit_code == 0 and daemon.writes() == []


def test_export_refuses_a_spec_directory_that_is_there(daemon: FakeFaasd, tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "x.yaml").write_text("")
    result = faas(daemon, "spec", "export", str(tmp_path))
    assert result.exit_code == 1 and "exists and is not empty" in result.output


def test_init_and_validate_commands(daemon: FakeFaasd, tmp_path: Path) -> None:
    specdir = tmp_path / "p" / "specs"
    made = faas(daemon, "spec", "init", "--specdir", str(specdir), "--deployment-id", "abc")
    assert made.exit_code == 0, made.output
    assert yaml.safe_load((specdir / "fission-deployment-config.yaml").read_text())["uid"] == "abc"
    again = faas(daemon, "spec", "init", "--specdir", str(specdir))
    assert again.exit_code == 1 and "spec directory already" in again.output
    specdir2 = make_project(tmp_path / "q")
    valid = faas(daemon, "spec", "validate", "--specdir", str(specdir2))
    assert valid.exit_code == 0, valid.output
    assert "7 resource(s)" in valid.output and "runs on faasd as faasd/runtime-python:latest" in valid.output
    assert daemon.sent == []


def test_watch_applies_again_after_a_change() -> None:
    looks = iter([{"a": (1, 1)}, {"a": (1, 1)}, {"a": (2, 1)}, {"a": (2, 1)}, {"a": (2, 1)}])
    applied: list[int] = []
    slept: list[float] = []

    def once() -> None:
        applied.append(1)

    count = watch_loop(once, lambda: next(looks), sleep=slept.append, rounds=2)
    assert count == 2 and len(applied) == 2
    assert slept[0] == 1.0 and slept[-1] == 0.5
