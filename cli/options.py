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
from faas_cli.output import OutputFormat


@dataclass(frozen=True)
class Connection:
    """Where the daemon is and how to authenticate: read once by the root command."""

    server: str
    token: str | None = None


def client_of(ctx: typer.Context) -> FaasClient:
    """A client for the daemon named by the global options.

    Built on demand, not in the root callback, so that `--help` works with a
    malformed FAAS_URL; an invalid URL is a CliError from the command.
    """
    connection = ctx.find_object(Connection) or Connection(server=DEFAULT_SERVER)
    return FaasClient(connection.server, token_for(connection.server, connection.token))


Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format: table or json.")]
FunctionName = Annotated[str, typer.Option("--name", help="Function name.")]
Entrypoint = Annotated[
    str | None,
    typer.Option(
        help="The handler: a function name in one source file; in a package, Fission's module.function "
        "(Python, default main.main) or file.export (Node.js, default index). The runtime's default when omitted."
    ),
]
PackageOfFunction = Annotated[
    str | None,
    typer.Option("--pkg", help="Package whose deployment the function runs (instead of --code).", show_default=False),
]
Timeout = Annotated[
    int | None,
    typer.Option(min=1, help="Seconds a call may take before faasd answers 504."),
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
Memory = Annotated[int | None, typer.Option("--memory", min=32, help="Memory limit in MB (default 256).")]
# Taken as text and checked here and by the daemon, so a bad value is one `error:` line.
Cpu = Annotated[
    str | None,
    typer.Option(
        "--cpu",
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
Concurrency = Annotated[int | None, typer.Option(min=1, help="Calls in flight per instance (default 50).")]
MaxInstances = Annotated[int | None, typer.Option(min=1, help="Instances at most; then calls queue (default 10).")]
MinInstances = Annotated[int | None, typer.Option(min=0, help="Instances kept warm, never reaped (default 0).")]
IdleTimeout = Annotated[int | None, typer.Option(min=1, help="Seconds idle before an instance goes.")]
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
) -> dict[str, Any]:
    """The API fields of the options that were given (nothing for those that were not)."""
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
        command(*args, settings=function_settings(**values), **kwargs)

    run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    run.__annotations__ = {**{k: v for k, v in hints.items() if k != "settings"}, **_SETTINGS}
    return run
