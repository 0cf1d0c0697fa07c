"""`faas fn versions` and `faas fn rollback`: a function's kept versions, and going back to one.

The fake daemon of test_cli_events records each request and answers from a script.
"""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from faas_cli.commands.versions import COLUMNS, changes, with_changes
from faas_cli.main import app
from tests.unit import test_cli_events as events
from tests.unit.test_cli_events import FakeDaemon, error, run, table

# The fake daemon fixture, under its own name (an assignment, so tests may take it as an argument).
daemon = events.daemon

VERSIONS = "/v1/functions/greet/versions"
ROLLBACK = "/v1/functions/greet/rollback"
SHA = ["a" * 64, "b" * 64, "c" * 64]


def settings(**changed: Any) -> dict[str, Any]:
    base = {
        "environment": "python",
        "filename": "greet.py",
        "entrypoint": "main",
        "timeout": 60,
        "env": {},
        "secrets": ["TOKEN"],
        "memory_mb": 256,
        "package": "",
    }
    return {**base, **changed}


def version(number: int, sha: str, size: int = 120, **changed: Any) -> dict[str, Any]:
    return {
        "function": "greet",
        "version": number,
        "created_at": f"2026-11-30T10:0{number}:00Z",
        "code_sha256": sha,
        "code_size": size,
        "settings": settings(**changed),
    }


def three() -> list[dict[str, Any]]:
    """Newest first: v3 changed the code, v2 the timeout and the variables."""
    return [
        version(3, SHA[2], 130, timeout=30, env={"A": "1"}),
        version(2, SHA[0], 120, timeout=30, env={"A": "1"}),
        version(1, SHA[0], 120),
    ]


def fission(daemon: FakeDaemon, *args: str) -> Result:
    env = {"FAAS_URL": None, "FAAS_TOKEN": "t", "FISSION_URL": daemon.url, "FISSION_ROUTER": None, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), prog_name="fission", env=env)


# -- versions -----------------------------------------------------------------------------------


def test_versions_lists_each_with_its_code_size_and_what_it_changed(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))

    result = run(daemon, "fn", "versions", "--name", "greet")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["VERSION", "CREATED", "CODE", "SIZE", "CHANGES"]
    rows = table(result.stdout)
    assert [(r["VERSION"], r["CODE"], r["SIZE"], r["CHANGES"]) for r in rows] == [
        ("3", "c" * 12, "130", "code"),
        ("2", "a" * 12, "120", "timeout, env"),
        ("1", "a" * 12, "120", "created"),
    ]
    assert rows[0]["CREATED"] == "2026-11-30T10:03:00Z"


def test_versions_as_function_too(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))

    assert run(daemon, "function", "versions", "--name", "greet").exit_code == 0
    assert [s.path for s in daemon.sent] == [VERSIONS]


def test_versions_json_is_the_daemons_list(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))

    result = run(daemon, "fn", "versions", "--name", "greet", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == three()


def test_a_version_whose_listed_settings_did_not_change_changed_a_secrets_value() -> None:
    new, old = version(5, SHA[1]), version(4, SHA[1])
    assert changes(new, old) == "secret values"


def test_a_package_and_entrypoint_change_is_named_and_a_package_function_shows_no_code() -> None:
    new = version(3, "", 0, package="shop-pkg", entrypoint="main.main", filename="")
    old = version(2, SHA[0])
    assert changes(new, old) == "code, filename, entrypoint, package"
    shown = with_changes([new, old])
    assert [column.value(shown[0]) for column in COLUMNS][2:4] == ["-", "-"]


def test_the_oldest_kept_version_past_1_has_no_change_to_show() -> None:
    shown = with_changes([version(4, SHA[1]), version(5, SHA[2])])
    assert [(v["version"], v["_changes"]) for v in shown] == [(5, "code"), (4, "-")]


def test_versions_of_an_unknown_function_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, error(404, "function 'greet' not found"))

    result = run(daemon, "fn", "versions", "--name", "greet")

    assert result.exit_code == 1
    assert result.stderr == "error: function 'greet' not found\n"


def test_fission_fn_versions(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))

    result = fission(daemon, "fn", "versions", "--name", "greet", "-o", "wide")

    assert result.exit_code == 0, result.output
    assert [r["VERSION"] for r in table(result.stdout)] == ["3", "2", "1"]


# -- rollback -----------------------------------------------------------------------------------


def rolled_back(now: int) -> tuple[int, dict[str, Any]]:
    return 200, {"name": "greet", "environment": "python", "version": now}


def test_rollback_to_a_version(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))
    daemon.answer("POST", ROLLBACK, rolled_back(4))

    result = run(daemon, "fn", "rollback", "--name", "greet", "--to", "1")

    assert result.exit_code == 0, result.output
    assert result.stdout == "function 'greet' rolled back to version 1's code and settings (now version 4)\n"
    assert daemon.requests("POST", ROLLBACK)[0].body == {"to": 1}


def test_rollback_without_to_goes_back_to_the_version_before_the_newest(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))
    daemon.answer("POST", ROLLBACK, rolled_back(4))

    result = run(daemon, "fn", "rollback", "--name", "greet")

    assert result.exit_code == 0, result.output
    assert result.stdout == "function 'greet' rolled back to version 2's code and settings (now version 4)\n"
    assert daemon.requests("POST", ROLLBACK)[0].body == {"to": 2}


def test_rollback_to_what_the_function_is_already_says_so(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))
    daemon.answer("POST", ROLLBACK, rolled_back(3))

    result = run(daemon, "fn", "rollback", "--name", "greet", "--to", "3")

    assert result.exit_code == 0, result.output
    assert result.stdout == "function 'greet' already has version 3's code and settings (still version 3)\n"


def test_rollback_of_a_single_version_is_the_daemons_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": [version(1, SHA[0])]}))
    message = "function 'greet' has only version 1: there is no earlier version to roll back to"
    daemon.answer("POST", ROLLBACK, error(400, message))

    result = run(daemon, "fn", "rollback", "--name", "greet")

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"
    assert daemon.requests("POST", ROLLBACK)[0].body == {}  # no "to": the daemon picks, and says why it cannot


def test_rollback_to_a_version_not_kept_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))
    message = "function 'greet' has no version 9: it keeps 1 to 3 (the last 10: --keep-versions)"
    daemon.answer("POST", ROLLBACK, error(404, message))

    result = run(daemon, "fn", "rollback", "--name", "greet", "--to", "9")

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


def test_rollback_whose_environment_is_gone_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))
    message = "version 1 of function 'greet' runs in environment 'py2', which no longer exists"
    daemon.answer("POST", ROLLBACK, (409, {"error": {"code": "conflict", "message": message}}))

    result = run(daemon, "fn", "rollback", "--name", "greet", "--to", "1")

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


def test_rollback_of_an_unknown_function_asks_nothing_more(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, error(404, "function 'greet' not found"))

    result = run(daemon, "fn", "rollback", "--name", "greet", "--to", "1")

    assert result.exit_code == 1
    assert result.stderr == "error: function 'greet' not found\n"
    assert daemon.requests("POST") == []


def test_rollback_to_0_is_a_usage_error(daemon: FakeDaemon) -> None:
    result = run(daemon, "fn", "rollback", "--name", "greet", "--to", "0")

    assert result.exit_code == 2
    assert daemon.sent == []


def test_fission_fn_rollback(daemon: FakeDaemon) -> None:
    daemon.answer("GET", VERSIONS, (200, {"items": three()}))
    daemon.answer("POST", ROLLBACK, rolled_back(4))

    result = fission(daemon, "fn", "rollback", "--name", "greet", "--to", "1")

    assert result.exit_code == 0, result.output
    assert "rolled back to version 1's" in result.stdout
