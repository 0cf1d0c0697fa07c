"""faasd/tools/doctor.py: each check of `faasd doctor` on temporary paths and sockets, and its output."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
import urllib3.exceptions

from faasd.core.database import database_url
from faasd.core.recipes import BUILDER, RUNTIME, Recipe
from faasd.core.settings import Settings, load_settings
from faasd.store.database import migrate
from faasd.tools import doctor, systemd
from faasd.tools.doctor import FAIL, OK, WARN, Check, check_database
from tests.postgres import free_port

# -- the engine -------------------------------------------------------------------------------------

VERSION = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41"}
INFO = {"CgroupVersion": "2", "CgroupDriver": "systemd", "Driver": "overlay2"}


class FakeClient:
    def __init__(self, version: dict[str, Any] = VERSION) -> None:
        self._version = version
        self.closed = False

    def ping(self) -> bool:
        return True

    def version(self) -> dict[str, Any]:
        return self._version

    def info(self) -> dict[str, Any]:
        return INFO

    def close(self) -> None:
        self.closed = True


def sdk_error(cause: OSError) -> docker.errors.DockerException:
    """What docker.from_env raises: the OSError wrapped by urllib3, requests and the SDK, as they do."""
    try:
        try:
            try:
                raise urllib3.exceptions.ProtocolError("Connection aborted.", cause)
            except urllib3.exceptions.ProtocolError as protocol:
                raise requests.exceptions.ConnectionError(protocol) from protocol
        except requests.exceptions.ConnectionError as connection:
            raise docker.errors.DockerException(
                f"Error while fetching server API version: {connection.args[0]}"
            ) from connection
    except docker.errors.DockerException as exc:
        return exc


def test_a_reachable_engine_is_named_with_its_versions_cgroups_and_storage() -> None:
    client = FakeClient()
    check, got = doctor.check_engine(lambda: client, "unix:///var/run/docker.sock")  # type: ignore[arg-type,return-value]
    assert got is client
    assert check == Check(
        "engine",
        OK,
        "Docker 20.10.24+dfsg1 (API 1.41) at unix:///var/run/docker.sock; cgroup v2 (systemd), storage overlay2",
    )


@pytest.mark.parametrize(("raw", "parsed"), [("20.10.24+dfsg1", (20, 10)), ("v27.3.1", (27, 3)), ("dev", None)])
def test_engine_versions_are_read_from_their_first_two_numbers(raw: str, parsed: tuple[int, int] | None) -> None:
    assert doctor.engine_version(raw) == parsed


def test_an_engine_older_than_20_10_fails() -> None:
    check = doctor.describe_engine("unix:///x.sock", {"Version": "19.03.15", "ApiVersion": "1.40"}, INFO)
    assert check.status == FAIL
    assert "19.03.15" in check.detail and "older than 20.10" in check.detail
    assert "upgrade" in check.fix


def test_an_engine_without_a_readable_version_is_a_warning() -> None:
    assert doctor.describe_engine("unix:///x.sock", {"Version": "master"}, INFO).status == WARN


def test_no_socket_fails_naming_the_address_and_how_to_start_the_engine() -> None:
    def connect() -> Any:
        raise sdk_error(FileNotFoundError(2, "No such file or directory"))

    check, client = doctor.check_engine(connect, "unix:///nonexistent/docker.sock")
    assert client is None
    assert check.status == FAIL
    assert check.detail == "cannot reach the Docker engine at unix:///nonexistent/docker.sock: no socket there " + (
        "(no such file or directory)"
    )
    assert "systemctl start docker" in check.fix and "dockerd" in check.fix


def test_a_refused_connection_is_said_so() -> None:
    def connect() -> Any:
        raise sdk_error(ConnectionRefusedError(111, "Connection refused"))

    check, _ = doctor.check_engine(connect, "tcp://127.0.0.1:2375")
    assert check.detail.endswith("at tcp://127.0.0.1:2375: connection refused")


def test_permission_denied_on_the_socket_names_the_docker_group_and_root() -> None:
    def connect() -> Any:
        raise sdk_error(PermissionError(13, "Permission denied"))

    check, _ = doctor.check_engine(connect, "unix:///var/run/docker.sock")
    assert check.status == FAIL
    assert "permission denied" in check.detail
    assert "docker group" in check.fix and "root" in check.fix


def test_an_error_without_an_os_error_underneath_keeps_its_message() -> None:
    def connect() -> Any:
        raise docker.errors.DockerException("Invalid bind address protocol: bogus://x")

    check, _ = doctor.check_engine(connect, "bogus://x")
    assert check.detail == "cannot reach the Docker engine at bogus://x: Invalid bind address protocol: bogus://x"


def test_the_engine_address_is_docker_host_or_the_default_socket() -> None:
    assert doctor.engine_address({}) == "unix:///var/run/docker.sock"
    assert doctor.engine_address({"DOCKER_HOST": "tcp://10.0.0.1:2376"}) == "tcp://10.0.0.1:2376"


# -- images -----------------------------------------------------------------------------------------


def recipe(tmp_path: Path, kind: str, name: str, base: str) -> Recipe:
    directory = tmp_path / f"{kind}-{name}"
    directory.mkdir()
    (directory / "Dockerfile").write_text(f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\n")
    return Recipe(kind, name, directory, "python3")


@pytest.fixture
def recipes(tmp_path: Path) -> list[Recipe]:
    return [
        recipe(tmp_path, RUNTIME, "python", "python:3.12-slim-bookworm"),
        recipe(tmp_path, BUILDER, "python", "python:3.12-slim-bookworm"),
    ]


def test_all_images_built_is_ok_naming_them(recipes: list[Recipe]) -> None:
    [check] = doctor.check_images(recipes, lambda reference: True, mmdebstrap=False)
    assert check.status == OK
    assert all(r.reference in check.detail for r in recipes)


def test_missing_images_are_a_warning_not_a_failure(recipes: list[Recipe]) -> None:
    here = {recipes[0].reference, "python:3.12-slim-bookworm"}
    [check] = doctor.check_images(recipes, here.__contains__, mmdebstrap=False)
    assert check.status == WARN
    assert check.detail == f"not built yet: {recipes[1].reference}"
    assert "first start" in check.fix and "faasd images build" in check.fix


@pytest.mark.parametrize("local_base_here", [True, False])
def test_a_local_debian_base_or_mmdebstrap_is_enough_to_build(recipes: list[Recipe], local_base_here: bool) -> None:
    here = {r.local_base for r in recipes} if local_base_here else set()
    checks = doctor.check_images(recipes, here.__contains__, mmdebstrap=not local_base_here)
    assert [check.status for check in checks] == [WARN]


def test_with_no_base_at_hand_the_first_start_needs_a_registry(recipes: list[Recipe]) -> None:
    checks = doctor.check_images(recipes, lambda reference: False, mmdebstrap=False)
    assert [check.status for check in checks] == [WARN, WARN]
    assert "registry" in checks[1].detail and "python:3.12-slim-bookworm" in checks[1].detail
    assert "mmdebstrap" in checks[1].fix


def test_the_images_check_is_skipped_without_an_engine() -> None:
    [check] = doctor.engine_images(Settings(), None)
    assert (check.status, check.detail) == (WARN, "skipped: engine unreachable")


# -- the state dir and the token --------------------------------------------------------------------


def test_a_writable_state_dir_is_ok(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    check = doctor.check_state_dir(tmp_path)
    assert check.status == OK and str(tmp_path) in check.detail
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


def test_a_state_dir_to_come_is_ok_when_its_nearest_parent_is_writable(tmp_path: Path) -> None:
    check = doctor.check_state_dir(tmp_path / "a" / "b")
    assert check == Check("state dir", OK, f"{tmp_path / 'a' / 'b'}: will be created")


def test_a_relative_state_dir_is_shown_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert doctor.check_state_dir(Path("./.faasd")).detail == f"{tmp_path / '.faasd'}: will be created"


def test_a_state_dir_that_is_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    assert doctor.check_state_dir(tmp_path / "state").status == FAIL
    assert doctor.check_state_dir(tmp_path / "state" / "below").status == FAIL


def test_a_state_dir_that_cannot_be_written_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_cannot_write", lambda directory: "Permission denied")
    check = doctor.check_state_dir(tmp_path)
    assert check.status == FAIL and "not writable" in check.detail and "--state-dir" in check.fix
    check = doctor.check_state_dir(tmp_path / "new")
    assert check.status == FAIL and "mkdir -p" in check.fix


def test_a_world_writable_state_dir_is_a_warning(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    check = doctor.check_state_dir(tmp_path)
    assert check.status == WARN and "0777" in check.detail
    assert check.fix == f"chmod 700 {tmp_path}"


def test_no_token_yet_is_ok(tmp_path: Path) -> None:
    assert doctor.check_token(tmp_path) == Check(
        "token", OK, f"{tmp_path / 'token'}: made on the first start (mode 0600)"
    )


def test_a_token_of_mode_0600_is_ok(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    token.chmod(0o600)
    assert doctor.check_token(tmp_path) == Check("token", OK, f"{token}: mode 0600")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_token_others_can_read_or_change_fails_with_chmod(tmp_path: Path, mode: int) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    token.chmod(mode)
    check = doctor.check_token(tmp_path)
    assert check.status == FAIL and f"{mode:04o}" in check.detail and str(token) in check.detail
    assert check.fix == f"chmod 600 {token}"


def test_an_empty_token_fails(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    token.chmod(0o600)
    check = doctor.check_token(tmp_path)
    assert check.status == FAIL and "empty" in check.detail and check.fix.endswith(f"rm {token}")


@pytest.mark.parametrize("kind", ["dir", "symlink"])
def test_a_token_that_is_not_a_regular_file_fails(tmp_path: Path, kind: str) -> None:
    if kind == "dir":
        (tmp_path / "token").mkdir()
    else:
        (tmp_path / "elsewhere").write_text("secret")
        (tmp_path / "token").symlink_to(tmp_path / "elsewhere")
    assert doctor.check_token(tmp_path).status == FAIL


def test_a_token_given_as_a_setting_leaves_the_file_alone(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("")
    assert doctor.check_token(tmp_path, given=True).status == OK


# -- the port ---------------------------------------------------------------------------------------


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port held by a listening socket of this test's own."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_a_free_port_is_ok() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    assert doctor.check_port("127.0.0.1", port) == Check("port", OK, f"127.0.0.1:{port} is free")


def test_a_port_in_use_by_another_program_fails_naming_the_port_and_the_flag(held_port: int) -> None:
    check = doctor.check_port("127.0.0.1", held_port, serving=lambda host, port: False)
    assert check.status == FAIL
    assert check.detail == f"port {held_port} on 127.0.0.1 is in use by another program"
    assert "--port" in check.fix and "FAASD_PORT" in check.fix


def test_a_port_in_use_by_a_faasd_is_ok(held_port: int) -> None:
    check = doctor.check_port(
        "127.0.0.1", held_port, serving=lambda host, port: (host, port) == ("127.0.0.1", held_port)
    )
    assert check == Check("port", OK, f"127.0.0.1:{held_port}: a faasd already serves here")


def test_an_address_not_of_this_machine_fails_naming_the_host_flag() -> None:
    check = doctor.check_port("192.0.2.1", 8080)  # TEST-NET-1: on no interface
    assert check.status == FAIL and "192.0.2.1 is not an address of this machine" in check.detail
    assert "--host" in check.fix


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_faasd_answers_asks_healthz_for_a_200() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        port = int(server.server_address[1])
        assert doctor.faasd_answers("127.0.0.1", port)
        assert doctor.faasd_answers("0.0.0.0", port)  # asked on loopback
    finally:
        server.shutdown()
        server.server_close()
    assert not doctor.faasd_answers("127.0.0.1", port)  # closed: refused at once


def test_the_health_url_of_a_wildcard_or_ipv6_host() -> None:
    assert doctor._health_url("0.0.0.0", 8080) == "http://127.0.0.1:8080/healthz"
    assert doctor._health_url("::", 8080) == "http://[::1]:8080/healthz"
    assert doctor._health_url("fd00::1", 80) == "http://[fd00::1]:80/healthz"


# -- the firewall, Python ---------------------------------------------------------------------------


def iptables_here(name: str) -> str | None:
    return "/usr/sbin/iptables" if name == "iptables" else None


def test_the_firewall_off_is_ok() -> None:
    assert doctor.check_firewall("off").status == OK


def test_the_firewall_is_usable_as_root_where_iptables_reads_docker_user() -> None:
    check = doctor.check_firewall("auto", iptables_here, euid=0, probe=lambda binary: None)
    assert check.status == OK and "/usr/sbin/iptables" in check.detail


@pytest.mark.parametrize(
    ("which", "euid", "reason"),
    [(lambda name: None, 0, "no iptables"), (iptables_here, 1000, "not run as root")],
)
def test_an_unusable_firewall_is_a_warning_on_auto_and_a_failure_on_on(which: Any, euid: int, reason: str) -> None:
    auto = doctor.check_firewall("auto", which, euid=euid, probe=lambda binary: None)
    assert auto.status == WARN
    assert reason in auto.detail and "functions will not be kept off the host by a firewall" in auto.detail
    assert "--firewall off" in auto.fix
    on = doctor.check_firewall("on", which, euid=euid, probe=lambda binary: None)
    assert on.status == FAIL and reason in on.detail


def test_iptables_that_cannot_read_docker_user_is_not_usable() -> None:
    check = doctor.check_firewall("auto", iptables_here, euid=0, probe=lambda binary: "No chain/target/match")
    assert check.status == WARN and "No chain/target/match" in check.detail


def test_python_names_its_version() -> None:
    check = doctor.check_python()
    assert check.status == OK and check.detail.startswith("Python 3.")


# -- output and the command -------------------------------------------------------------------------

CHECKS = [
    Check("engine", OK, "Docker 20.10.24"),
    Check("images", WARN, "not built yet: x", "run `faasd images build`"),
    Check("port", FAIL, "port 8080 on 127.0.0.1 is in use by another program", "--port 8081"),
]


def test_text_is_one_line_per_check_and_a_fix_line_under_each_problem() -> None:
    assert doctor.render_text(CHECKS).splitlines() == [
        "ok   engine: Docker 20.10.24",
        "WARN images: not built yet: x",
        "     fix: run `faasd images build`",
        "FAIL port: port 8080 on 127.0.0.1 is in use by another program",
        "     fix: --port 8081",
    ]


def test_json_is_a_list_of_check_status_detail_fix() -> None:
    rows = json.loads(doctor.render_json(CHECKS))
    assert rows[0] == {"check": "engine", "status": "ok", "detail": "Docker 20.10.24", "fix": None}
    assert rows[2]["status"] == "fail" and rows[2]["fix"] == "--port 8081"


def test_the_exit_code_is_1_only_when_a_check_fails() -> None:
    assert doctor.exit_code(CHECKS) == 1
    assert doctor.exit_code(CHECKS[:2]) == 0


def test_a_check_that_breaks_is_a_failure_line_not_a_traceback() -> None:
    def broken() -> Check:
        raise RuntimeError("boom")

    [check] = doctor._guarded("port", broken)
    assert check.status == FAIL and "RuntimeError: boom" in check.detail


def test_the_command_reads_faasd_flags_and_variables_as_faasd_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Settings] = []

    def run_checks(settings: Settings) -> list[Check]:
        seen.append(settings)
        return CHECKS[:2]

    monkeypatch.setattr(doctor, "run_checks", run_checks)
    monkeypatch.setenv("FAASD_HOST", "0.0.0.0")
    monkeypatch.setenv("FAASD_STATE_DIR", "/srv/faasd")
    assert doctor.main("doctor", ["--port", "9000", "-o", "json", "--firewall", "off"]) == 0
    assert seen == [load_settings(["--port", "9000", "--firewall", "off"])]
    assert (seen[0].host, seen[0].port, str(seen[0].state_dir)) == ("0.0.0.0", 9000, "/srv/faasd")
    assert [row["check"] for row in json.loads(capsys.readouterr().out)] == ["engine", "images"]


def test_a_bad_setting_is_refused_by_the_command_under_its_own_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        doctor.main("doctor", ["--port", "0"])
    assert stopped.value.code == 2
    assert "faasd doctor: error: --port must be between 1 and 65535" in capsys.readouterr().err


def test_settings_read_through_a_command_parser_are_those_faasd_reads() -> None:
    environ = {"FAASD_PORT": "9001", "FAASD_IMAGE_NAMESPACE": "registry.local:5000/faasd"}
    parser = doctor.build_parser()
    assert load_settings(["--host", "::", "-o", "json"], environ, parser=parser) == load_settings(
        ["--host", "::"], environ
    )
    assert load_settings([], {}, parser=doctor.build_parser()) == Settings(state_dir=Path("./.faasd"))


def test_no_service_installed_is_ok(tmp_path: Path) -> None:
    assert doctor.check_service(tmp_path / "faasd.service", tmp_path / "faasd.env").status == OK


def test_an_installed_service_names_its_python_and_how_to_check_its_settings(tmp_path: Path) -> None:
    python = tmp_path / "my venv" / "100%" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    unit = tmp_path / "faasd.service"
    unit.write_text(systemd.render_unit(str(python)))
    check = doctor.check_service(unit, Path("/etc/faasd/faasd.env"))
    assert check.status == OK
    assert f"runs {python} -m faasd" in check.detail and ". /etc/faasd/faasd.env" in check.detail


def test_a_service_whose_python_is_gone_fails(tmp_path: Path) -> None:
    unit = tmp_path / "faasd.service"
    unit.write_text(systemd.render_unit(str(tmp_path / "removed-venv" / "bin" / "python")))
    check = doctor.check_service(unit, tmp_path / "faasd.env")
    assert check.status == FAIL and "removed-venv" in check.detail and "faasd install" in check.fix


def test_an_engine_that_cannot_set_faasds_limits_is_a_warning() -> None:
    version = {"Version": "20.10.24", "ApiVersion": "1.41"}
    info = {"CgroupVersion": "2", "CgroupDriver": "systemd", "Driver": "overlay2"}
    assert (
        doctor.describe_engine("unix:///x", version, {**info, "MemoryLimit": True, "SwapLimit": True}).status
        == doctor.OK
    )
    check = doctor.describe_engine("unix:///x", version, {**info, "MemoryLimit": False, "PidsLimit": False})
    assert check.status == doctor.WARN
    assert "memory limits, process limits" in check.detail and check.fix and "cgroup" in check.fix


# -- the database ----------------------------------------------------------------------------------


def test_the_default_database_is_the_state_dirs_sqlite_file(tmp_path: Path) -> None:
    check = check_database(database_url("", tmp_path))
    assert (check.status, check.detail) == (OK, f"SQLite file {tmp_path / 'faasd.db'} (made at the first start)")


def test_a_postgresql_that_answers_is_named_with_its_version_and_schema(postgres_url: str) -> None:
    url = database_url(postgres_url.replace("postgres@", "postgres:pw@"))
    check = check_database(url)
    assert check.status == OK
    assert re.fullmatch(
        r"PostgreSQL \d+\.\d+ at postgresql\+asyncpg://postgres:\*\*\*@127\.0\.0\.1:\d+/\w+, "
        r"empty: faasd makes its tables at the first start",
        check.detail,
    ), check.detail
    migrate(url)
    assert re.search(r", schema at revision \d{4}$", check_database(url).detail)


def test_a_postgresql_that_does_not_answer_fails_without_the_password() -> None:
    port = free_port()
    check = check_database(database_url(f"postgresql://faasd:s3cret@127.0.0.1:{port}/faasd"))
    assert check.status == FAIL
    assert check.detail.startswith(f"cannot reach postgresql+asyncpg://faasd:***@127.0.0.1:{port}/faasd: ")
    assert "s3cret" not in check.detail + check.fix
    assert "--database" in check.fix
