"""`faas dev`'s pure parts (which saves redeploy, and how; bursts of saves; the call lines) and its
session against a fake daemon (what it deploys, what it takes back)."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from faas_cli import devloop
from faas_cli.archives import SKIPPED_DIRS
from faas_cli.client import Reply
from faas_cli.devloop import (
    CallCounts,
    Console,
    Debouncer,
    DevOptions,
    DevSession,
    Plan,
    answer_text,
    build_error,
    call_line,
    classify,
    fingerprint,
    is_ignored,
    is_manifest,
    log_record,
    parse_calls,
    saved_at,
)
from faas_cli.errors import ApiError
from faasd.builds import builder

# -- which saves matter, and how ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/index",
        "__pycache__/main.cpython-311.pyc",
        "lib/__pycache__/x.pyc",
        "node_modules/left-pad/index.js",
        "web/node_modules/a.js",
        ".main.py.swp",
        ".main.py.swx",
        "main.py~",
        ".#main.py",
        "#main.py#",
        "4913",
        "main.py___jb_tmp___",
        ".goutputstream-ABC123",
        ".DS_Store",
        ".venv/lib/site.py",
        ".idea/workspace.xml",
    ],
)
def test_version_control_caches_dependencies_and_editor_files_never_redeploy(path: str) -> None:
    assert is_ignored(path)


@pytest.mark.parametrize("path", ["main.py", "lib/util.py", "requirements.txt", "index.js", ".env", "wheels/a.whl"])
def test_source_files_count(path: str) -> None:
    assert not is_ignored(path)


def test_a_manifest_counts_at_the_top_and_a_local_dependency_file_anywhere() -> None:
    assert is_manifest("requirements.txt")
    assert is_manifest("package.json")
    assert is_manifest("package-lock.json")
    assert not is_manifest("sub/requirements.txt")  # the builder reads the top one only
    assert is_manifest("wheels/dep-1.0-py3-none-any.whl")
    assert is_manifest("vendor/dep-1.0.0.tgz")
    assert not is_manifest("main.py")


def test_the_cli_knows_the_same_manifests_as_the_builder() -> None:
    # What decides a package's dependency cache key decides a rebuild: the two lists must stay the same.
    assert devloop.MANIFESTS == builder.MANIFESTS
    assert devloop.LOCAL_DEPENDENCIES == builder.LOCAL_DEPENDENCIES
    assert SKIPPED_DIRS <= devloop.IGNORED_DIRS  # what faas deploy leaves out of the archive never redeploys


def test_a_package_change_of_code_alone_is_code_only(tmp_path: Path) -> None:
    plan = classify([tmp_path / "main.py", tmp_path / "lib" / "util.py"], tmp_path)

    assert plan == Plan(("lib/util.py", "main.py"), ())
    assert not plan.rebuild


def test_a_changed_manifest_is_a_rebuild(tmp_path: Path) -> None:
    plan = classify([str(tmp_path / "main.py"), str(tmp_path / "requirements.txt")], tmp_path)

    assert plan is not None
    assert plan.rebuild
    assert plan.manifests == ("requirements.txt",)
    assert plan.files == ("main.py", "requirements.txt")


def test_ignored_paths_and_paths_outside_the_folder_ask_for_nothing(tmp_path: Path) -> None:
    changed = [tmp_path / ".main.py.swp", tmp_path / "__pycache__" / "main.pyc", tmp_path.parent / "other.py", tmp_path]
    assert classify(changed, tmp_path) is None
    assert classify([], tmp_path) is None


def test_a_single_file_function_counts_its_own_file_only_and_never_rebuilds(tmp_path: Path) -> None:
    target = tmp_path / "hello.py"

    assert classify([tmp_path / "other.py", tmp_path / "requirements.txt"], tmp_path, target) is None
    plan = classify([target, tmp_path / "other.py"], tmp_path, target)
    assert plan == Plan(("hello.py",), ())
    manifest_named = tmp_path / "requirements.txt"
    assert classify([manifest_named], tmp_path, manifest_named) == Plan(("requirements.txt",), ())


def test_a_plan_names_a_few_files_and_counts_the_rest() -> None:
    assert Plan(("a.py",)).describe() == "a.py"
    assert Plan(("a.py", "b.py", "c.py", "d.py", "e.py")).describe() == "a.py, b.py, c.py and 2 more"


# -- bursts of saves -------------------------------------------------------------------------------------


def test_nothing_pending_is_never_due() -> None:
    debouncer = Debouncer(quiet=0.05, longest=0.5)

    assert debouncer.wait(0.0) is None
    assert not debouncer.due(100.0)
    debouncer.add([], 1.0)  # an empty batch is no save
    assert not debouncer.pending


def test_a_save_is_due_once_no_other_came_for_the_quiet_time() -> None:
    debouncer = Debouncer(quiet=0.05, longest=0.5)
    debouncer.add(["a.py"], 10.0)

    assert debouncer.wait(10.0) == pytest.approx(0.05)
    assert not debouncer.due(10.04)
    assert debouncer.due(10.05)
    assert debouncer.take() == {"a.py"}
    assert not debouncer.pending
    assert debouncer.wait(10.1) is None


def test_a_burst_of_saves_is_one_redeploy_after_its_last_save() -> None:
    debouncer = Debouncer(quiet=0.05, longest=0.5)
    for i, at in enumerate((0.0, 0.03, 0.06, 0.09)):
        debouncer.add([f"f{i}.py", "main.py"], at)
        assert not debouncer.due(at + 0.04)

    assert not debouncer.due(0.13)
    assert debouncer.due(0.14)
    assert debouncer.take() == {"f0.py", "f1.py", "f2.py", "f3.py", "main.py"}


def test_saves_that_never_stop_are_redeployed_after_the_longest_wait() -> None:
    debouncer = Debouncer(quiet=0.05, longest=0.5)
    at = 0.0
    while at < 0.49:
        debouncer.add(["log.txt"], at)
        assert not debouncer.due(at)
        at += 0.02
    debouncer.add(["log.txt"], 0.5)
    assert debouncer.due(0.5)


# -- what was deployed ---------------------------------------------------------------------------------


def test_the_fingerprint_changes_with_the_content_not_with_a_touch_or_an_ignored_file(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def main():\n    return 1\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "util.py").write_text("X = 1\n")
    first = fingerprint(tmp_path)

    os.utime(tmp_path / "main.py", (time.time() + 5, time.time() + 5))
    (tmp_path / ".main.py.swp").write_bytes(b"\0swap")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    assert fingerprint(tmp_path) == first

    (tmp_path / "lib" / "util.py").write_text("X = 2\n")
    assert fingerprint(tmp_path) != first
    (tmp_path / "lib" / "util.py").write_text("X = 1\n")
    assert fingerprint(tmp_path) == first
    (tmp_path / "lib" / "util.py").rename(tmp_path / "lib" / "moved.py")
    assert fingerprint(tmp_path) != first


def test_a_single_files_fingerprint_is_its_content(tmp_path: Path) -> None:
    file = tmp_path / "hello.py"
    file.write_text("a")
    first = fingerprint(file)
    file.write_text("a")
    assert fingerprint(file) == first
    file.write_text("b")
    assert fingerprint(file) != first


def test_the_save_time_is_the_newest_modification_of_the_burst(tmp_path: Path) -> None:
    now_wall, now_mono = time.time(), 1000.0
    older, newer = tmp_path / "a.py", tmp_path / "b.py"
    older.write_text("a")
    newer.write_text("b")
    os.utime(older, (now_wall - 0.5, now_wall - 0.5))
    os.utime(newer, (now_wall - 0.2, now_wall - 0.2))

    at = saved_at([str(older), str(newer), str(tmp_path / "gone.py")], now_wall, now_mono, fallback=999.0)

    assert at == pytest.approx(now_mono - 0.2, abs=0.01)
    # No file left, or one saved long ago (a copied tree): when the watcher saw it.
    assert saved_at([str(tmp_path / "gone.py")], now_wall, now_mono, fallback=999.0) == 999.0
    os.utime(older, (now_wall - 3600, now_wall - 3600))
    assert saved_at([str(older)], now_wall, now_mono, fallback=999.0) == 999.0


# -- the call lines ------------------------------------------------------------------------------------

METRICS = """\
# HELP faasd_function_calls_total Calls that ended.
# TYPE faasd_function_calls_total counter
faasd_function_calls_total{code="2xx",function="hello"} 5.0
faasd_function_calls_total{code="5xx",function="hello"} 1.0
faasd_function_calls_total{code="499",function="hello"} 0.0
faasd_function_calls_total{function="hello-2",code="2xx"} 99.0
faasd_function_duration_seconds_bucket{function="hello",le="0.01"} 6.0
faasd_function_duration_seconds_count{function="hello"} 6.0
faasd_function_duration_seconds_sum{function="hello"} 0.06
faasd_function_duration_seconds_sum{function="hello-2"} 7.0
faasd_function_instances{function="hello",state="idle"} 1.0
"""


def test_the_calls_of_the_function_alone_are_read_from_metrics() -> None:
    counts = parse_calls(METRICS, "hello")

    assert counts.calls == {"2xx": 5.0, "5xx": 1.0, "499": 0.0}
    assert counts.duration_sum == pytest.approx(0.06)
    assert counts.duration_count == 6.0
    assert counts.seen
    assert parse_calls(METRICS, "hello-2").calls == {"2xx": 99.0}
    assert not parse_calls(METRICS, "nope").seen  # faasd --call-metrics false: no series at all


def _counts(duration: float, count: float, **calls: float) -> CallCounts:
    return CallCounts({code.replace("c", ""): n for code, n in calls.items()}, duration, count)


def test_one_new_call_is_one_line_with_its_status_class_and_time() -> None:
    before = _counts(0.010, 1, c2xx=1)
    after = _counts(0.0131, 2, c2xx=2)

    assert call_line(before, after, Counter()) == "1 call: 2xx in 3.1 ms"


def test_several_calls_are_counted_by_class_with_their_mean() -> None:
    before = _counts(0.0, 0, c2xx=0, c5xx=0, c499=0)
    after = _counts(0.012, 4, c2xx=2, c5xx=1, c499=1)

    assert call_line(before, after, Counter()) == "4 calls: 2 x 2xx, 1 x 5xx, 1 x 499 (the caller left); mean 3.0 ms"
    assert call_line(after, after, Counter()) is None


def test_faas_devs_own_calls_are_not_shown_again() -> None:
    own: Counter[str] = Counter({"2xx": 1})
    before = _counts(0.0, 0, c2xx=0)

    assert call_line(before, _counts(0.004, 1, c2xx=1), own) is None
    assert own["2xx"] == 0
    own["2xx"] = 1
    # Its own and one of the user's: the user's is shown, without a mean (the histogram does not say whose).
    assert call_line(before, _counts(0.008, 2, c2xx=2), own) == "1 call: 2xx"


def test_a_probe_answer_is_ok_unless_faasd_says_the_function_failed() -> None:
    def reply(status: int, body: bytes, reason: str = "") -> Reply:
        return Reply(status, reason, {}, body)

    assert answer_text(reply(200, b"hi", "OK")) == (True, "200 OK")
    assert answer_text(reply(404, b'{"error": {"code": "x", "message": "mine"}}', "Not Found")) == (
        True,
        "404 Not Found",
    )
    load = b'{"error": {"code": "load_error", "message": "SyntaxError: invalid syntax (hello.py:1)"}}'
    assert answer_text(reply(500, load, "Internal Server Error")) == (
        False,
        "500 (load error: SyntaxError: invalid syntax (hello.py:1))",
    )
    assert answer_text(reply(500, b"boom", "Internal Server Error")) == (False, "500 Internal Server Error")


def test_a_failed_build_is_explained_by_the_tools_own_error_line() -> None:
    log = (
        "faasd: cache miss: installing dependencies 3feabfa38d6d with faasd/builder-python:latest\n"
        "ERROR: Could not find a version that satisfies the requirement nope==1 (from versions: none)\n"
        "ERROR: No matching distribution found for nope==1\n"
        "build: pip install failed (exit 1)\n"
        "faasd: build failed: the build command exited with code 1\n"
    )
    assert build_error(log) == "ERROR: No matching distribution found for nope==1"
    assert build_error("npm ERR! 404 Not Found - GET nope\nbuild: npm install failed\n").startswith("npm ERR! 404")
    assert build_error("faasd: build failed: timed out\n") == ""


def test_a_log_record_is_shown_with_its_local_time_and_stderr_marked() -> None:
    shown = log_record("2026-11-27T12:06:45.713Z 22de1225f5eb4567 stderr Traceback (most recent call last):")

    assert shown.endswith(" log    22de1225f5eb ! Traceback (most recent call last):")
    assert len(shown.split(" ", 1)[0]) == len("12:06:45")
    assert log_record("not a record") == "not a record"
    assert log_record("2026-11-27T12:06:45.713Z abc stdout hi").endswith(" log    abc hi")


# -- the session, against a fake daemon --------------------------------------------------------------------


class FakeDaemon:
    """The FaasClient methods faas dev calls, over dicts."""

    server = "http://127.0.0.1:1"

    def __init__(self) -> None:
        self.functions: dict[str, dict[str, Any]] = {}
        self.packages: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.answer = Reply(200, "OK", {}, b"hi")

    def _missing(self, kind: str, name: str) -> ApiError:
        return ApiError(404, "not_found", f"{kind} '{name}' not found")

    def list_triggers(self, function: str | None = None) -> list[dict[str, Any]]:
        return [t for t in self.triggers.values() if function is None or t["function"] == function]

    def create_trigger(self, method: str, url: str, function: str) -> dict[str, Any]:
        name = f"{function}-{len(self.triggers)}"
        self.triggers[name] = {"name": name, "method": method, "url": url, "function": function}
        self.calls.append(f"create_trigger {method} {url}")
        return self.triggers[name]

    def delete_trigger(self, name: str) -> None:
        self.calls.append(f"delete_trigger {name}")
        del self.triggers[name]

    def get_function(self, name: str) -> dict[str, Any]:
        if name not in self.functions:
            raise self._missing("function", name)
        return self.functions[name]

    def create_function(self, name: str, environment: str | None, code: str | None, **fields: Any) -> dict[str, Any]:
        self.calls.append(f"create_function {name}")
        self.functions[name] = {"name": name, "environment": environment, "code": code, "revision": 1, **fields}
        return self.functions[name]

    def update_function(self, name: str, **fields: Any) -> dict[str, Any]:
        fn = self.get_function(name)
        self.calls.append(f"update_function {name} {sorted(k for k, v in fields.items() if v is not None)}")
        fn.update({k: v for k, v in fields.items() if v is not None}, revision=fn["revision"] + 1)
        return fn

    def delete_function(self, name: str, force: bool = False) -> None:
        self.calls.append(f"delete_function {name} force={force}")
        del self.functions[name]
        self.triggers = {k: t for k, t in self.triggers.items() if t["function"] != name}

    def get_package(self, name: str) -> dict[str, Any]:
        if name not in self.packages:
            raise self._missing("package", name)
        return self.packages[name]

    def create_package(self, name: str, environment: str, source: Path | None = None) -> dict[str, Any]:
        self.calls.append(f"create_package {name}")
        self.packages[name] = {"name": name, "environment": environment, "status": "succeeded", "build_log": ""}
        return self.packages[name]

    def update_package(self, name: str, environment: str | None = None, source: Path | None = None) -> dict[str, Any]:
        self.calls.append(f"update_package {name}")
        package = self.get_package(name)
        package.update(status="succeeded", build_log="faasd: cache hit: dependencies abc reused\n")
        return package

    def delete_package(self, name: str, force: bool = False) -> None:
        self.calls.append(f"delete_package {name}")
        del self.packages[name]

    def invoke(self, name: str) -> Reply:
        self.calls.append(f"invoke {name}")
        return self.answer


def _session(daemon: FakeDaemon, path: Path, name: str, lines: list[str], keep: bool = False) -> DevSession:
    options = DevOptions(path, name, "python", f"/{name}", ["GET"], None, keep=keep)
    return DevSession(daemon, None, options, Console(lines.append))  # type: ignore[arg-type]


def test_a_file_is_deployed_redeployed_on_a_change_only_and_taken_back(tmp_path: Path) -> None:
    daemon, lines = FakeDaemon(), []
    file = tmp_path / "hello.py"
    file.write_text("def main():\n    return 'v1'\n")
    session = _session(daemon, file, "hello", lines)

    session.deploy()
    assert daemon.calls == ["create_function hello", "create_trigger GET /hello"]
    assert daemon.functions["hello"]["filename"] == "hello.py"

    daemon.calls.clear()
    session.redeploy({str(file)})  # saved, but the same bytes: nothing to do
    assert daemon.calls == []
    file.write_text("def main():\n    return 'v2'\n")
    session.redeploy({str(tmp_path / "other.py")})  # another file of the folder
    assert daemon.calls == []
    session.redeploy({str(file)})
    assert daemon.calls == ["update_function hello ['code', 'filename']", "invoke hello"]
    assert daemon.functions["hello"]["code"].endswith("'v2'\n")
    assert "hello.py: code only (revision 2), the new code answered 200 OK" in lines[-1]
    assert lines[-1].endswith("after the save")

    daemon.answer = Reply(500, "Internal Server Error", {}, b'{"error": {"code": "load_error", "message": "bad"}}')
    file.write_text("def main(:\n")
    session.redeploy({str(file)})
    assert " error  hello.py: code only (revision 3), the new code answered 500 (load error: bad)" in lines[-1]

    daemon.calls.clear()
    assert session.cleanup()
    assert daemon.calls == ["delete_function hello force=True"]
    assert daemon.functions == {} and daemon.triggers == {}


def test_a_function_that_existed_is_left_and_only_the_route_faas_dev_made_goes(tmp_path: Path) -> None:
    daemon, lines = FakeDaemon(), []
    daemon.create_function("hello", "python", "old")
    file = tmp_path / "hello.py"
    file.write_text("new")
    session = _session(daemon, file, "hello", lines)

    session.deploy()
    daemon.calls.clear()
    assert session.cleanup()

    assert daemon.calls == ["delete_trigger hello-0"]
    assert "hello" in daemon.functions
    assert lines[-1] == "function 'hello' existed before faas dev: left as it is now"


def test_keep_leaves_everything(tmp_path: Path) -> None:
    daemon, lines = FakeDaemon(), []
    file = tmp_path / "hello.py"
    file.write_text("v1")
    session = _session(daemon, file, "hello", lines, keep=True)
    session.deploy()
    daemon.calls.clear()

    assert session.cleanup()
    assert daemon.calls == []
    assert lines[-1] == "kept function 'hello', route 'hello-0' (--keep)"


def test_a_package_is_built_redeployed_code_only_and_deleted_with_its_function(tmp_path: Path) -> None:
    daemon, lines = FakeDaemon(), []
    (tmp_path / "main.py").write_text("def main():\n    return 'v1'\n")
    session = _session(daemon, tmp_path, "shop", lines)

    session.deploy()
    assert daemon.calls == ["create_package shop", "create_function shop", "create_trigger GET /shop"]
    assert daemon.functions["shop"]["package"] == "shop"

    (tmp_path / "main.py").write_text("def main():\n    return 'v2'\n")
    session.redeploy({str(tmp_path / "main.py")})
    assert "main.py: code only (dependencies reused), the new code answered 200 OK" in lines[-1]

    daemon.calls.clear()
    assert session.cleanup()
    assert daemon.calls == ["delete_function shop force=True", "delete_package shop"]
