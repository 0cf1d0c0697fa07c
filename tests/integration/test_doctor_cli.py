"""`faasd doctor` and `faasd install` as a user runs them: `python -m faasd ...` against the real engine."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.harness import ROOT, free_port

pytestmark = pytest.mark.docker

STATUSES = ("ok   ", "WARN ", "FAIL ")
FIX = "     fix: "


def environ(**extra: str) -> dict[str, str]:
    """This environment without faasd's settings (they would change what is checked), plus ``extra``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FAASD_")}
    return {**clean, **extra}


def faasd(
    *args: str, env: dict[str, str] | None = None, user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "faasd", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env or environ(),
        check=False,
    )


def lines_of(output: str) -> list[str]:
    """The check lines of doctor's text (a fix line belongs to the line above it)."""
    lines = output.splitlines()
    for line in lines:
        assert line.startswith(STATUSES) or line.startswith(FIX), f"not a doctor line: {line!r}"
    return [line for line in lines if not line.startswith(FIX)]


def line_of(output: str, check: str) -> str:
    [line] = [line for line in lines_of(output) if line[5:].startswith(f"{check}: ")]
    return line


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def doctor(
    state_dir: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return faasd("doctor", "--state-dir", str(state_dir), "--port", str(port), *args, env=env)


def test_doctor_on_this_machine_passes_and_names_the_engine(state_dir: Path) -> None:
    engine = docker.from_env(timeout=5)
    try:
        server = engine.version()["Version"]
    finally:
        engine.close()
    done = doctor(state_dir, free_port())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    names = [line[5:].split(":")[0] for line in lines_of(done.stdout)]
    assert names[0] == "engine" and {"images", "state dir", "token", "port", "firewall", "python"} <= set(names)
    assert line_of(done.stdout, "engine").startswith(f"ok   engine: Docker {server} (API ")
    assert line_of(done.stdout, "state dir").startswith(f"ok   state dir: {state_dir}: writable by ")
    assert line_of(done.stdout, "token") == f"ok   token: {state_dir / 'token'}: made on the first start (mode 0600)"
    assert not (state_dir / "token").exists() and list(state_dir.iterdir()) == []  # doctor changes nothing


def test_doctor_json_is_the_same_checks(state_dir: Path) -> None:
    port = free_port()
    rows = json.loads(doctor(state_dir, port, "-o", "json").stdout)
    assert {"check", "status", "detail", "fix"} == set(rows[0])
    assert [row["check"] for row in rows][:2] == ["engine", "images"]
    assert {row["status"] for row in rows} <= {"ok", "warn", "fail"}
    assert {"check": "port", "status": "ok", "detail": f"127.0.0.1:{port} is free", "fix": None} in rows


def test_an_engine_that_does_not_answer_fails_naming_its_address(state_dir: Path) -> None:
    address = "unix:///nonexistent/docker.sock"
    done = doctor(state_dir, free_port(), env=environ(DOCKER_HOST=address))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert line_of(done.stdout, "engine").startswith(f"FAIL engine: cannot reach the Docker engine at {address}")
    assert "systemctl start docker" in done.stdout
    assert line_of(done.stdout, "images") == "WARN images: skipped: engine unreachable"


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port that a plain socket of this test holds (it listens, and never answers)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_a_port_held_by_another_program_fails_naming_the_port(state_dir: Path, held_port: int) -> None:
    done = doctor(state_dir, held_port)
    assert done.returncode == 1
    assert line_of(done.stdout, "port") == f"FAIL port: port {held_port} on 127.0.0.1 is in use by another program"
    assert "--port" in done.stdout and "Traceback" not in done.stderr


def test_a_token_others_can_read_fails_naming_the_file(state_dir: Path) -> None:
    token = state_dir / "token"
    token.write_text("secret\n")
    token.chmod(0o644)
    done = doctor(state_dir, free_port())
    assert done.returncode == 1
    assert line_of(done.stdout, "token").startswith(f"FAIL token: {token} has mode 0644")
    assert f"     fix: chmod 600 {token}" in done.stdout.splitlines()


def test_a_bad_setting_is_refused_as_faasd_refuses_it() -> None:
    done = faasd("doctor", "--firewall", "maybe", env=environ())
    assert done.returncode == 2
    assert "faasd doctor: error: --firewall must be auto, on or off" in done.stderr


# -- install ----------------------------------------------------------------------------------------


def systemd_here() -> bool:
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def test_install_as_root_writes_nothing_without_systemd_and_prints_the_files(tmp_path: Path) -> None:
    """Where systemd runs, a real install is not for a test: --print shows the same files."""
    assert os.geteuid() == 0, "the integration suite runs as root (make test)"
    args = ["install", "--root", str(tmp_path), "--port", "9000", "--host", "0.0.0.0"]
    running = systemd_here()
    done = faasd(*args, "--print") if running else faasd(*args)
    assert done.returncode == 0, done.stderr
    if running:
        assert done.stderr == ""
    else:
        assert len(done.stderr.splitlines()) == 1 and "systemd is not running" in done.stderr
    assert list(tmp_path.iterdir()) == []
    assert "# /etc/systemd/system/faasd.service\n[Unit]" in done.stdout
    assert f"ExecStart={sys.executable} -m faasd" in done.stdout.splitlines()
    assert "EnvironmentFile=/etc/faasd/faasd.env" in done.stdout.splitlines()
    for line in ("FAASD_STATE_DIR=/var/lib/faasd", "FAASD_HOST=0.0.0.0", "FAASD_PORT=9000"):
        assert line in done.stdout.splitlines()


def test_uninstall_as_root_says_what_it_found(tmp_path: Path) -> None:
    """Without systemd it says so; with it, an empty --root holds nothing to uninstall."""
    done = faasd("uninstall", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    expected = "not installed here" if systemd_here() else "systemd is not running"
    assert expected in done.stdout


@pytest.mark.parametrize("command", ["install", "uninstall"])
def test_install_as_another_user_is_refused_or_given_the_files(tmp_path: Path, command: str) -> None:
    # nobody, without groups; CAP_DAC_READ_SEARCH only so that it can read this Python wherever it is
    # installed (under /root here): it stays a user other than root.
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to run a command as another user"
    user = [
        setpriv,
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]
    done = faasd(command, "--root", str(tmp_path), env=environ(HOME=str(tmp_path)), user=user)
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        assert done.returncode == 1
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"faasd {command} must run as root (sudo ")
    else:
        # No systemd here: whoever asks is told so (install: with the two files to place by hand).
        assert done.returncode == 0
        said = done.stderr if command == "install" else done.stdout
        assert "systemd is not running here" in said
        if command == "install":
            assert "[Unit]" in done.stdout and "ExecStart=" in done.stdout
