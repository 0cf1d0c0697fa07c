"""The `faas` command: global options, and the command groups of faas_cli/commands.

`fission` is the same program (:func:`fission`): Fission v1.22's command lines
run unchanged, see faas_cli/fission.py and docs/fission.md.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Annotated, Any

import typer

from faas_cli import fission as fission_cli
from faas_cli.client import DEFAULT_SERVER
from faas_cli.commands import (
    canary,
    deploy,
    dev,
    dlq,
    env,
    function,
    invocation,
    mqtrigger,
    node,
    package,
    route,
    spec,
    status,
    timer,
    usage,
    watch,
)
from faas_cli.errors import CliError, reports_errors
from faas_cli.options import Connection, client_of
from faas_cli.output import forget_notes, note_once

app = typer.Typer(
    name="faas",
    no_args_is_help=True,
    # A traceback is shown only for a bug; never print local variables (the token).
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(env.app, name="env")
app.add_typer(function.app, name="function", help="Functions: code that runs in an environment (alias: fn).")
app.add_typer(function.app, name="fn", hidden=True)
app.add_typer(
    package.app,
    name="package",
    help="Packages: a source archive built by its environment's builder, or a ready deployment (alias: pkg).",
)
app.add_typer(package.app, name="pkg", hidden=True)
app.add_typer(
    route.app,
    name="route",
    help="HTTP triggers: a method and URL pattern that call a function (alias: httptrigger).",
)
app.add_typer(route.app, name="httptrigger", hidden=True)
app.add_typer(route.app, name="ht", hidden=True)
app.add_typer(
    timer.app,
    name="timer",
    help="Timers: call a function on a cron schedule (alias: timetrigger, tt).",
)
app.add_typer(timer.app, name="timetrigger", hidden=True)
app.add_typer(timer.app, name="tt", hidden=True)
app.add_typer(
    watch.app,
    name="watch",
    help="Watches: call a function when containers, networks, volumes or images change (alias: w).",
)
app.add_typer(watch.app, name="w", hidden=True)
app.add_typer(
    mqtrigger.app,
    name="mqtrigger",
    help="Message-queue triggers: call a function for each message on a Redis or NATS topic "
    "(alias: mqt, messagequeue).",
)
app.add_typer(mqtrigger.app, name="mqt", hidden=True)
app.add_typer(mqtrigger.app, name="messagequeue", hidden=True)
app.add_typer(
    invocation.app,
    name="invocation",
    help="Asynchronous calls: their status, attempts and answer (alias: inv).",
)
app.add_typer(invocation.app, name="inv", hidden=True)
app.add_typer(dlq.app, name="dlq")
app.add_typer(node.app, name="node")
app.add_typer(
    canary.app,
    name="canary",
    help="Canaries: a new function takes a route's calls from the old one step by step, or is rolled back "
    "when its failure rate passes a threshold.",
)
app.add_typer(canary.app, name="canary-config", hidden=True)
app.add_typer(
    spec.app,
    name="spec",
    help="Fission spec files: a specs/ directory of YAML documents applied as a whole (init, validate, apply, "
    "destroy, list, export).",
)
app.command()(deploy.deploy)
app.command()(dev.dev)
app.command()(status.status)
app.command()(usage.usage)


def client_version() -> str | None:
    try:
        return metadata.version("faasd")
    except metadata.PackageNotFoundError:
        return None


def version_text() -> str:
    version = client_version()
    return f"faas {version}" if version else "faas (version unknown)"


@app.command("version")
@reports_errors
def version_(ctx: typer.Context) -> None:
    """Print this CLI's version and the daemon's (Fission's `fission version`)."""
    typer.echo("client:")
    typer.echo(f"  faas: {client_version() or 'unknown'}")
    typer.echo("server:")
    try:
        health = client_of(ctx).health()
    except CliError as error:
        typer.echo(f"  faasd: unknown ({error.message})")
        return
    typer.echo(f"  faasd: {health.get('version', 'unknown')}")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


FISSION_URLS = ("FISSION_URL", "FISSION_ROUTER")
"""Fission's variables for its controller and its router: both are faasd's one URL."""


def server_from_fission() -> str | None:
    """FISSION_URL, else FISSION_ROUTER; Fission writes the router as host:port, so http:// is assumed."""
    for variable in FISSION_URLS:
        value = os.environ.get(variable, "").strip()
        if value:
            return value if "://" in value else f"http://{value}"
    return None


def _explain_root(**given: Any) -> None:
    for option, value in given.items():
        if value is not None:
            note_once(option, f"{option} ignored: {fission_cli.why(option)}")


@app.callback()
def main(
    ctx: typer.Context,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="FAAS_URL",
            help="Base URL of the faasd daemon (else FISSION_URL or FISSION_ROUTER, as Fission's CLI reads them).",
        ),
    ] = DEFAULT_SERVER,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="FAAS_TOKEN", hidden=True, show_default=False, show_envvar=False),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
    ] = False,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", hidden=True)] = None,
    kube_context: Annotated[str | None, typer.Option("--kube-context", hidden=True)] = None,
    verbosity: Annotated[str | None, typer.Option("--verbosity", "-v", hidden=True)] = None,
) -> None:
    """Manage and call functions on a faasd daemon.

    The API token is FAAS_TOKEN; unset, a daemon on this machine is sent the
    token in $FAASD_STATE_DIR/token or ./.faasd/token. Run as 'fission', it
    takes Fission's command lines (docs/fission.md).
    """
    forget_notes()
    _explain_root(**{"--namespace": namespace, "--kube-context": kube_context, "--verbosity": verbosity})
    as_fission = ctx.info_name == fission_cli.PROGRAM
    source = ctx.get_parameter_source("server")
    if as_fission and (source is None or source.name == "DEFAULT"):
        # Only the `fission` program reads Fission's variables: `faas` never sends its token there.
        server = server_from_fission() or server
    ctx.obj = Connection(server=server, token=token, fission=as_fission)


def fission() -> None:
    """The `fission` console script: this program, under Fission's name.

    Alone, it shows its help and succeeds, as Fission's does.
    """
    app(args=sys.argv[1:] or ["--help"], prog_name=fission_cli.PROGRAM)


# Last, once every command is registered: the Fission flags each accepts and ignores.
fission_cli.adapt(app)
