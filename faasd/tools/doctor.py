"""`faasd doctor`: check the machine faasd would run on, one line per check.

Each check is a small function returning a :class:`Check`; those that need no
engine take plain values (paths, a host and port, a mode) so that tests give
them temporary ones. Every expected failure becomes a line with what to do,
never a traceback::

    ok   engine: Docker 20.10.24 (API 1.41) at unix:///var/run/docker.sock; cgroup v2 (systemd), storage overlay2
    WARN images: not built yet: faasd/runtime-ruby:77f71f0c1534
         fix: faasd builds them on its first start, or run `faasd images build`
    FAIL port: port 8080 on 127.0.0.1 is in use by another program
         fix: choose another port: --port 8081 (or FAASD_PORT=8081)

The exit code is 1 when a check FAILs, else 0. ``-o json`` prints the same as
a JSON list of ``{check, status, detail, fix}``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from faasd.core.database import DatabaseUrl
from faasd.core.recipes import BUILDER, RUNTIME, STOCK_ENVIRONMENTS, Recipe, RecipeBook, runtime_recipes
from faasd.core.settings import Settings, command_parser, load_settings
from faasd.tools import systemd

OK, WARN, FAIL = "ok", "WARN", "FAIL"
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
OLDEST_ENGINE = (20, 10)
ENGINE_TIMEOUT = 5
HEALTH_TIMEOUT = 1.0
IPTABLES = ("iptables", "iptables-nft", "iptables-legacy")  # faasd/engines/firewall.py's candidates
START_ENGINE = (
    "start the Docker engine: systemctl start docker (or dockerd &), or install it (apt-get install docker.io)"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, WARN or FAIL
    detail: str
    fix: str = ""


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


# -- engine ----------------------------------------------------------------------------------------


def engine_address(environ: Mapping[str, str] | None = None) -> str:
    """Where the Docker SDK looks for the engine: $DOCKER_HOST, else the default socket."""
    environ = os.environ if environ is None else environ
    return environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def _root_os_error(exc: BaseException) -> OSError | None:
    """The OSError underneath a Docker SDK / requests / urllib3 error (they wrap it several times)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        todo.extend(link for link in (current.__cause__, current.__context__) if link is not None)
    return None


def _engine_error(exc: BaseException) -> str:
    message = str(exc).removeprefix("Error while fetching server API version: ")
    root = _root_os_error(exc)
    if root is None:
        return message
    if root.errno == errno.ENOENT:
        return "no socket there (no such file or directory)"
    if root.errno == errno.ECONNREFUSED:
        return "connection refused"
    if root.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return root.strerror or message


def engine_failure(address: str, exc: BaseException) -> Check:
    """The engine did not answer at ``address``."""
    root = _root_os_error(exc)
    if root is not None and root.errno in (errno.EACCES, errno.EPERM):
        return Check(
            "engine",
            FAIL,
            f"cannot reach the Docker engine at {address}: permission denied for user {_user()}",
            "run faasd as root, or add the user to the docker group: "
            f"usermod -aG docker {_user()} (then log in again); that group controls the whole machine",
        )
    return Check("engine", FAIL, f"cannot reach the Docker engine at {address}: {_engine_error(exc)}", START_ENGINE)


def engine_version(raw: str) -> tuple[int, int] | None:
    """``20.10.24+dfsg1`` -> (20, 10); None when it is not a version."""
    found = re.match(r"v?(\d+)\.(\d+)", raw.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def describe_engine(address: str, version: dict[str, Any], info: dict[str, Any]) -> Check:
    """The engine's line from its /version and /info answers."""
    server = str(version.get("Version") or "unknown")
    api = str(version.get("ApiVersion") or "unknown")
    cgroup = f"cgroup v{info.get('CgroupVersion') or '?'} ({info.get('CgroupDriver') or 'unknown driver'})"
    detail = f"Docker {server} (API {api}) at {address}; {cgroup}, storage {info.get('Driver') or 'unknown'}"
    parsed = engine_version(server)
    if parsed is None:
        return Check("engine", WARN, f"{detail}: cannot read the version", "faasd is tested on Docker 20.10 and later")
    if parsed < OLDEST_ENGINE:
        return Check(
            "engine",
            FAIL,
            f"{detail}: older than 20.10",
            "upgrade the Docker engine to 20.10 or later "
            "(apt-get install docker.io, or https://docs.docker.com/engine/install/)",
        )
    cannot = [what for key, what in ENGINE_LIMITS.items() if info.get(key) is False]
    if cannot:
        return Check(
            "engine",
            WARN,
            f"{detail}; it cannot enforce {', '.join(cannot)}: faasd's limits on functions are not applied",
            "enable the kernel's cgroup controllers (e.g. cgroup_enable=memory swapaccount=1 on the kernel "
            "command line) and restart the engine",
        )
    return Check("engine", OK, detail)


# The limits faasd sets on every container, by the /info field that says the engine can set them.
ENGINE_LIMITS = {
    "MemoryLimit": "memory limits",
    "SwapLimit": "swap limits",
    "CpuCfsQuota": "CPU quotas",
    "PidsLimit": "process limits",
}


def check_engine(
    connect: Callable[[], docker.DockerClient] | None = None, address: str | None = None
) -> tuple[Check, docker.DockerClient | None]:
    """The engine's line, and a client when it answered."""
    address = address or engine_address()
    try:
        client = connect() if connect is not None else docker.from_env(timeout=ENGINE_TIMEOUT)
        client.ping()
        version = client.version()
        info = client.info()
    except Exception as exc:  # the SDK's own errors, and requests/urllib3's that it lets through
        return engine_failure(address, exc), None
    return describe_engine(address, version, info), client


# -- images ----------------------------------------------------------------------------------------


def check_images(recipes: Iterable[Recipe], exists: Callable[[str], bool], mmdebstrap: bool) -> list[Check]:
    """Whether the images of this faasd's recipes are on the engine.

    A missing image is built on the first start: from its default base (a registry's,
    or already here), else from the local Debian base, else mmdebstrap makes that base.
    When none of these is at hand, only a registry can answer on the first start.
    """
    present: list[str] = []
    missing: list[str] = []
    need_registry: list[Recipe] = []
    for recipe in recipes:
        if exists(recipe.reference):
            present.append(recipe.reference)
            continue
        missing.append(recipe.reference)
        if not mmdebstrap and not exists(recipe.default_base) and not exists(recipe.local_base):
            need_registry.append(recipe)
    checks: list[Check] = []
    if not missing:
        return [Check("images", OK, f"all {len(present)} built: {', '.join(present)}")]
    checks.append(
        Check(
            "images",
            WARN,
            f"not built yet: {', '.join(missing)}",
            "faasd builds them on its first start, or run `faasd images build`",
        )
    )
    if need_registry:
        bases = sorted({recipe.default_base for recipe in need_registry})
        checks.append(
            Check(
                "images",
                WARN,
                f"the first start needs a registry to answer for {', '.join(bases)}: neither they nor a local "
                "Debian base are on the engine, and mmdebstrap is not installed",
                "let this machine reach Docker Hub for the first start, or install mmdebstrap "
                "(apt-get install mmdebstrap) so that faasd makes a Debian base from the host's apt sources",
            )
        )
    return checks


def _image_exists(client: docker.DockerClient) -> Callable[[str], bool]:
    def exists(reference: str) -> bool:
        try:
            client.images.get(reference)
        except docker.errors.ImageNotFound:
            return False
        return True

    return exists


def engine_images(settings: Settings, client: docker.DockerClient | None) -> list[Check]:
    if client is None:
        return [Check("images", WARN, "skipped: engine unreachable", "run faasd doctor again once the engine answers")]
    try:
        book = RecipeBook(runtime_recipes(settings.image_namespace))
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        return [Check("images", FAIL, f"cannot read faasd's image recipes: {exc}", "reinstall faasd")]
    # The stock environments' runtimes and builders (another, e.g. ruby, is built on its first use).
    stock = [
        recipe for recipe in book.recipes if recipe.name in STOCK_ENVIRONMENTS and recipe.kind in (RUNTIME, BUILDER)
    ]
    try:
        return check_images(stock, _image_exists(client), shutil.which("mmdebstrap") is not None)
    except docker.errors.DockerException as exc:
        return [Check("images", FAIL, f"cannot list the engine's images: {exc}", START_ENGINE)]


# -- files -----------------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _cannot_write(directory: Path) -> str | None:
    """None when a directory can be made in ``directory`` (tried: root passes os.access on a
    read-only mount), else why not."""
    try:
        made = tempfile.mkdtemp(prefix=".faasd-doctor-", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.rmdir(made)
    return None


def _chown(path: Path) -> str:
    return f" && chown {_user()} {path}" if os.geteuid() != 0 else ""


def check_state_dir(state_dir: Path) -> Check:
    path = Path(os.path.abspath(state_dir))
    choose = "or choose another one: --state-dir DIR (or FAASD_STATE_DIR)"
    if not path.exists():
        parent = _nearest_existing(path.parent)
        if not parent.is_dir():
            return Check("state dir", FAIL, f"{path} cannot be created: {parent} is not a directory", choose)
        problem = _cannot_write(parent)
        if problem is not None:
            return Check(
                "state dir",
                FAIL,
                f"{path} does not exist and {parent} is not writable by {_user()} ({problem.lower()})",
                f"create it as root: mkdir -p {path}{_chown(path)}, {choose}",
            )
        return Check("state dir", OK, f"{path}: will be created")
    if not path.is_dir():
        return Check("state dir", FAIL, f"{path} is not a directory", f"move it away, {choose}")
    problem = _cannot_write(path)
    if problem is not None or not os.access(path, os.R_OK):
        return Check(
            "state dir",
            FAIL,
            f"{path} is not writable by {_user()} ({(problem or 'not readable').lower()})",
            f"run faasd as the directory's owner, give it to this user: chown -R {_user()} {path}, {choose}",
        )
    mode = path.stat().st_mode
    if mode & stat.S_IWOTH:
        return Check(
            "state dir",
            WARN,
            f"{path} is writable by every user of the machine (mode {stat.S_IMODE(mode):04o})",
            f"chmod 700 {path}",
        )
    return Check("state dir", OK, f"{path}: writable by {_user()}")


def check_token(state_dir: Path, given: bool = False) -> Check:
    """The admin API token file (faasd/control/auth.py makes it 0600 on the first start)."""
    if given:
        return Check("token", OK, "given with --token / FAASD_TOKEN (the state dir's token file is not used)")
    path = Path(os.path.abspath(state_dir)) / "token"
    try:
        info = path.lstat()
    except FileNotFoundError:
        return Check("token", OK, f"{path}: made on the first start (mode 0600)")
    except OSError as exc:
        return Check(
            "token", FAIL, f"{path} cannot be read by {_user()}: {exc.strerror}", "run faasd doctor as faasd's user"
        )
    if not stat.S_ISREG(info.st_mode):
        return Check("token", FAIL, f"{path} is not a regular file", f"remove it to get a new token: rm {path}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return Check(
            "token",
            FAIL,
            f"{path} has mode {mode:04o}: other users can read or change the admin API token",
            f"chmod 600 {path}",
        )
    try:
        content = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        return Check(
            "token",
            FAIL,
            f"{path} cannot be read by {_user()}: {reason}",
            "run faasd doctor as the user faasd runs as (e.g. with sudo)",
        )
    if not content:
        return Check(
            "token", FAIL, f"{path} is empty: faasd refuses to start", f"remove it to get a new token: rm {path}"
        )
    return Check("token", OK, f"{path}: mode {mode:04o}")


# -- port ------------------------------------------------------------------------------------------


def _health_url(host: str, port: int) -> str:
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in target:
        target = f"[{target}]"
    return f"http://{target}:{port}/healthz"


def faasd_answers(host: str, port: int) -> bool:
    """Whether a faasd answers GET /healthz with 200 there."""
    try:
        with urllib.request.urlopen(_health_url(host, port), timeout=HEALTH_TIMEOUT) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_port(host: str, port: int, serving: Callable[[str, int], bool] = faasd_answers) -> Check:
    other = f"choose another port: --port {port + 1 if port < 65535 else port - 1} (or FAASD_PORT)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        return Check(
            "port", FAIL, f"cannot resolve {host!r}: {exc}", "give an address: --host 127.0.0.1 (or FAASD_HOST)"
        )
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if serving(host, port):
                return Check("port", OK, f"{host}:{port}: a faasd already serves here")
            return Check("port", FAIL, f"port {port} on {host} is in use by another program", other)
        if exc.errno == errno.EADDRNOTAVAIL:
            return Check(
                "port",
                FAIL,
                f"{host} is not an address of this machine",
                "listen on one of its addresses: --host 127.0.0.1 (or FAASD_HOST)",
            )
        if exc.errno == errno.EACCES:
            return Check(
                "port",
                FAIL,
                f"port {port} on {host} needs root (ports below 1024 are privileged)",
                f"run faasd as root, or {other}",
            )
        return Check("port", FAIL, f"cannot listen on {host}:{port}: {exc.strerror or exc}", other)
    return Check("port", OK, f"{host}:{port} is free")


# -- database --------------------------------------------------------------------------------------


async def _postgresql_state(url: DatabaseUrl) -> tuple[str, str]:
    """The server's version and the schema's alembic revision ("" for an empty database)."""
    from sqlalchemy import inspect, text

    from faasd.store.database import open_engine

    engine = open_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            version = str((await connection.execute(text("SHOW server_version"))).scalar_one()).split()[0]
            migrated = await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
            revision = ""
            if migrated:
                revision = str((await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar())
            return version, revision
    finally:
        await engine.dispose()


def check_database(
    url: DatabaseUrl, probe: Callable[[DatabaseUrl], tuple[str, str]] = lambda u: asyncio.run(_postgresql_state(u))
) -> Check:
    """Where the registry lives (--database) and, for PostgreSQL, whether it answers."""
    if not url.is_postgresql:
        path = url.sqlite_path.absolute()
        state = "exists" if path.exists() else "made at the first start"
        return Check("database", OK, f"SQLite file {path} ({state})")
    try:
        version, revision = probe(url)
    except Exception as exc:  # the driver's errors are many; each says what went wrong in its first line
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        return Check(
            "database",
            FAIL,
            f"cannot reach {url.redacted()}: {lines[0]}",
            "check the host, port, database, user and password of --database (FAASD_DATABASE), "
            "and that PostgreSQL runs and lets this machine in (pg_hba.conf)",
        )
    schema = f"schema at revision {revision}" if revision else "empty: faasd makes its tables at the first start"
    return Check("database", OK, f"PostgreSQL {version} at {url.redacted()}, {schema}")


# -- firewall, python ------------------------------------------------------------------------------


def docker_user_chain(binary: str) -> str | None:
    """None when ``binary`` can read Docker's DOCKER-USER chain (as faasd checks), else why not."""
    try:
        done = subprocess.run(
            [binary, "-w", "10", "-S", "DOCKER-USER"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def check_firewall(
    mode: str,
    which: Callable[[str], str | None] = shutil.which,
    euid: int | None = None,
    probe: Callable[[str], str | None] = docker_user_chain,
) -> Check:
    """Whether faasd can put up its host firewall (faasd/engines/firewall.py), as --firewall asks."""
    if mode == "off":
        return Check("firewall", OK, "off (--firewall off): functions can open connections to the host")
    euid = os.geteuid() if euid is None else euid
    binaries = [path for path in (which(name) for name in IPTABLES) if path]
    problem = ""
    found = ""
    if not binaries:
        problem = "no iptables on PATH"
    elif euid != 0:
        problem = f"faasd is not run as root here (user {_user()}), and iptables needs root"
    else:
        errors = []
        for binary in binaries:
            error = probe(binary)
            if error is None:
                found = binary
                break
            errors.append(f"{binary}: {error}")
        if not found:
            problem = "iptables cannot read Docker's DOCKER-USER chain: " + "; ".join(errors)
    if found:
        return Check(
            "firewall", OK, f"{mode}: {found} holds Docker's DOCKER-USER chain; functions are kept off the host"
        )
    fix = "install iptables (apt-get install iptables) and run faasd as root"
    if mode == "on":
        return Check("firewall", FAIL, f"--firewall on, but {problem}: faasd refuses to start", fix)
    return Check(
        "firewall",
        WARN,
        f"{problem}: functions will not be kept off the host by a firewall",
        f"{fix}, or say that this is meant: --firewall off",
    )


def check_service(unit: Path = systemd.UNIT_PATH, env: Path = systemd.ENV_PATH) -> Check:
    """Whether `faasd install` made faasd a systemd service, and whether the Python it runs is still there."""
    try:
        text = unit.read_text()
    except FileNotFoundError:
        return Check("service", OK, "not installed as a systemd service (faasd install does it)")
    except OSError as exc:
        return Check("service", WARN, f"{unit} cannot be read: {exc.strerror}", "run faasd doctor as root")
    starts = [line.removeprefix("ExecStart=") for line in text.splitlines() if line.startswith("ExecStart=")]
    try:
        python = shlex.split(starts[0])[0].replace("%%", "%") if starts else ""
    except ValueError:
        python = ""
    if not python or not os.access(python, os.X_OK):
        return Check(
            "service",
            FAIL,
            f"{unit} runs {python or 'nothing'}, which is not there (a removed venv?)",
            "install faasd again with the Python that has it: sudo PYTHON -m faasd install",
        )
    script = f"set -a; . {shlex.quote(str(env))}; exec {shlex.join([python, '-m', 'faasd', 'doctor'])}"
    return Check(
        "service",
        OK,
        f"{unit} runs {python} -m faasd with the settings in {env}; these checks use this shell's "
        f"(for the service's: {shlex.join(['sudo', 'sh', '-c', script])})",
    )


def check_python() -> Check:
    return Check("python", OK, f"Python {platform.python_version()} ({sys.executable})")


# -- the command -----------------------------------------------------------------------------------


def _guarded(name: str, run: Callable[[], Check | list[Check]]) -> list[Check]:
    """A check that failed unexpectedly is a FAIL line too, never a traceback."""
    try:
        result = run()
    except Exception as exc:
        return [Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}", "report this to faasd")]
    return result if isinstance(result, list) else [result]


def run_checks(settings: Settings) -> list[Check]:
    client: docker.DockerClient | None = None

    def engine() -> Check:
        nonlocal client
        check, client = check_engine()
        return check

    checks = _guarded("engine", engine)
    try:
        checks += _guarded("images", lambda: engine_images(settings, client))
        checks += _guarded("state dir", lambda: check_state_dir(settings.state_dir))
        checks += _guarded("database", lambda: check_database(settings.database_url))
        checks += _guarded("token", lambda: check_token(settings.state_dir, given=bool(settings.token)))
        checks += _guarded("port", lambda: check_port(settings.host, settings.port))
        checks += _guarded("firewall", lambda: check_firewall(settings.firewall))
        checks += _guarded("service", check_service)
        checks += _guarded("python", check_python)
    finally:
        if client is not None:
            client.close()
    return checks


def render_text(checks: Sequence[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{check.status:<4} {check.name}: {check.detail}")
        if check.status != OK and check.fix:
            lines.append(f"     fix: {check.fix}")
    return "\n".join(lines) + "\n"


def render_json(checks: Sequence[Check]) -> str:
    rows = []
    for check in checks:
        row = asdict(check)
        rows.append(
            {"check": row["name"], "status": row["status"].lower(), "detail": row["detail"], "fix": row["fix"] or None}
        )
    return json.dumps(rows, indent=2) + "\n"


def exit_code(checks: Sequence[Check]) -> int:
    return 1 if any(check.status == FAIL for check in checks) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "doctor",
        "Check the machine faasd would run on: the Docker engine, the runtime images, the state dir and "
        "its token, the registry's database, the port, the host firewall. Takes faasd's own flags and "
        "FAASD_* variables. Exit code 1 when a check fails.",
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="text (default) or json: a list of checks"
    )
    return parser


def main(command: str, args: Sequence[str]) -> int:
    parser = build_parser()
    options = parser.parse_args(args)
    settings = load_settings(args, parser=parser)
    checks = run_checks(settings)
    sys.stdout.write(render_json(checks) if options.output == "json" else render_text(checks))
    return exit_code(checks)
