"""`faas dev`'s loop: deploy, watch the source, redeploy on save, show the logs and the calls.

The pure parts (tested alone): which saved paths matter and whether they change
the dependencies (:func:`classify`), the grouping of a burst of saves into one
redeploy (:class:`Debouncer`), the content fingerprint that skips a save that
changed nothing (:func:`fingerprint`), and the call lines read from faasd's
``/metrics`` (:func:`parse_calls`, :func:`call_line`).

:class:`DevSession` does the rest with the API: the first deploy (as `faas
deploy` does it: the function, or a package built by the environment's builder,
and the route), then one redeploy per burst of saves:

- a source file: the function's code is replaced (``PATCH``), no build;
- a directory (a package): the source is uploaded again; faasd's builder keys the
  dependencies by the manifests (``requirements.txt``, ``package.json``, their lock
  files, local ``.whl``/``.tgz``), so a change of code alone is a dependency cache
  hit (no builder container: the new source is laid over the cached
  dependencies) and a changed manifest installs them again;

then, unless ``--no-probe``, one ``GET /function/NAME``: every call made after
an update goes to the new revision, so its answer is the new code's. The line
printed says how long that took from the save (the file's modification time).

Threads: the watcher (watchfiles, in its own thread, handing batches of paths
to the main loop through a queue) and the log follower (``GET
/v1/functions/NAME/logs?follow=true``). The main thread deploys, probes and
reads ``/metrics`` between changes, so faas dev's own probe calls are known
when the counts are compared and are not printed twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import typer

from faas_cli.archives import SKIPPED_DIRS, prepared
from faas_cli.client import FaasClient, Json, Reply, is_loopback
from faas_cli.commands.deploy import plan_routes
from faas_cli.commands.package import log_tail
from faas_cli.errors import ApiError, CliError
from faas_cli.sources import read_source

# Files whose content decides a package's dependencies: faasd's builder keys its
# cache by them (faasd/builds/builder.py MANIFESTS, LOCAL_DEPENDENCIES; a unit test
# keeps the two the same). A manifest counts at the top of the source; a local
# dependency file (a wheel, an sdist, an npm tarball) anywhere.
MANIFESTS = ("requirements.txt", "package.json", "package-lock.json", "npm-shrinkwrap.json")
LOCAL_DEPENDENCIES = (".whl", ".tar.gz", ".tgz", ".zip")

# Folders whose changes never redeploy: what `faas deploy DIR` leaves out of the
# archive, and the caches and settings of tools and editors.
IGNORED_DIRS = SKIPPED_DIRS | frozenset(
    {".hg", ".svn", ".venv", "venv", ".tox", ".idea", ".vscode", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
# Editors' swap, backup and temporary files, and compiled Python.
_IGNORED_NAME = re.compile(
    r"""(
        \.sw[a-px]$           # vim swap files (.swp, .swo, ...) and its probe (.swx)
        | ^4913$              # vim's probe of whether it may write the folder
        | ~$                  # backups (vim, emacs, gedit)
        | ^\.\#               # emacs lock files
        | ^\#.*\#$            # emacs auto-saves
        | ___jb_(tmp|old)___$ # JetBrains' safe write
        | ^\.goutputstream-   # GLib's safe write
        | ^\.~lock\..*\#$     # LibreOffice locks
        | \.py[cod]$          # compiled Python
        | ^\.DS_Store$
        | \.(tmp|temp|bak|orig|rej)$
    )""",
    re.VERBOSE,
)

DEBOUNCE_SECONDS = 0.05
"""A redeploy starts once no save came for this long: an editor's save is a burst (write, rename, chmod)."""
LONGEST_DEBOUNCE_SECONDS = 0.5
"""... or this long after the first save of a burst that does not stop."""
WATCH_STEP_MS = 10
"""How often watchfiles hands over what it saw (it groups what comes within one step)."""
METRICS_EVERY = 0.5
"""Seconds between two reads of /metrics for the call lines."""
BUILD_FINE_POLL = 0.02
BUILD_POLL = 0.25
BUILD_FINE_FOR = 3.0
"""A build is asked about every 20 ms for its first 3 s (a cached one takes a fraction of a second), then 4 times a
second."""
BUILD_WAIT_SECONDS = 3600.0
METRICS_TIMEOUT = 10.0
LOG_RETRY_SECONDS = 1.0
CALLS_METRIC = "faasd_function_calls_total"
DURATION_METRIC = "faasd_function_duration_seconds"
CODE_CLASSES = ("2xx", "3xx", "4xx", "5xx", "499")


# -- which saves matter ---------------------------------------------------------------------------


def is_ignored(relative: str | PurePosixPath) -> bool:
    """Whether a change of ``relative`` (a path under the watched folder) never redeploys."""
    parts = PurePosixPath(relative).parts
    if not parts:
        return True
    if any(part in IGNORED_DIRS for part in parts[:-1]) or parts[-1] in IGNORED_DIRS:
        return True
    return bool(_IGNORED_NAME.search(parts[-1]))


def is_manifest(relative: str | PurePosixPath) -> bool:
    """Whether ``relative`` decides a package's dependencies (a change installs them again)."""
    path = PurePosixPath(relative)
    if len(path.parts) == 1 and path.name in MANIFESTS:
        return True
    return path.name.lower().endswith(LOCAL_DEPENDENCIES)


@dataclass(frozen=True)
class Plan:
    """What a burst of saves asks for: the files that changed, and those of them that are manifests."""

    files: tuple[str, ...]
    manifests: tuple[str, ...] = ()

    @property
    def rebuild(self) -> bool:
        """A manifest changed: the dependencies are installed again (else the change is code only)."""
        return bool(self.manifests)

    def describe(self, most: int = 3) -> str:
        """``main.py``, ``a.py, b.py``, ``a.py, b.py, c.py and 2 more``."""
        shown = ", ".join(self.files[:most])
        more = len(self.files) - most
        return f"{shown} and {more} more" if more > 0 else shown


def relative_to(path: str | Path, root: Path) -> str | None:
    """``path`` relative to ``root`` in POSIX form, or None when it is not under it."""
    try:
        relative = Path(path).relative_to(root)
    except ValueError:
        return None
    text = relative.as_posix()
    return None if text in ("", ".") else text


def classify(paths: Iterable[str | Path], root: Path, target: Path | None = None) -> Plan | None:
    """The redeploy that saves of ``paths`` ask for, or None when none of them matters.

    ``root`` is the folder watched. With ``target`` (a function of one source
    file, watched through its folder) only that file counts, and it is never a
    manifest. Otherwise (a package) every file under ``root`` but the ignored
    ones counts, and a manifest among them makes it a rebuild.
    """
    files: set[str] = set()
    for path in paths:
        relative = relative_to(path, root)
        if relative is None or is_ignored(relative):
            continue
        if target is not None and Path(path) != target:
            continue
        files.add(relative)
    if not files:
        return None
    ordered = tuple(sorted(files))
    manifests = () if target is not None else tuple(f for f in ordered if is_manifest(f))
    return Plan(ordered, manifests)


class Debouncer:
    """Groups saves into bursts: due once ``quiet`` s passed without a save, or ``longest`` s after the first.

    Pure: the caller gives the time (``time.monotonic()``).
    """

    def __init__(self, quiet: float = DEBOUNCE_SECONDS, longest: float = LONGEST_DEBOUNCE_SECONDS) -> None:
        self.quiet = quiet
        self.longest = longest
        self._paths: set[str] = set()
        self._first: float | None = None
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return self._first is not None

    def add(self, paths: Iterable[str], now: float) -> None:
        """Saves seen at ``now``; an empty batch changes nothing."""
        paths = set(paths)
        if not paths:
            return
        if self._first is None:
            self._first = now
        self._paths |= paths
        self._last = now

    def wait(self, now: float) -> float | None:
        """Seconds until the burst is due (0 when it is), or None with nothing pending."""
        if self._first is None:
            return None
        return max(0.0, min(self._last + self.quiet, self._first + self.longest) - now)

    def due(self, now: float) -> bool:
        wait = self.wait(now)
        return wait is not None and wait <= 0.0

    def take(self) -> set[str]:
        """The burst's paths; nothing is pending after."""
        paths, self._paths, self._first = self._paths, set(), None
        return paths


# -- what is deployed ---------------------------------------------------------------------------------


def source_files(root: Path) -> Iterator[tuple[str, Path]]:
    """The files of a package folder that count (relative name, path), in a stable order."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if not is_ignored(relative):
                yield relative, path


def fingerprint(path: Path) -> str:
    """A digest of what would be deployed from ``path`` (a file, or a folder's files): a save that changed
    nothing (the same bytes written again, a touch) leaves it as it was and is not redeployed."""
    digest = hashlib.sha256()
    files = [(path.name, path)] if path.is_file() else list(source_files(path))
    for relative, file in files:
        digest.update(relative.encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"\0unreadable")
        digest.update(b"\0")
    return digest.hexdigest()


def saved_at(paths: Iterable[str], now_wall: float, now_mono: float, fallback: float) -> float:
    """When the burst was saved, as a ``time.monotonic()`` value: the newest modification time of its
    files that exist (within the last minute); else ``fallback`` (when the watcher saw it)."""
    newest: float | None = None
    for path in paths:
        with contextlib.suppress(OSError):
            mtime = os.stat(path).st_mtime
            if now_wall - 60.0 <= mtime <= now_wall + 0.01 and (newest is None or mtime > newest):
                newest = mtime
    if newest is None:
        return fallback
    return now_mono - max(0.0, now_wall - newest)


# -- the call lines from /metrics --------------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class CallCounts:
    """One function's cumulative counters as /metrics showed them."""

    calls: dict[str, float] = field(default_factory=dict)  # code class -> calls that ended
    duration_sum: float = 0.0
    duration_count: float = 0.0

    @property
    def seen(self) -> bool:
        """Whether /metrics had the function's calls at all (faasd started with --call-metrics false has none)."""
        return bool(self.calls)


def parse_calls(text: str, function: str) -> CallCounts:
    """``function``'s calls by code class and its duration histogram's sum and count, from /metrics' text."""
    calls: dict[str, float] = {}
    total = count = 0.0
    needle = f'function="{function}"'
    for line in text.splitlines():
        if needle not in line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        if labels.get("function") != function:
            continue
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        name = match.group("name")
        if name == CALLS_METRIC and "code" in labels:
            calls[labels["code"]] = value
        elif name == f"{DURATION_METRIC}_sum":
            total = value
        elif name == f"{DURATION_METRIC}_count":
            count = value
    return CallCounts(calls, total, count)


def code_class(status: int) -> str:
    """A status as /metrics counts it: ``2xx``..``5xx``."""
    return f"{min(max(status // 100, 1), 5)}xx"


def call_line(before: CallCounts, after: CallCounts, own: Counter[str]) -> str | None:
    """The calls that ended between two reads, less faas dev's own (``own``, taken from as they are
    matched): ``1 call: 2xx in 3.1 ms``, ``3 calls: 2 x 2xx, 1 x 5xx; mean 4.0 ms``; None for none."""
    new: dict[str, int] = {}
    mine = 0
    for code in sorted(set(after.calls) | set(before.calls), key=_class_order):
        added = max(0, round(after.calls.get(code, 0.0) - before.calls.get(code, 0.0)))
        taken = min(added, own[code])
        if taken:
            own[code] -= taken
            mine += taken
        if added - taken > 0:
            new[code] = added - taken
    calls = sum(new.values())
    if not calls:
        return None
    spent = after.duration_sum - before.duration_sum
    counted = after.duration_count - before.duration_count
    # faasd's histogram does not say which call took how long: a mean only when all of them are the user's.
    mean = f"{spent / counted * 1000:.1f} ms" if counted > 0 and not mine else ""
    codes = [_shown_code(code) for code in new]
    if calls == 1:
        return f"1 call: {codes[0]}" + (f" in {mean}" if mean else "")
    parts = ", ".join(f"{n} x {_shown_code(code)}" for code, n in new.items())
    return f"{calls} calls: {parts}" + (f"; mean {mean}" if mean else "")


def _class_order(code: str) -> tuple[int, str]:
    return (CODE_CLASSES.index(code) if code in CODE_CLASSES else len(CODE_CLASSES), code)


def _shown_code(code: str) -> str:
    return "499 (the caller left)" if code == "499" else code


def answer_text(reply: Reply) -> tuple[bool, str]:
    """``(ok, text)`` for a probe's answer: any answer of the function is ok (a 404 of its own too);
    faasd's error (a load error, a function error, a package not built) is one line saying so."""
    try:
        error = json.loads(reply.body)["error"]
        code, message = str(error.get("code") or ""), str(error["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        code = message = ""
    status = f"{reply.status} {reply.reason}".rstrip()
    if reply.status >= 500 and message:
        what = f"{code.replace('_', ' ')}: " if code else ""
        return False, f"{reply.status} ({what}{' '.join(message.split())})"
    return reply.status < 500, status


def build_error(log: str) -> str:
    """The last line of a build log that reads as the tool's own error (pip's ``ERROR: ...``, npm's
    ``npm ERR! ...``), not faasd's or the builder's summary; "" when there is none."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if text.startswith(("faasd:", "build:")):
            continue
        if re.match(r"(ERROR\b|error\b|npm ERR!|npm error\b|E: )", text) or "Error:" in text:
            return text[:200]
    return ""


def log_record(line: str) -> str:
    """A log record ``<RFC 3339 time> <instance> <stream> <text>`` as shown: local time of day, the
    instance, ``!`` before standard error's text."""
    parts = line.split(" ", 3)
    if len(parts) < 4:
        return line
    stamp, instance, stream, text = parts
    try:
        shown = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return line
    return f"{shown} log    {instance[:12]} {'! ' if stream == 'stderr' else ''}{text}"


def ms_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


# -- the session ------------------------------------------------------------------------------------------


class Console:
    """Lines from several threads, one at a time, each with the time of day."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self._echo = echo or (lambda text: typer.echo(text))
        self._lock = threading.Lock()

    def raw(self, text: str) -> None:
        with self._lock:
            self._echo(text)

    def line(self, tag: str, text: str) -> None:
        self.raw(f"{time.strftime('%H:%M:%S')} {tag:<6} {text}")


@dataclass
class DevOptions:
    path: Path  # the source file, or the package's folder
    name: str
    env: str | None
    url: str
    methods: list[str]
    entrypoint: str | None
    keep: bool = False
    probe: bool = True


@dataclass
class Created:
    """What this session made (and takes back at the end), and what was there before."""

    function: bool = False
    package: bool = False
    routes: list[str] = field(default_factory=list)  # trigger names
    function_existed: bool = False


class DevSession:
    def __init__(self, client: FaasClient, token: str | None, options: DevOptions, console: Console) -> None:
        self.client = client
        self.token = token
        self.options = options
        self.out = console
        self.path = options.path.resolve()
        self.package = self.path.is_dir()
        self.root = self.path if self.package else self.path.parent
        self.target = None if self.package else self.path
        self.created = Created()
        self.stop = threading.Event()
        self.changes: queue.Queue[tuple[float, set[str]] | BaseException] = queue.Queue()
        self._deployed = ""  # fingerprint of what faasd runs
        self._own: Counter[str] = Counter()  # faas dev's probe calls not yet matched in /metrics
        self._counts: CallCounts | None = None
        self._metrics_off = False

    @property
    def name(self) -> str:
        return self.options.name

    # -- the first deploy --------------------------------------------------------------------------

    def deploy(self) -> None:
        """Create or update the function (and package) and its routes, as `faas deploy` does."""
        opts = self.options
        plan = plan_routes(self.client.list_triggers(), self.name, opts.url, opts.methods)
        function = _found(lambda: self.client.get_function(self.name))
        self.created.function_existed = function is not None
        mark = fingerprint(self.path)
        if self.package:
            self._deploy_package(function)
        else:
            self._deploy_file(function)
        self._deployed = mark
        for method in plan.present:
            self.out.raw(f"route {method} {opts.url} exists")
        for method in plan.create:
            trigger = self.client.create_trigger(method, opts.url, self.name)
            self.created.routes.append(str(trigger.get("name", "")))
            self.out.raw(f"route {method} {opts.url} created")

    def _deploy_file(self, function: Json | None) -> None:
        source = read_source(self.path)
        settings: dict[str, Any] = {} if self.options.entrypoint is None else {"entrypoint": self.options.entrypoint}
        if function is not None:
            self.client.update_function(
                self.name, code=source.code, filename=source.filename, environment=self.options.env, **settings
            )
            self.out.raw(f"function '{self.name}' updated")
        elif self.options.env is None:
            raise CliError(f"function '{self.name}' does not exist yet; give --env to create it")
        else:
            self.client.create_function(self.name, self.options.env, source.code, filename=source.filename, **settings)
            self.created.function = True
            self.out.raw(f"function '{self.name}' created in environment '{self.options.env}'")

    def _deploy_package(self, function: Json | None) -> None:
        env = self.options.env
        package = _found(lambda: self.client.get_package(self.name))
        if package is None and env is None:
            raise CliError(f"package '{self.name}' does not exist yet; give --env to create it")
        with prepared(self.path, "source") as source:
            if package is None:
                assert env is not None
                self.client.create_package(self.name, env, source=source)
                self.created.package = True
            else:
                moved = env if env is not None and env != package.get("environment") else None
                self.client.update_package(self.name, environment=moved, source=source)
        self.out.raw(f"building package '{self.name}' ...")
        package = self._wait_built()
        if package.get("status") != "succeeded":
            for line in log_tail(package):
                self.out.raw(line)
            raise CliError(f"package '{self.name}' failed to build: {package.get('error') or 'see its build log'}")
        self.out.raw(f"package '{self.name}' built")
        entrypoint = self.options.entrypoint
        if function is not None:
            if function.get("package") != self.name and entrypoint is None:
                entrypoint = ""  # a file's handler name means nothing in a package: the runtime's default
            self.client.update_function(self.name, entrypoint=entrypoint, package=self.name)
            self.out.raw(f"function '{self.name}' updated")
        else:
            self.client.create_function(self.name, None, None, entrypoint=entrypoint or "", package=self.name)
            self.created.function = True
            self.out.raw(f"function '{self.name}' created in environment '{package.get('environment')}'")

    def _wait_built(self) -> Json:
        """The package once its build ended (succeeded or failed)."""
        began = time.monotonic()
        while True:
            package = self.client.get_package(self.name)
            if package.get("status") not in ("pending", "running"):
                return package
            waited = time.monotonic() - began
            if waited > BUILD_WAIT_SECONDS:
                raise CliError(f"package '{self.name}' is still {package.get('status')} after {waited:.0f}s")
            time.sleep(BUILD_FINE_POLL if waited < BUILD_FINE_FOR else BUILD_POLL)

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Deploy, then watch until Ctrl-C (KeyboardInterrupt) or the watcher fails; the caller cleans up."""
        self.deploy()
        self.out.raw(f"{self.client.server}{self.options.url}")
        self._start_logs()
        self._start_watcher()
        what = f"package folder '{self.options.path}'" if self.package else f"'{self.options.path}'"
        self.out.raw(f"watching {what}; Ctrl-C stops{'' if self.options.keep else ' and deletes what faas dev made'}")
        if self.options.probe:
            self._probe("ready", "the function", time.monotonic(), after_save=False)
        self._read_calls()
        debouncer = Debouncer()
        next_read = time.monotonic() + METRICS_EVERY
        while True:
            now = time.monotonic()
            waits = [next_read - now]
            pending = debouncer.wait(now)
            if pending is not None:
                waits.append(pending)
            try:
                item = self.changes.get(timeout=max(0.0, min(waits)))
            except queue.Empty:
                item = None
            if isinstance(item, BaseException):
                raise CliError(f"watching '{self.options.path}' failed: {item}")
            if item is not None:
                debouncer.add(item[1], item[0])
            now = time.monotonic()
            if debouncer.due(now):
                self.redeploy(debouncer.take())
            if time.monotonic() >= next_read:
                self._read_calls()
                next_read = time.monotonic() + METRICS_EVERY

    def redeploy(self, paths: set[str]) -> None:
        """One burst of saves: deploy it (unless it changed nothing), then probe; one line, whatever happens."""
        plan = classify(paths, self.root, self.target)
        if plan is None:
            return
        saved = saved_at(paths, time.time(), time.monotonic(), time.monotonic())
        if not self.path.exists():
            self.out.line("wait", f"'{self.options.path}' is gone; waiting for it to come back")
            return
        mark = fingerprint(self.path)
        if mark == self._deployed:
            return
        what = plan.describe()
        try:
            how = self._update(plan)
        except CliError as error:
            self.out.line("error", f"{what}: {' '.join(error.message.split())}")
            return
        self._deployed = mark
        if how is None:  # the build failed: said already
            return
        if not self.options.probe:
            self.out.line("deploy", f"{what}: {how}, deployed {ms_text(time.monotonic() - saved)} after the save")
            return
        self._probe("deploy", f"{what}: {how}, the new code", saved)

    def _update(self, plan: Plan) -> str | None:
        """Send the new source; what kind of redeploy it was, or None when the build failed (a line said so)."""
        if not self.package:
            code = read_source(self.path)
            function = self.client.update_function(self.name, code=code.code, filename=code.filename)
            return f"code only (revision {function.get('revision', '?')})"
        if plan.rebuild:
            self.out.line("build", f"{', '.join(plan.manifests)} changed: installing the dependencies again")
        with prepared(self.path, "source") as source:
            self.client.update_package(self.name, source=source)
        package = self._wait_built()
        log = str(package.get("build_log") or "")
        if package.get("status") != "succeeded":
            reason = " ".join(str(package.get("error") or "see its build log").split())
            detail = build_error(log)
            if detail:
                reason += f" ({detail})"
            self.out.line(
                "error",
                f"{plan.describe()}: package '{self.name}' failed to build: {reason}; "
                f"the last good build keeps serving (faas pkg info --name {self.name})",
            )
            return None
        if "cache hit" in log or "no dependency manifest" in log:
            return "code only (dependencies reused)"
        if "cache miss" in log:
            return "rebuilt (dependencies installed)"
        return "rebuilt"

    def _probe(self, tag: str, what: str, since: float, after_save: bool = True) -> None:
        """One call through /function/NAME; a line with its answer and the time since ``since``."""
        try:
            reply = self.client.invoke(self.name)
        except CliError as error:
            self.out.line("error", f"{what} did not answer: {' '.join(error.message.split())}")
            return
        elapsed = ms_text(time.monotonic() - since)
        self._own[code_class(reply.status)] += 1
        ok, text = answer_text(reply)
        if not ok:
            self.out.line("error", f"{what} answered {text}")
        elif after_save:
            self.out.line(tag, f"{what} answered {text}, {elapsed} after the save")
        else:
            self.out.line(tag, f"{what} answered {text} in {elapsed}")

    # -- the calls -------------------------------------------------------------------------------------

    def _read_calls(self) -> None:
        """Compare /metrics with the last read; print the calls that ended meanwhile (not faas dev's own)."""
        if self._metrics_off:
            return
        try:
            text = self._metrics()
        except ApiError as error:
            self._metrics_off = True
            self.out.line("note", f"no call lines: GET /metrics answered {error.status} ({error.message})")
            return
        except CliError:
            return  # the daemon did not answer this time; try again next time
        counts = parse_calls(text, self.name)
        if self._counts is None:
            self._counts = counts
            self._own.clear()  # counted before the first read: in the baseline already
            return
        line = call_line(self._counts, counts, self._own)
        self._counts = counts
        if line:
            self.out.line("call", line)

    def _metrics(self) -> str:
        """GET /metrics with the API token (the client has no method for it: it is not JSON)."""
        headers = {"Accept": "text/plain"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        handlers: list[urllib.request.BaseHandler] = []
        if is_loopback(urllib.parse.urlsplit(self.client.server).hostname or ""):
            handlers.append(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"{self.client.server}/metrics", headers=headers)
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=METRICS_TIMEOUT) as response:
                return str(response.read().decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as error:
            with error:
                raise ApiError(error.code, "", f"HTTP {error.code} {error.reason}") from None
        except (OSError, ValueError) as error:
            raise CliError(f"GET /metrics failed: {error}") from None

    # -- the threads ---------------------------------------------------------------------------------------

    def _start_logs(self) -> None:
        threading.Thread(target=self._follow_logs, name="faas-dev-logs", daemon=True).start()

    def _follow_logs(self) -> None:
        """Print the function's new log records as they come; follow again if the answer ends."""
        while not self.stop.is_set():
            try:
                for line in self.client.function_logs(self.name, tail=0, follow=True):
                    if self.stop.is_set():
                        return
                    if line:
                        self.out.raw(log_record(line))
            except ApiError as error:
                if error.status == 404:
                    return  # the function is gone
            except CliError:
                pass
            self.stop.wait(LOG_RETRY_SECONDS)

    def _start_watcher(self) -> None:
        try:
            import watchfiles  # noqa: F401  (imported here: `faas --help` does not pay for it)
        except ImportError:
            raise CliError("faas dev needs the watchfiles package: pip install 'watchfiles>=0.21'") from None
        threading.Thread(target=self._watch, name="faas-dev-watch", daemon=True).start()

    def _relevant(self, _change: object, path: str) -> bool:
        return classify([path], self.root, self.target) is not None

    def _watch(self) -> None:
        import watchfiles

        try:
            for batch in watchfiles.watch(
                self.root,
                watch_filter=self._relevant,
                debounce=int(LONGEST_DEBOUNCE_SECONDS * 1000),
                step=WATCH_STEP_MS,
                stop_event=self.stop,
                rust_timeout=1000,
                recursive=self.package,
                raise_interrupt=False,
            ):
                self.changes.put((time.monotonic(), {path for _change, path in batch}))
        except Exception as error:  # the folder went away, too many watches...: the loop ends on it
            if not self.stop.is_set():
                self.changes.put(error)

    # -- the end -------------------------------------------------------------------------------------------

    def cleanup(self) -> bool:
        """Stop the threads; unless --keep, delete what this session made. False when a delete failed."""
        self.stop.set()
        made = self.created
        if self.options.keep:
            kept = [f"function '{self.name}'"] if made.function else []
            kept += [f"package '{self.name}'"] if made.package else []
            kept += [f"route '{name}'" for name in made.routes]
            if kept:
                self.out.raw(f"kept {', '.join(kept)} (--keep)")
            return True
        ok = True
        if made.function:
            ok &= self._delete(
                lambda: self.client.delete_function(self.name, force=True),
                f"function '{self.name}' deleted" + (" with its route" if made.routes else ""),
            )
        else:
            for trigger in made.routes:
                ok &= self._delete(functools.partial(self.client.delete_trigger, trigger), f"route '{trigger}' deleted")
            if made.function_existed:
                self.out.raw(f"function '{self.name}' existed before faas dev: left as it is now")
        if made.package:
            ok &= self._delete(lambda: self.client.delete_package(self.name), f"package '{self.name}' deleted")
        return ok

    def _delete(self, delete: Callable[[], object], done: str) -> bool:
        try:
            delete()
        except ApiError as error:
            if error.status != 404:
                self.out.raw(f"error: {' '.join(error.message.split())}")
                return False
        except CliError as error:
            self.out.raw(f"error: {' '.join(error.message.split())}")
            return False
        self.out.raw(done)
        return True


def _found(get: Callable[[], Json]) -> Json | None:
    """What ``get`` fetched, or None for a 404."""
    try:
        return get()
    except ApiError as error:
        if error.status == 404:
            return None
        raise
