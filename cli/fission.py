"""`fission`: the same program as `faas`, taking Fission v1.22's command lines.

Fission's spellings of what faasd does are the commands' own options and
commands (``--fntimeout`` is ``--timeout``, ``--minscale`` ``--min-instances``,
``fn logs --detail``, ``pkg info``...; faas_cli/options.py and commands/).
This module adds, from the one table below, the flags of Fission's that mean
nothing without Kubernetes: each is accepted where Fission takes it, hidden
from ``--help``, and explained once a run on stderr::

    note: --mincpu ignored: faasd sets a CPU limit (--maxcpu), not a request ...

A few flags would make the command do something else than what faasd does
(``--prefix`` routes a whole subtree; ``--spec`` where no spec file of that
kind is written): those are refused, in one ``error:`` line, rather than
ignored. Where faasd writes the spec file (``fn``, ``env``, ``pkg``,
``route`` and ``tt create``), ``--spec``, ``--dry`` and ``--specdir`` are the
commands' own (:func:`saved_as_spec`).

Started as ``fission`` (the console script, or any program of that name), the
commands whose output Fission's scripts read print it Fission's way: see
:func:`faas_cli.options.is_fission`. docs/fission.md is the table for users.
"""

from __future__ import annotations

import functools
import inspect
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from typer.models import OptionInfo

from faas_cli.errors import CliError, error_line
from faas_cli.output import note_once

PROGRAM = "fission"
SPEC_PANEL = "Spec files (Fission's --spec)"
DEPLOYMENT_CONFIG_FILE = "fission-deployment-config.yaml"

SpecSave = Annotated[
    bool,
    typer.Option(
        "--spec",
        help="Write the object's spec file under --specdir instead of making it ('spec apply' makes it).",
        rich_help_panel=SPEC_PANEL,
    ),
]
SpecDry = Annotated[
    bool,
    typer.Option("--dry", help="Print the spec file instead of making the object.", rich_help_panel=SPEC_PANEL),
]
SpecDir = Annotated[
    Path,
    typer.Option("--specdir", help="The spec directory ('spec init' makes it).", rich_help_panel=SPEC_PANEL),
]
DEFAULT_SPECDIR = Path("specs")


@dataclass(frozen=True)
class Flag:
    """A flag of Fission's that faasd accepts without acting on it.

    ``kind``: ``value`` takes a value, ``flag`` none, ``multiple`` a value and
    may be repeated. ``refuse``: an error instead of a note (the command would
    otherwise do something else than asked). ``quiet``: faasd does this anyway,
    so nothing is printed.
    """

    names: tuple[str, ...]
    why: str
    kind: str = "value"
    refuse: bool = False
    quiet: bool = False

    @property
    def param(self) -> str:
        return "fission_" + self.names[0].lstrip("-").replace("-", "_").lower()

    def annotation(self) -> Any:
        option = typer.Option(*self.names, hidden=True)
        if self.kind == "flag":
            return Annotated[bool, option]
        if self.kind == "multiple":
            return Annotated[list[str] | None, option]
        return Annotated[str | None, option]

    def default(self) -> Any:
        return False if self.kind == "flag" else None


NAMESPACE = "faasd has one namespace: a name is unique on the daemon"
NO_KUBERNETES = "faasd runs on one machine's Docker engine, without Kubernetes"
SPEC = (
    "it saves a spec file instead of making the object, and this CLI writes none of this kind: write the "
    "YAML under specs/ and run 'fission spec apply'"
)
CHECKSUM = "a checksum checks an archive fetched from a URL; faasd's CLI uploads local files"
PREFIX = (
    "faasd routes a whole URL pattern, not a prefix: route the paths beneath one with a parameter, "
    "e.g. --url /api/{path}"
)

GLOBAL = (
    Flag(("--namespace", "-n", "--fnNamespace", "--envNamespace", "--pkgNamespace", "--triggerNamespace"), NAMESPACE),
    Flag(("--kube-context",), NO_KUBERNETES),
    Flag(("--verbosity", "-v"), "faasd's CLI prints one level of detail (errors always)"),
)
"""Fission's global flags: every command takes them."""

ALL_NAMESPACES = Flag(("--all-namespaces", "-A"), NAMESPACE, kind="flag")
SPEC_FLAGS = (
    Flag(("--spec",), SPEC, kind="flag", refuse=True),
    Flag(("--dry",), SPEC, kind="flag", refuse=True),
)
CPU_REQUEST = Flag(
    ("--mincpu",), "faasd gives a function a CPU limit (--maxcpu), not a request: Kubernetes schedules by requests"
)
MEMORY_REQUEST = Flag(
    ("--minmemory",),
    "faasd gives a function a memory limit (--maxmemory), not a request: Kubernetes schedules by requests",
)
FUNCTION_RUNTIME = (
    CPU_REQUEST,
    MEMORY_REQUEST,
    Flag(
        ("--targetcpu",),
        "no CPU-driven autoscaler: faasd adds an instance when those it has are busy "
        "(--requestsperpod calls each), up to --maxscale",
    ),
    Flag(("--specializationtimeout", "--st"), "how long an instance may take to specialize is the daemon's setting"),
    Flag(("--configmap",), "ConfigMaps are Kubernetes objects: give the values with --setenv NAME=VALUE", "multiple"),
    Flag(("--annotation",), "faasd keeps labels (--labels), not annotations", "multiple"),
    Flag(
        ("--onceonly", "--yolo"),
        "an instance serves many calls; --requestsperpod 1 makes it serve one at a time",
        "flag",
    ),
    Flag(("--retainpods",), "faasd keeps no extra specialized containers: instances come and go with the calls"),
    Flag(("--srcchecksum",), CHECKSUM),
    Flag(("--deploychecksum",), CHECKSUM),
    Flag(("--insecure",), CHECKSUM, "flag"),
)
ENVIRONMENT = (
    Flag(("--mincpu",), "faasd sets CPU per function (fn create --maxcpu), not per environment"),
    Flag(("--maxcpu",), "faasd sets CPU per function (fn create --maxcpu), not per environment"),
    Flag(("--minmemory",), "faasd sets memory per function (fn create --maxmemory), not per environment"),
    Flag(("--maxmemory",), "faasd sets memory per function (fn create --maxmemory), not per environment"),
    Flag(("--graceperiod", "--period"), "an instance is stopped once its calls in flight have finished"),
    Flag(
        ("--imagepullsecret",),
        "the Docker engine pulls the image (log it in to a private registry with 'docker login')",
    ),
    Flag(("--keeparchive",), "faasd unpacks every deployment archive", "flag"),
    Flag(
        ("--externalnetwork",),
        "a function reaches the network outside the machine by default (fn create --network)",
        "flag",
    ),
    Flag(("--version",), "faasd's runtimes load one file or a package alike: there is one interface"),
    Flag(
        ("--buildcmd",),
        "faasd's builders have their own default build command: give --buildcmd to pkg create or fn create",
    ),
    Flag(("--annotation",), "faasd keeps labels (--labels), not annotations", "multiple"),
)
INGRESS = (
    Flag(("--createingress",), "faasd serves every route on its own port: there is no Ingress", "flag"),
    Flag(("--ingressrule",), "faasd serves every route on its own port: there is no Ingress"),
    Flag(("--ingressannotation",), "faasd serves every route on its own port: there is no Ingress", "multiple"),
    Flag(("--ingresstls",), "faasd serves every route on its own port: there is no Ingress (put TLS in front)"),
    Flag(("--host",), "a route matches the path, whatever the Host header"),
    Flag(("--prefix",), PREFIX, refuse=True),
    Flag(("--keepprefix",), PREFIX, "flag", refuse=True),
)
LOG_DATABASE = Flag(("--dbtype",), "faasd keeps what functions print itself: there is no log database")

COMMANDS: dict[tuple[str, str], tuple[Flag, ...]] = {
    ("function", "create"): (*FUNCTION_RUNTIME, Flag(("--prefix",), PREFIX, refuse=True)),
    ("function", "update"): (
        *FUNCTION_RUNTIME,
        Flag(("--force",), "faasd updates a package whichever functions run it", "flag", quiet=True),
    ),
    ("function", "list"): (ALL_NAMESPACES,),
    ("function", "test"): (LOG_DATABASE,),
    ("function", "logs"): (
        LOG_DATABASE,
        Flag(("--podnamespace",), NAMESPACE),
        Flag(("--allpods",), "faasd shows every instance's lines anyway", "flag", quiet=True),
    ),
    ("function", "log"): (
        LOG_DATABASE,
        Flag(("--podnamespace",), NAMESPACE),
        Flag(("--allpods",), "faasd shows every instance's lines anyway", "flag", quiet=True),
    ),
    ("env", "create"): ENVIRONMENT,
    ("env", "update"): ENVIRONMENT,
    ("env", "list"): (ALL_NAMESPACES,),
    ("env", "delete"): (
        Flag(
            ("--force", "-f"),
            "faasd never deletes an environment that functions or packages use: delete them first",
            "flag",
        ),
    ),
    ("package", "create"): (
        Flag(("--srcchecksum",), CHECKSUM),
        Flag(("--deploychecksum",), CHECKSUM),
        Flag(("--insecure",), CHECKSUM, "flag"),
    ),
    ("package", "update"): (
        Flag(("--srcchecksum",), CHECKSUM),
        Flag(("--deploychecksum",), CHECKSUM),
        Flag(("--insecure",), CHECKSUM, "flag"),
        Flag(("--force", "-f"), "faasd updates a package whichever functions run it", "flag", quiet=True),
    ),
    ("package", "list"): (ALL_NAMESPACES,),
    ("route", "create"): INGRESS,
    ("route", "update"): INGRESS,
    ("route", "list"): (ALL_NAMESPACES,),
    ("timer", "list"): (ALL_NAMESPACES,),
    ("mqtrigger", "create"): (
        Flag(
            ("--secret",),
            "Fission's secret lets KEDA log in to the broker: give faasd the broker's URL with --connection "
            "or --connection-secret",
        ),
        *SPEC_FLAGS,
    ),
    ("mqtrigger", "update"): (
        Flag(
            ("--secret",),
            "Fission's secret lets KEDA log in to the broker: give faasd the broker's URL with --connection "
            "or --connection-secret",
        ),
    ),
    ("mqtrigger", "list"): (ALL_NAMESPACES,),
    ("watch", "create"): (Flag(("--ns",), "faasd watches the Docker engine, which has no namespaces"), *SPEC_FLAGS),
    ("watch", "list"): (ALL_NAMESPACES,),
    ("canary", "create"): (
        Flag(
            ("--failure-type",),
            "faasd counts a failure by its status code only (a 5xx answer of the new function), Fission's "
            "status-code, its one type",
        ),
    ),
}
"""Per command (its group, as `faas` names it, and its name), the flags it accepts and ignores."""


def saved_as_spec(spec: bool, dry: bool, specdir: Path, write: Callable[[Path], Sequence[Path]]) -> bool:
    """Fission's ``--spec`` (and ``--dry``): the object's spec file(s) instead of the object; whether it was so.

    ``write`` writes them into the spec directory it is given (faas_cli.specs'
    writers) and returns their paths. ``--spec`` writes into ``specdir``;
    ``--dry`` into a copy of it beside it (so that the files' paths read the
    same), prints what was written, and leaves ``specdir`` as it was.
    """
    if not spec and not dry:
        return False
    if not dry:
        for path in write(specdir):
            typer.echo(f"spec file {path} written")
        return True
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".spec-dry-", dir=specdir.resolve().parent))
    except OSError as error:
        raise CliError(f"cannot write beside '{specdir}' ({(error.strerror or str(error)).lower()})") from None
    try:
        if (specdir / DEPLOYMENT_CONFIG_FILE).is_file():
            shutil.copytree(specdir, scratch, dirs_exist_ok=True)
        else:
            from faas_cli.specs import files

            files.init(scratch)
        for number, path in enumerate(write(scratch)):
            text = path.read_text(encoding="utf-8")
            typer.echo(("---\n" if number else "") + text, nl=not text.endswith("\n"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


def why(name: str) -> str:
    """Why a global flag of Fission's means nothing here."""
    return next((flag.why for flag in GLOBAL if name in flag.names), NO_KUBERNETES)


def why_of(group: str, command: str, name: str) -> str:
    """Why ``fission <group> <command>`` ignores flag ``name``."""
    return next(flag.why for flag in flags_of(group, command) if name in flag.names)


def flags_of(group: str, command: str) -> tuple[Flag, ...]:
    """What ``fission <group> <command>`` accepts without acting on it: its own, then the global ones."""
    return (*COMMANDS.get((group, command), ()), *GLOBAL)


def heed(flags: Iterable[Flag], values: dict[str, Any]) -> None:
    """Explain (once a run) each of ``flags`` given in ``values``; a refused one is a :class:`CliError`."""
    for flag in flags:
        value = values.get(flag.param)
        if value is None or value is False or value == []:
            continue
        if flag.refuse:
            raise CliError(f"{flag.names[0]} is not supported: {flag.why}")
        if not flag.quiet:
            note_once(flag.names[0], f"{flag.names[0]} ignored: {flag.why}")


def _declared(signature: inspect.Signature) -> set[str]:
    """The option names a command declares itself (typer's default is --param-name)."""
    names = {"--help", "-h"}
    for parameter in signature.parameters.values():
        infos = [m for m in getattr(parameter.annotation, "__metadata__", ()) if isinstance(m, OptionInfo)]
        decls = [d for info in infos for d in (info.param_decls or ())]
        for decl in decls or ["--" + parameter.name.replace("_", "-")]:
            names.update(part for part in decl.split("/") if part)
    return names


def accepting(callback: Callable[..., Any], flags: Iterable[Flag]) -> Callable[..., Any]:
    """``callback`` with ``flags`` as hidden options: explained when given, then dropped.

    A flag the command declares itself (any of its names) is left to the command.
    """
    signature = inspect.signature(callback, eval_str=True)
    hints = get_type_hints(callback, include_extras=True)
    taken = _declared(signature)
    added = [flag for flag in flags if not taken.intersection(flag.names)]
    if not added:
        return callback

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        given = {flag.param: kwargs.pop(flag.param, None) for flag in added}
        try:
            heed(added, given)
        except CliError as error:
            typer.echo(error_line(error), err=True)
            raise typer.Exit(code=1) from None
        return callback(*args, **kwargs)

    parameters = [
        inspect.Parameter(f.param, inspect.Parameter.KEYWORD_ONLY, default=f.default(), annotation=f.annotation())
        for f in added
    ]
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *parameters]
    )
    run.__annotations__ = {**hints, **{p.name: p.annotation for p in parameters}}
    return run


def adapt(app: typer.Typer) -> None:
    """Give every command of ``app`` Fission's flags it accepts and ignores (once, after all are registered).

    A group registered under several names (``function`` and ``fn``) is one
    typer app; it is known by the first name.
    """
    if getattr(app, "_fission_adapted", False):
        return
    app._fission_adapted = True  # type: ignore[attr-defined]
    groups: list[tuple[str, typer.Typer]] = [("", app)]
    seen = {id(app)}
    for info in app.registered_groups:
        sub = info.typer_instance
        if sub is not None and id(sub) not in seen and info.name:
            seen.add(id(sub))
            groups.append((info.name, sub))
    for group, typer_app in groups:
        for command in typer_app.registered_commands:
            if command.callback is None:
                continue
            name = command.name or command.callback.__name__.lower().replace("_", "-")
            command.callback = accepting(command.callback, flags_of(group, name))
