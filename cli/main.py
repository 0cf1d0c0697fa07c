"""The `faas` command: global options, and the command groups of faas_cli/commands."""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

import typer

from faas_cli.client import DEFAULT_SERVER
from faas_cli.commands import (
    deploy,
    dlq,
    env,
    function,
    invocation,
    mqtrigger,
    package,
    route,
    spec,
    status,
    timer,
    usage,
    watch,
)
from faas_cli.options import Connection

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
app.add_typer(
    spec.app,
    name="spec",
    help="Fission spec files: a specs/ directory of YAML documents applied as a whole (init, validate, apply, "
    "destroy, list, export).",
)
app.command()(deploy.deploy)
app.command()(status.status)
app.command()(usage.usage)


def version_text() -> str:
    try:
        return f"faas {metadata.version('faasd')}"
    except metadata.PackageNotFoundError:
        return "faas (version unknown)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    server: Annotated[
        str, typer.Option("--server", envvar="FAAS_URL", help="Base URL of the faasd daemon.")
    ] = DEFAULT_SERVER,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="FAAS_TOKEN", hidden=True, show_default=False, show_envvar=False),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Manage and call functions on a faasd daemon.

    The API token is FAAS_TOKEN; unset, a daemon on this machine is sent the
    token in $FAASD_STATE_DIR/token or ./.faasd/token.
    """
    ctx.obj = Connection(server=server, token=token)
