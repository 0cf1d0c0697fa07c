"""Options several commands share, and the context object the root command leaves.

Each option is written once here as an ``Annotated`` alias, so its flags and
help read the same in every command.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_type_hints

import typer

from faas_cli.client import DEFAULT_SERVER, FaasClient
from faas_cli.credentials import token_for
from faas_cli.errors import CliError
from faas_cli.output import OutputFormat, note_once

FISSION_PANEL = "Fission's spellings"
EXECUTORS = ("poolmgr", "newdeploy")
MAX_INSTANCES = 100
"""faasd's limit on a function's instances (faasd/control/controller.py)."""


@dataclass(frozen=True)
class Connection:
    """Where the daemon is and how to authenticate: read once by the root command.

    ``fission``: the program was started as ``fission`` (faas_cli/fission.py), so
    the commands that print differently for Fission's scripts do so.
    """

    server: str
    token: str | None = None
    fission: bool = False


def is_fission(ctx: typer.Context) -> bool:
    """Whether the command runs as ``fission`` rather than ``faas``."""
    connection = ctx.find_object(Connection)
    return connection is not None and connection.fission


def program(ctx: typer.Context) -> str:
    """``fission`` or ``faas``: the name to use in hints such as "see 'faas pkg info'"."""
    return "fission" if is_fission(ctx) else "faas"


def client_of(ctx: typer.Context) -> FaasClient:
    """A client for the daemon named by the global options.

    Built on demand, not in the root callback, so that `--help` works with a
    malformed FAAS_URL; an invalid URL is a CliError from the command.
    """
    connection = ctx.find_object(Connection) or Connection(server=DEFAULT_SERVER)
    return FaasClient(connection.server, token_for(connection.server, connection.token))


def output_format(value: str | OutputFormat) -> OutputFormat:
    """``-o``: table or json; Fission's ``wide`` is the table, its ``yaml`` the JSON (which YAML parsers read)."""
    if isinstance(value, OutputFormat):
        return value
    text = value.strip().lower()
    if text == "wide":
        return OutputFormat.table
    if text == "yaml":
        note_once("-o yaml", "-o yaml prints JSON (which is YAML too: any YAML parser reads it)")
        return OutputFormat.json
    try:
        return OutputFormat(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not one of table, json") from None


Output = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", parser=output_format, metavar="table|json", help="Output format: table or json."),
]
FunctionName = Annotated[str, typer.Option("--name", help="Function name.")]
Entrypoint = Annotated[
    str | None,
    typer.Option(
        "--entrypoint",
        "--entry",
        help="The handler: a function name in one source file; in a package, Fission's module.function "
        "(Python, default main.main) or file.export (Node.js, default index). The runtime's default when omitted.",
    ),
]
PackageOfFunction = Annotated[
    str | None,
    typer.Option(
        "--pkg",
        "--pkgname",
        help="Package whose deployment the function runs (instead of --code).",
        show_default=False,
    ),
]
Timeout = Annotated[
    int | None,
    typer.Option("--timeout", "--fntimeout", "--ft", min=1, help="Seconds a call may take before faasd answers 504."),
]

# A function's variables, secrets, limits and scaling: create, update and deploy take them all.
SetEnv = Annotated[
    list[str] | None,
    typer.Option("--setenv", help="NAME=VALUE variable for the function (repeat; replaces its variables)."),
]
Secret = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="NAME=VALUE secret (repeat; replaces its secrets); NAME alone takes $NAME from your environment. "
        "Never shown back.",
    ),
]
Memory = Annotated[
    int | None, typer.Option("--memory", "--maxmemory", min=32, help="Memory limit in MB (default 256).")
]
# Taken as text and checked here and by the daemon, so a bad value is one `error:` line.
Cpu = Annotated[
    str | None,
    typer.Option(
        "--cpu",
        "--maxcpu",
        metavar="MILLICORES",
        help="CPU limit in millicores, 50 to 64000; 1000 = one core (default 1000).",
        show_default=False,
    ),
]
Network = Annotated[
    str | None,
    typer.Option(
        "--network",
        metavar="default|none|NAME",
        help="'default' (the default) reaches beyond the machine but never other containers, faasd or the host; "
        "'none' gives no network at all; NAME, a Docker network of yours (e.g. faasd-apps), adds its services "
        "(Redis, NATS, a database) but still no other function and not the host.",
        show_default=False,
    ),
]
Concurrency = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "--con",
        min=1,
        help="Calls in flight per instance (default 50). As 'fission': Fission's meaning, instances at most "
        "(as --maxscale, which wins); calls per instance are --requestsperpod there.",
    ),
]
RequestsPerPod = Annotated[
    int | None,
    typer.Option(
        "--requestsperpod",
        "--rpp",
        min=1,
        help="Fission's spelling of calls in flight per instance (faas: --concurrency).",
        rich_help_panel=FISSION_PANEL,
    ),
]
MaxInstances = Annotated[
    int | None,
    typer.Option("--max-instances", "--maxscale", min=1, help="Instances at most; then calls queue (default 10)."),
]
MinInstances = Annotated[
    int | None,
    typer.Option("--min-instances", "--minscale", min=0, help="Instances kept warm, never reaped (default 0)."),
]
IdleTimeout = Annotated[
    int | None, typer.Option("--idle-timeout", "--idletimeout", min=1, help="Seconds idle before an instance goes.")
]
Executor = Annotated[
    str | None,
    typer.Option(
        "--executortype",
        metavar="poolmgr|newdeploy",
        help="Fission's executor: poolmgr (the default) specializes a pooled container; newdeploy starts "
        "the function's own instances, no pool taken.",
        show_default=False,
        rich_help_panel=FISSION_PANEL,
    ),
]
Labels = Annotated[
    str | None,
    typer.Option(
        "--labels",
        metavar="KEY=VALUE,...",
        help="Labels, comma-separated (replace the object's labels on update).",
        show_default=False,
    ),
]
QueueTimeout = Annotated[
    int | None, typer.Option(min=0, help="Seconds a call waits at max instances before 429 (default 10).")
]
# How an asynchronous call (faas fn invoke --async, an --async route, a timer, a watch) is retried.
Retries = Annotated[
    int | None,
    typer.Option(
        "--retries",
        min=0,
        help="Retries of an asynchronous call after its first attempt, 0 to 100 (default 4: 5 attempts in all).",
        show_default=False,
    ),
]
RetryMaxAge = Annotated[
    str | None,
    typer.Option(
        "--retry-max-age",
        metavar="SECONDS",
        help="No attempt of an asynchronous call after this long since it arrived: seconds, or 90s, 15m, 6h, 7d "
        "(default 6h, at most 7d); then it is a dead letter.",
        show_default=False,
    ),
]

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _pairs(items: list[str] | None, what: str, from_environment: bool = False) -> dict[str, str] | None:
    if items is None:
        return None
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if not from_environment:
                raise CliError(f"{what} {item!r} must be NAME=VALUE")
            if key not in os.environ:
                raise CliError(f"{what} {key!r} has no value: give NAME=VALUE or set ${key}")
            value = os.environ[key]
        pairs[key] = value
    return pairs


def _millicores(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise CliError(f"--cpu {text!r} must be a whole number of millicores (1000 = one core)") from None


def seconds_of(text: str | None, option: str) -> int | None:
    """Plain seconds (``90``) or a duration (``90s``, ``15m``, ``6h``, ``7d``) as seconds."""
    if text is None:
        return None
    value = text.strip().lower()
    factor = DURATION_UNITS.get(value[-1:], 0)
    digits = value[:-1] if factor else value
    if not digits.isascii() or not digits.isdigit():
        raise CliError(f"{option} {text!r} must be seconds or a duration such as 90s, 15m, 6h or 7d")
    return int(digits) * (factor or 1)


def label_pairs(text: str | None, option: str = "--labels") -> dict[str, str] | None:
    """Fission's ``--labels "app=shop,tier=web"`` as the API's labels object (``""``: none)."""
    if text is None:
        return None
    labels: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option} {text!r}: each label must be KEY=VALUE, comma-separated")
        labels[key.strip()] = value.strip()
    return labels


def executor_of(text: str | None) -> str | None:
    """``--executortype``'s value, checked: poolmgr or newdeploy."""
    if text is None:
        return None
    value = text.strip().lower()
    if value == "container":
        raise CliError(
            "--executortype container (an image of your own) is not supported: faasd runs functions in an "
            "environment's runtime; make an environment of your image with 'env create --image'"
        )
    if value not in EXECUTORS:
        raise CliError(f"--executortype {text!r} must be poolmgr or newdeploy")
    return value


def function_settings(
    setenv: list[str] | None = None,
    secret: list[str] | None = None,
    memory: int | None = None,
    cpu: str | None = None,
    network: str | None = None,
    concurrency: int | None = None,
    max_instances: int | None = None,
    min_instances: int | None = None,
    idle_timeout: int | None = None,
    queue_timeout: int | None = None,
    retries: int | None = None,
    retry_max_age: str | None = None,
    requestsperpod: int | None = None,
    executortype: str | None = None,
    labels: str | None = None,
    fission: bool = False,
) -> dict[str, Any]:
    """The API fields of the options that were given (nothing for those that were not).

    ``fission``: ``--concurrency`` has Fission's meaning, the most instances
    specialized at once (so max_instances, unless ``--maxscale`` says), and calls
    per instance are ``--requestsperpod``.
    """
    if fission and concurrency is not None:
        if max_instances is None:
            if concurrency > MAX_INSTANCES:
                note_once(
                    "--concurrency",
                    f"--concurrency {concurrency}: faasd runs at most {MAX_INSTANCES} instances of a function; "
                    f"max instances set to {MAX_INSTANCES}",
                )
            max_instances = min(concurrency, MAX_INSTANCES)
        concurrency = None
    if requestsperpod is not None:
        concurrency = requestsperpod
    fields = {
        "env": _pairs(setenv, "--setenv"),
        "secrets": _pairs(secret, "--secret", from_environment=True),
        "memory_mb": memory,
        "cpu_millis": _millicores(cpu),
        "network": network,
        "concurrency": concurrency,
        "max_instances": max_instances,
        "min_instances": min_instances,
        "idle_timeout": idle_timeout,
        "queue_timeout": queue_timeout,
        "retries": retries,
        "retry_max_age": seconds_of(retry_max_age, "--retry-max-age"),
        "executor": executor_of(executortype),
        "labels": label_pairs(labels),
    }
    return {key: value for key, value in fields.items() if value is not None}


# The options above, in the order --help lists them, with the API field helper that reads them.
_SETTINGS: dict[str, Any] = {
    "setenv": SetEnv,
    "secret": Secret,
    "memory": Memory,
    "cpu": Cpu,
    "network": Network,
    "concurrency": Concurrency,
    "max_instances": MaxInstances,
    "min_instances": MinInstances,
    "idle_timeout": IdleTimeout,
    "queue_timeout": QueueTimeout,
    "retries": Retries,
    "retry_max_age": RetryMaxAge,
    "requestsperpod": RequestsPerPod,
    "executortype": Executor,
    "labels": Labels,
}


def with_function_settings(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the function-settings options, declared once here.

    The command takes ``settings: dict[str, Any]`` (the API fields of the options
    given); typer sees the options above in its place. Apply it under
    ``@reports_errors``.
    """
    signature = inspect.signature(command, eval_str=True)
    hints = get_type_hints(command, include_extras=True)
    own = [p for name, p in signature.parameters.items() if name != "settings"]
    added = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a) for n, a in _SETTINGS.items()
    ]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        values = {name: kwargs.pop(name, None) for name in _SETTINGS}
        ctx = kwargs.get("ctx")  # typer's context (not an instance of typer.Context, its annotation)
        fission = ctx is not None and is_fission(ctx)
        command(*args, settings=function_settings(**values, fission=fission), **kwargs)

    run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    run.__annotations__ = {**{k: v for k, v in hints.items() if k != "settings"}, **_SETTINGS}
    return run
