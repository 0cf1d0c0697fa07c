"""`faasd install` / `faasd uninstall`: faasd as a systemd service, as OpenFaaS faasd CE installs itself.

``faasd install [settings flags...]`` (as root) writes two files::

    /etc/systemd/system/faasd.service   the unit: runs <this Python> -m faasd
    /etc/faasd/faasd.env                the settings given as flags, as FAASD_* lines (mode 0600: a --token is in it)

then ``systemctl daemon-reload`` and ``systemctl enable --now faasd``. The unit
runs the Python that ran the installer, so a faasd installed in a venv or with
pipx is the one that runs. FAASD_STATE_DIR is /var/lib/faasd unless given.
Where systemd is not running (a container, WSL without it), nothing is
written: the two files are printed for the user to place; ``--print`` prints
them in any case. ``faasd uninstall`` stops and disables the service and
removes both files; the state dir (database, code, token) stays.

The hidden ``--root DIR`` writes and removes under DIR instead of / (a staging
tree, the tests) and then runs no systemctl.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from faasd.core.settings import OPTIONS, command_parser, load_settings

SERVICE = "faasd"
UNIT_PATH = Path("/etc/systemd/system/faasd.service")
ENV_PATH = Path("/etc/faasd/faasd.env")
DEFAULT_STATE_DIR = "/var/lib/faasd"
SYSTEMD_RUNNING = Path("/run/systemd/system")  # sd_booted(): present only when systemd is PID 1
SYSTEMCTL_TIMEOUT = 120
# What a value may hold and be written bare (in EnvironmentFile= and sh alike).
_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_UNBOUND = ("not loaded", "does not exist", "no such file", "not found")

# Runs `systemctl ARGS...`.
Systemctl = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def systemctl(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["systemctl", *args], 1, "", str(exc))


def systemd_running(marker: Path = SYSTEMD_RUNNING, which: Callable[[str], str | None] = shutil.which) -> bool:
    """Whether systemd manages this machine (and systemctl is there to ask it)."""
    return marker.is_dir() and which("systemctl") is not None


# -- the two files ---------------------------------------------------------------------------------


def quote_env(value: str) -> str:
    """``value`` for a KEY=VALUE line that systemd's EnvironmentFile= and sh's ``.`` read back as it is.

    Bare when it is plain; else in single quotes (verbatim in both); a value with a
    single quote in double quotes, with ``\\ " ` $`` escaped (the escapes both know).
    """
    if "\0" in value:
        raise ValueError("a setting cannot hold a NUL character")
    if _BARE.fullmatch(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    escaped = re.sub(r'([\\"`$])', r"\\\1", value)
    return f'"{escaped}"'


def render_env(values: Mapping[str, str]) -> str:
    lines = [
        "# faasd's settings, read by faasd.service (faasd --help lists them all).",
        "# After a change: systemctl restart faasd",
    ]
    lines += [f"{key}={quote_env(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """An env file read as systemd reads an EnvironmentFile= (its parse_env_file_internal, state for state):
    # and ; comment lines, bare values with backslash escapes and trailing blanks dropped, '...' verbatim,
    "..." with \\ before one of ``" \\ ` $`` dropped, backslash-newline a continuation."""
    values: dict[str, str] = {}
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    trailing: int | None = None  # where the bare value's trailing blanks begin

    def push() -> None:
        nonlocal key, value, trailing
        values["".join(key).rstrip(" \t\n\r")] = "".join(value[:trailing] if state == "value" else value)
        key, value, trailing = [], [], None

    for char in text:
        if state == "pre_key":
            if char in "#;":
                state = "comment"
            elif char not in " \t\n\r":
                state, key = "key", [char]
        elif state == "key":
            if char in "\n\r":
                state, key = "pre_key", []
            elif char == "=":
                state, trailing = "pre_value", None
            else:
                key.append(char)
        elif state in ("pre_value", "value"):
            if char in "\n\r":
                push()
                state = "pre_key"
            elif state == "pre_value" and char == "'":  # quotes open a value, and are plain inside one
                state = "single"
            elif state == "pre_value" and char == '"':
                state = "double"
            elif char == "\\":
                state, trailing = "value_escape", None
            elif state == "pre_value" and char in " \t":
                pass
            else:
                if char not in " \t":
                    trailing = None
                elif trailing is None:
                    trailing = len(value)
                state = "value"
                value.append(char)
        elif state == "value_escape":
            state = "value"
            if char not in "\n\r":
                value.append(char)
        elif state == "single":
            if char == "'":
                state = "pre_value"
            else:
                value.append(char)
        elif state == "double":
            if char == '"':
                state = "pre_value"
            elif char == "\\":
                state = "double_escape"
            else:
                value.append(char)
        elif state == "double_escape":
            state = "double"
            if char in '"\\`$':
                value.append(char)
            elif char != "\n":
                value += ["\\", char]
        elif state == "comment":
            if char == "\\":
                state = "comment_escape"
            elif char in "\n\r":
                state = "pre_key"
        elif state == "comment_escape":
            state = "pre_key" if char in "\n\r" else "comment"
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        push()
    return values


def _unit_word(word: str) -> str:
    """A path in a unit (ExecStart='s program, EnvironmentFile=): %-specifiers escaped, quoted when it has
    blanks or quotes. ($ is plain in a path: systemd expands variables in the arguments only.)"""
    word = word.replace("%", "%%")
    if re.search(r"[\s\"'\\;]", word) or not word:
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def render_unit(python: str, env_file: Path = ENV_PATH, documentation: str = "") -> str:
    docs = f"Documentation={documentation}\n" if documentation else ""
    return (
        "[Unit]\n"
        "Description=faasd: functions as a service on one machine\n"
        f"{docs}"
        "After=network-online.target docker.service\n"
        "Wants=network-online.target docker.service\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"EnvironmentFile={_unit_word(str(env_file))}\n"
        f"ExecStart={_unit_word(python)} -m faasd\n"
        "Restart=on-failure\n"
        "RestartSec=2\n"
        "KillSignal=SIGTERM\n"
        "# Two descriptors a call (client, container) and --max-connections 10000: above systemd's 1024.\n"
        "LimitNOFILE=65536\n"
        "# faasd lets calls in flight finish for up to 30 s, then removes its containers.\n"
        "TimeoutStopSec=45\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def _env_name(name: str) -> str:
    return "FAASD_" + name.upper()


def env_values(given: argparse.Namespace, cwd: str | None = None) -> dict[str, str]:
    """The FAASD_* lines for the settings flags given (as given), FAASD_STATE_DIR first, absolute."""
    raw_state = getattr(given, "state_dir", None)
    state_dir = DEFAULT_STATE_DIR if raw_state is None else os.path.join(cwd or os.getcwd(), raw_state)
    values = {_env_name("state_dir"): os.path.normpath(state_dir)}
    for option in OPTIONS:
        raw = getattr(given, option.name, None)
        if raw is not None and option.name != "state_dir":
            values[_env_name(option.name)] = str(raw)
    return values


def local_url(values: Mapping[str, str]) -> str:
    """Where the service answers on this machine."""
    host = values.get(_env_name("host"), "127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{values.get(_env_name('port'), '8080')}"


def documentation_url(values: Mapping[str, str]) -> str:
    """The daemon's own description of its API (there is no other URL that surely exists)."""
    return local_url(values) + "/v1/openapi.json"


@dataclass(frozen=True)
class Files:
    unit: str
    env: str


def render(values: Mapping[str, str], python: str) -> Files:
    return Files(render_unit(python, ENV_PATH, documentation_url(values)), render_env(values))


def printable(files: Files) -> str:
    return f"# {UNIT_PATH}\n{files.unit}\n# {ENV_PATH} (mode 0600)\n{files.env}"


def under(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _write(path: Path, text: str, mode: int) -> bool:
    """Write atomically with ``mode``; whether the content changed."""
    try:
        if path.read_text() == text:
            path.chmod(mode)
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    staging.chmod(mode)
    os.replace(staging, path)
    return True


# -- install, uninstall ----------------------------------------------------------------------------


def _run(run: Systemctl, args: Sequence[str], out: TextIO) -> subprocess.CompletedProcess[str]:
    print("systemctl " + " ".join(args), file=out)
    return run(args)


def _failed(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"


def install(
    values: Mapping[str, str],
    python: str,
    root: Path,
    run: Systemctl | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Write the unit and the env file under ``root``, then (``run`` given) enable and start the service."""
    files = render(values, python)
    unit, env = under(root, UNIT_PATH), under(root, ENV_PATH)
    existed = unit.exists()
    env_changed = _write(env, files.env, 0o600)
    unit_changed = _write(unit, files.unit, 0o644)
    changed = env_changed or unit_changed
    settings = ", ".join(f"{key}={value}" for key, value in values.items() if key != _env_name("token"))
    print(f"{'wrote' if unit_changed else 'unchanged'} {unit} (runs {python} -m faasd)", file=out)
    print(f"{'wrote' if env_changed else 'unchanged'} {env} ({settings})", file=out)
    if run is None:
        print(f"not started (--root {root}): systemctl daemon-reload && systemctl enable --now {SERVICE}", file=out)
        return 0
    steps: list[list[str]] = [["daemon-reload"], ["enable", "--now", SERVICE]]
    if existed and changed:
        steps.append(["restart", SERVICE])  # enable --now leaves a running faasd on its old settings
    for step in steps:
        done = _run(run, step, out)
        if done.returncode != 0:
            print(f"faasd install: systemctl {' '.join(step)} failed: {_failed(done)}", file=err)
            print(f"see: systemctl status {SERVICE}; journalctl -u {SERVICE}", file=err)
            return 1
    state_dir = values[_env_name("state_dir")]
    print(
        f"{'restarted' if existed and changed else 'started'} {SERVICE}.service, at boot too: {local_url(values)} "
        f"(systemctl status {SERVICE})",
        file=out,
    )
    print(f"follow its log: journalctl -u {SERVICE} -f", file=out)
    if _env_name("token") in values:
        print(f"the admin API token: the one given (FAASD_TOKEN in {ENV_PATH})", file=out)
    else:
        print(
            f"the admin API token: {state_dir}/token (made on the first start; as root, "
            f"FAASD_STATE_DIR={state_dir} faas ... reads it)",
            file=out,
        )
    print(f"change a setting: edit {ENV_PATH}, then systemctl restart {SERVICE}", file=out)
    return 0


def uninstall(root: Path, run: Systemctl | None, out: TextIO, err: TextIO) -> int:
    """Stop and disable the service, remove the unit and the env file; the state dir stays."""
    unit, env = under(root, UNIT_PATH), under(root, ENV_PATH)
    if not unit.exists() and not env.exists():
        print(f"faasd is not installed here (no {unit}, no {env}): nothing to do", file=out)
        return 0
    try:
        state_dir = parse_env(env.read_text()).get(_env_name("state_dir"), DEFAULT_STATE_DIR)
    except (OSError, UnicodeDecodeError):
        state_dir = DEFAULT_STATE_DIR
    if run is not None:
        done = _run(run, ["disable", "--now", SERVICE], out)
        if done.returncode != 0 and not any(word in _failed(done).lower() for word in _UNBOUND):
            print(f"faasd uninstall: systemctl disable --now {SERVICE} failed: {_failed(done)}", file=err)
            return 1
    for path in (unit, env):
        if path.exists():
            path.unlink()
            print(f"removed {path}", file=out)
    with contextlib.suppress(OSError):
        env.parent.rmdir()  # /etc/faasd, when nothing else is in it
    if run is not None:
        done = _run(run, ["daemon-reload"], out)
        if done.returncode != 0:
            print(f"faasd uninstall: systemctl daemon-reload failed: {_failed(done)}", file=err)
            return 1
    print(f"kept the state dir {state_dir} (database, code, token): rm -r {state_dir} removes it", file=out)
    return 0


# -- the commands ----------------------------------------------------------------------------------


def _as_root_line(command: str, args: Sequence[str]) -> str:
    again = shlex.join(["sudo", sys.executable, "-m", "faasd", command, *args])
    return f"faasd {command} must run as root ({again})"


def build_parser(command: str) -> argparse.ArgumentParser:
    if command == "install":
        parser = command_parser(
            "install",
            "Install faasd as a systemd service (as root): /etc/systemd/system/faasd.service runs this Python's "
            "faasd with the settings given here, kept as FAASD_* lines in /etc/faasd/faasd.env "
            f"(FAASD_STATE_DIR={DEFAULT_STATE_DIR} unless given); then systemctl enable --now faasd. "
            "Running it again with other flags replaces the settings and restarts faasd.",
        )
        parser.epilog = (
            "Only the flags given are written; this shell's FAASD_* variables are not. "
            "Without systemd running, the two files are printed instead."
        )
        parser.add_argument("--print", action="store_true", help="print the unit and the env file; install nothing")
    else:
        parser = argparse.ArgumentParser(
            prog="faasd uninstall",
            description="Stop and disable the faasd service and remove its unit and env file (as root). "
            "The state dir (database, code, token) is kept.",
        )
    parser.add_argument("--root", default="/", help=argparse.SUPPRESS)
    return parser


def main(
    command: str,
    args: Sequence[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    euid: int | None = None,
    systemd: bool | None = None,
    run: Systemctl = systemctl,
) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser(command)
    given = parser.parse_args(args)
    root = Path(os.path.abspath(given.root))
    euid = os.geteuid() if euid is None else euid
    systemd = systemd_running() if systemd is None else systemd
    runner = run if root == Path("/") else None
    if command != "install":
        # Without systemd there is nothing to uninstall, whoever asks.
        if not systemd:
            print(f"systemd is not running here (no {SYSTEMD_RUNNING}): no faasd service to uninstall", file=out)
            return 0
        if euid != 0:
            print(_as_root_line(command, args), file=err)
            return 1
        return _guarded(command, err, lambda: uninstall(root, runner, out, err))
    load_settings(args, environ={}, parser=parser)  # the values, checked as faasd would check them
    values = env_values(given)
    try:
        files = render(values, sys.executable)
    except ValueError as exc:
        parser.error(str(exc))
    if given.print:
        out.write(printable(files))
        return 0
    # Without systemd, anyone gets the two files to place by hand (nothing is written: no root needed).
    if not systemd:
        print(
            f"systemd is not running here (no {SYSTEMD_RUNNING}): nothing installed; "
            "the unit and its env file follow, to place by hand",
            file=err,
        )
        out.write(printable(files))
        return 0
    if euid != 0:
        print(_as_root_line(command, args), file=err)
        return 1
    return _guarded(command, err, lambda: install(values, sys.executable, root, runner, out, err))


def _guarded(command: str, err: TextIO, act: Callable[[], int]) -> int:
    """A file that cannot be written or removed is one line, not a traceback."""
    try:
        return act()
    except OSError as exc:
        print(f"faasd {command}: {exc.filename or ''}: {exc.strerror or exc}", file=err)
        return 1
