"""faasd/tools/systemd.py: the unit and env file of `faasd install`, and install/uninstall under a temporary root."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from faasd.tools import systemd
from faasd.tools.systemd import ENV_PATH, UNIT_PATH


class Systemctl:
    """A stand-in for systemctl: records every command, answers as told."""

    def __init__(self, fail: dict[str, tuple[int, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail or {}

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        code, stderr = self.fail.get(" ".join(args), (0, ""))
        return subprocess.CompletedProcess(["systemctl", *args], code, "", stderr)


def run(
    command: str, args: list[str], *, euid: int = 0, systemd_here: bool = True, runner: Systemctl | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = systemd.main(command, args, out=out, err=err, euid=euid, systemd=systemd_here, run=runner or Systemctl())
    return code, out.getvalue(), err.getvalue()


# -- quoting ----------------------------------------------------------------------------------------

VALUES = [
    "plain",
    "/var/lib/faasd",
    "registry.local:5000/faasd",
    "",
    "two words",
    "it's",
    'say "hi"',
    "$HOME and ${X} and `id`",
    "back\\slash",
    "mixed 'single' \"double\" $dollar \\ `tick`",
    "#not a comment",
    "new\nline",
    "tab\there",
    "ünïcode",
]


@pytest.mark.parametrize("value", VALUES)
def test_a_quoted_value_reads_back_as_it_is_from_an_env_file_sourced_by_bash(tmp_path: Path, value: str) -> None:
    env = tmp_path / "faasd.env"
    env.write_text(systemd.render_env({"FAASD_TOKEN": value}))
    done = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; printf %s "$FAASD_TOKEN"', "bash", str(env)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.stdout == value


@pytest.mark.parametrize("value", VALUES)
def test_an_env_file_reads_back_as_written(value: str) -> None:
    assert systemd.parse_env(systemd.render_env({"FAASD_TOKEN": value, "FAASD_PORT": "9000"})) == {
        "FAASD_TOKEN": value,
        "FAASD_PORT": "9000",
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("A=x'y'\n", "x'y'"),  # a quote inside a bare value is plain
        ("A='a'b\n", "ab"),
        ("A = 'a' 'b'  \n", "ab"),
        ("A=a b  \n", "a b"),  # trailing blanks dropped, inner ones kept
        ("A=a\\\nb\n", "ab"),  # backslash-newline continues the line
        ('A="x\\y\\$z"\n', "x\\y$z"),  # in double quotes, \\ stays before a plain character
        ("# A=1\n; A=2\nA=3", "3"),
        ("A=", ""),
    ],
)
def test_env_files_are_read_as_systemd_reads_them(text: str, value: str) -> None:
    assert systemd.parse_env(text) == {"A": value}


def test_plain_values_are_bare_others_in_single_quotes_and_single_quotes_in_double_quotes() -> None:
    assert systemd.quote_env("0.0.0.0") == "0.0.0.0"
    assert systemd.quote_env("a b") == "'a b'"
    assert systemd.quote_env("$x") == "'$x'"  # verbatim in single quotes: no expansion anywhere
    assert systemd.quote_env("it's $x") == '"it\'s \\$x"'


def test_a_nul_cannot_be_written() -> None:
    with pytest.raises(ValueError):
        systemd.quote_env("a\0b")


# -- the unit and the env file ----------------------------------------------------------------------


def test_the_unit_runs_this_python_after_docker_and_gives_faasd_time_to_drain() -> None:
    unit = systemd.render_unit("/opt/faasd/bin/python", documentation="http://127.0.0.1:8080/v1/openapi.json")
    lines = unit.splitlines()
    for line in [
        "[Unit]",
        "Documentation=http://127.0.0.1:8080/v1/openapi.json",
        "After=network-online.target docker.service",
        "Wants=network-online.target docker.service",
        "[Service]",
        "Type=simple",
        "EnvironmentFile=/etc/faasd/faasd.env",
        "ExecStart=/opt/faasd/bin/python -m faasd",
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "LimitNOFILE=65536",
        "TimeoutStopSec=45",
        "[Install]",
        "WantedBy=multi-user.target",
    ]:
        assert line in lines
    assert any(line.startswith("Description=") for line in lines)


def test_a_python_path_with_blanks_or_percent_is_escaped_for_systemd() -> None:
    unit = systemd.render_unit("/home/a b/100%/$venv/bin/python")
    # (as `systemd-analyze verify` reads it: the program's path is not subject to $-expansion)
    assert 'ExecStart="/home/a b/100%%/$venv/bin/python" -m faasd' in unit.splitlines()


def test_the_env_file_holds_the_flags_given_and_the_state_dir(tmp_path: Path) -> None:
    given = systemd.build_parser("install").parse_args(["--port", "9000", "--host", "0.0.0.0", "--metrics-public"])
    assert systemd.env_values(given) == {
        "FAASD_STATE_DIR": "/var/lib/faasd",
        "FAASD_HOST": "0.0.0.0",
        "FAASD_PORT": "9000",
        "FAASD_METRICS_PUBLIC": "true",
    }
    given = systemd.build_parser("install").parse_args(["--state-dir", "data/../state"])
    assert systemd.env_values(given, cwd=str(tmp_path)) == {"FAASD_STATE_DIR": str(tmp_path / "state")}


def test_the_documentation_url_is_the_daemons_own_api_description() -> None:
    assert systemd.documentation_url({}) == "http://127.0.0.1:8080/v1/openapi.json"
    assert systemd.documentation_url({"FAASD_HOST": "::", "FAASD_PORT": "9000"}) == "http://[::1]:9000/v1/openapi.json"


# -- the command: printing, refusing ----------------------------------------------------------------


def test_print_shows_both_files_and_needs_no_root(tmp_path: Path) -> None:
    code, out, err = run("install", ["--print", "--port", "9000", "--root", str(tmp_path)], euid=1000)
    assert (code, err) == (0, "")
    assert f"# {UNIT_PATH}\n[Unit]" in out
    assert f"ExecStart={sys.executable} -m faasd" in out
    assert "FAASD_PORT=9000\n" in out and "FAASD_STATE_DIR=/var/lib/faasd\n" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["install", "uninstall"])
def test_a_user_other_than_root_is_refused_in_one_line(tmp_path: Path, command: str) -> None:
    code, out, err = run(command, ["--root", str(tmp_path)], euid=1000)
    assert (code, out) == (1, "")
    assert err.startswith(f"faasd {command} must run as root (sudo ")
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_without_systemd_install_writes_nothing_and_prints_the_files(tmp_path: Path) -> None:
    runner = Systemctl()
    code, out, err = run("install", ["--root", str(tmp_path)], systemd_here=False, runner=runner)
    assert code == 0
    assert len(err.splitlines()) == 1 and "systemd is not running" in err
    assert "[Service]" in out and "FAASD_STATE_DIR=/var/lib/faasd" in out
    assert list(tmp_path.iterdir()) == [] and runner.calls == []


def test_without_systemd_uninstall_says_so(tmp_path: Path) -> None:
    code, out, _ = run("uninstall", ["--root", str(tmp_path)], systemd_here=False)
    assert code == 0 and "systemd is not running" in out


def test_a_value_faasd_would_refuse_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        run("install", ["--port", "http"])
    assert stopped.value.code == 2
    assert "faasd install: error: --port: 'http' is not a valid int" in capsys.readouterr().err


def test_systemctl_sees_nothing_of_a_staging_root(tmp_path: Path) -> None:
    runner = Systemctl()
    code, out, _ = run("install", ["--root", str(tmp_path), "--port", "9000"], runner=runner)
    assert code == 0 and runner.calls == []
    assert "not started" in out
    unit, env = systemd.under(tmp_path, UNIT_PATH), systemd.under(tmp_path, ENV_PATH)
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert systemd.parse_env(env.read_text()) == {"FAASD_STATE_DIR": "/var/lib/faasd", "FAASD_PORT": "9000"}
    code, out, _ = run("uninstall", ["--root", str(tmp_path)], runner=runner)
    assert code == 0 and runner.calls == []
    assert not unit.exists() and not env.exists() and not env.parent.exists()


# -- install and uninstall with systemctl -----------------------------------------------------------


def install(tmp_path: Path, values: dict[str, str], runner: Systemctl) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = systemd.install(values, "/usr/bin/python3", tmp_path, runner, out, err)
    return code, out.getvalue(), err.getvalue()


def uninstall(tmp_path: Path, runner: Systemctl) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = systemd.uninstall(tmp_path, runner, out, err)
    return code, out.getvalue(), err.getvalue()


STATE = {"FAASD_STATE_DIR": "/srv/faasd"}


def test_install_writes_both_files_then_reloads_and_enables_now(tmp_path: Path) -> None:
    runner = Systemctl()
    code, out, _ = install(tmp_path, {**STATE, "FAASD_TOKEN": "s3cret"}, runner)
    assert code == 0
    assert runner.calls == [["daemon-reload"], ["enable", "--now", "faasd"]]
    assert "journalctl -u faasd -f" in out
    assert "FAASD_TOKEN" in out and "s3cret" not in out  # said where it is, not what it is
    assert "ExecStart=/usr/bin/python3 -m faasd" in systemd.under(tmp_path, UNIT_PATH).read_text()


def test_the_output_says_where_the_token_will_be(tmp_path: Path) -> None:
    _, out, _ = install(tmp_path, STATE, Systemctl())
    assert "/srv/faasd/token" in out


def test_a_reinstall_with_new_settings_restarts_faasd_and_one_without_does_not(tmp_path: Path) -> None:
    install(tmp_path, STATE, Systemctl())
    runner = Systemctl()
    install(tmp_path, {**STATE, "FAASD_PORT": "9000"}, runner)
    assert runner.calls[-1] == ["restart", "faasd"]
    runner = Systemctl()
    _, out, _ = install(tmp_path, {**STATE, "FAASD_PORT": "9000"}, runner)
    assert ["restart", "faasd"] not in runner.calls
    assert f"unchanged {systemd.under(tmp_path, UNIT_PATH)}" in out


def test_a_failing_systemctl_is_an_exit_code_of_1_naming_the_step(tmp_path: Path) -> None:
    runner = Systemctl({"enable --now faasd": (1, "Job for faasd.service failed.")})
    code, _, err = install(tmp_path, STATE, runner)
    assert code == 1
    assert "systemctl enable --now faasd failed: Job for faasd.service failed." in err


def test_uninstall_disables_removes_reloads_and_keeps_the_state_dir(tmp_path: Path) -> None:
    install(tmp_path, STATE, Systemctl())
    runner = Systemctl()
    code, out, _ = uninstall(tmp_path, runner)
    assert code == 0
    assert runner.calls == [["disable", "--now", "faasd"], ["daemon-reload"]]
    assert not systemd.under(tmp_path, UNIT_PATH).exists() and not systemd.under(tmp_path, ENV_PATH).exists()
    assert "kept the state dir /srv/faasd" in out


def test_uninstall_goes_on_when_the_unit_was_not_loaded(tmp_path: Path) -> None:
    install(tmp_path, STATE, Systemctl())
    runner = Systemctl({"disable --now faasd": (1, "Failed to stop faasd.service: Unit faasd.service not loaded.")})
    code, _, _ = uninstall(tmp_path, runner)
    assert code == 0 and not systemd.under(tmp_path, UNIT_PATH).exists()


def test_uninstall_stops_when_systemctl_fails_otherwise(tmp_path: Path) -> None:
    install(tmp_path, STATE, Systemctl())
    runner = Systemctl({"disable --now faasd": (1, "Failed to connect to bus")})
    code, _, err = uninstall(tmp_path, runner)
    assert code == 1 and "Failed to connect to bus" in err
    assert systemd.under(tmp_path, UNIT_PATH).exists()


def test_uninstall_with_nothing_installed_says_so(tmp_path: Path) -> None:
    runner = Systemctl()
    code, out, _ = uninstall(tmp_path, runner)
    assert code == 0 and "not installed" in out and runner.calls == []


def test_uninstall_leaves_other_files_in_etc_faasd(tmp_path: Path) -> None:
    install(tmp_path, STATE, Systemctl())
    (systemd.under(tmp_path, ENV_PATH).parent / "notes").write_text("mine")
    uninstall(tmp_path, Systemctl())
    assert (systemd.under(tmp_path, ENV_PATH).parent / "notes").read_text() == "mine"


def test_systemd_is_running_only_with_its_directory_and_systemctl(tmp_path: Path) -> None:
    assert not systemd.systemd_running(tmp_path / "missing", lambda name: "/usr/bin/systemctl")
    assert not systemd.systemd_running(tmp_path, lambda name: None)
    assert systemd.systemd_running(tmp_path, lambda name: "/usr/bin/systemctl")
