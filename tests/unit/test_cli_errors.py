"""Every failure is one line `error: ...` on stderr and exit code 1; usage errors stay exit 2."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from faas_cli.client import FaasClient, error_message, is_loopback
from faas_cli.errors import ApiError, CliError, DaemonUnreachable, error_line
from faas_cli.main import app

CLEAN_ENV: dict[str, str | None] = {"FAAS_URL": None, "FAAS_TOKEN": None}


@pytest.fixture
def closed_server() -> str:
    """The URL of a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**CLEAN_ENV, **(env or {})})


def test_an_unreachable_daemon_is_one_line_with_the_way_to_start_it(closed_server: str) -> None:
    result = run("--server", closed_server, "env", "list")

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot reach faasd at {closed_server} (connection refused); start it with 'make run' or 'faasd'\n"
    )
    assert result.stdout == ""


def test_faas_url_names_the_daemon(closed_server: str) -> None:
    result = run("status", env={"FAAS_URL": closed_server + "/"})

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach faasd at {closed_server} (")


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("env", "create", "--name", "n"),
        ("env", "get", "--name", "n", "-o", "json"),
        ("function", "list"),
        ("fn", "get", "--name", "f"),
        ("fn", "test", "--name", "f", "-X", "POST", "-b", "{}", "-H", "A: b"),
        ("route", "list", "--function", "f"),
        ("httptrigger", "delete", "--name", "t"),
    ],
)
def test_every_kind_of_command_reports_an_unreachable_daemon_the_same_way(
    closed_server: str, args: tuple[str, ...]
) -> None:
    result = run("--server", closed_server, *args)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: cannot reach faasd")
    assert not isinstance(result.exception, CliError)


def test_a_missing_code_file_is_reported_before_the_daemon_is_asked(
    closed_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run(
        "--server", closed_server, "function", "create", "--name", "x", "--env", "node",
        "--code", "x.js",
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == "error: code file 'x.js' not found\n"


def test_deploy_of_a_missing_file_is_one_line(closed_server: str, tmp_path: Path) -> None:
    missing = tmp_path / "gone.py"

    result = run("--server", closed_server, "deploy", str(missing), "--env", "python")

    assert result.exit_code == 1
    assert result.stderr == f"error: code file '{missing}' not found\n"


def test_an_update_with_nothing_to_change_is_refused_without_asking(closed_server: str) -> None:
    result = run("--server", closed_server, "route", "update", "--name", "r")

    assert result.exit_code == 1
    assert result.stderr == "error: nothing to update; give --method, --url or --function\n"


def test_a_malformed_server_url_is_one_line_but_help_still_works() -> None:
    result = run("--server", "localhost:8080", "env", "list")

    assert result.exit_code == 1
    assert result.stderr == ("error: invalid server URL 'localhost:8080'; expected one like http://127.0.0.1:8080\n")
    assert run("env", "list", "--help", env={"FAAS_URL": "nonsense"}).exit_code == 0


def test_usage_errors_are_typers_own_with_exit_code_2() -> None:
    result = run("env", "create")

    assert result.exit_code == 2
    assert "--name" in result.output


def test_every_command_turns_cli_errors_into_exit_1() -> None:
    def commands(typer_app: typer.Typer) -> Iterator[str]:
        for info in typer_app.registered_commands:
            assert info.callback is not None
            if not getattr(info.callback, "__reports_errors__", False):
                yield info.callback.__name__
        for group in typer_app.registered_groups:
            assert group.typer_instance is not None
            yield from commands(group.typer_instance)

    assert list(commands(app)) == []


def test_error_lines_are_single_lines() -> None:
    assert error_line(CliError("function 'f' not found")) == "error: function 'f' not found"
    assert error_line(CliError("a\n  b\r\nc")) == "error: a b c"
    assert error_line(CliError("")) == "error: unknown error"


def test_the_daemons_json_error_message_is_what_the_user_reads() -> None:
    body = b'{"error": {"code": "conflict", "message": "route GET /hi already exists"}}'

    assert error_message(409, "Conflict", body) == ("conflict", "route GET /hi already exists")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "HTTP 502 Bad Gateway"),
        (b"<html>\n<h1>proxy error</h1>", "HTTP 502 Bad Gateway: <html>"),
        (b'{"error": "flat string"}', 'HTTP 502 Bad Gateway: {"error": "flat string"}'),
        (b'{"error": {"code": "x", "message": ""}}', "HTTP 502 Bad Gateway: "),
    ],
)
def test_an_error_without_faasds_shape_shows_the_status_and_first_line(body: bytes, message: str) -> None:
    code, text = error_message(502, "Bad Gateway", body)

    assert code == ""
    assert text.startswith(message)


def test_api_errors_keep_their_status_for_callers_that_branch_on_it() -> None:
    error = ApiError(404, "not_found", "function 'f' not found")

    assert (error.status, error.code, error.message) == (404, "not_found", "function 'f' not found")
    assert isinstance(error, CliError)


def test_only_a_refused_connection_suggests_starting_the_daemon() -> None:
    assert "make run" in DaemonUnreachable("http://h:1", "connection refused").message
    assert "make run" not in DaemonUnreachable("http://h:1", "unknown host").message


def test_proxies_are_skipped_only_for_this_machine() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("localhost")
    assert is_loopback("[::1]")
    assert not is_loopback("faasd.example.com")
    assert not is_loopback("10.0.0.5")


def test_server_urls_lose_their_trailing_slash() -> None:
    assert FaasClient("http://127.0.0.1:8080/").server == "http://127.0.0.1:8080"
    with pytest.raises(CliError, match="invalid server URL"):
        FaasClient("ftp://x")
