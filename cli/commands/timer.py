"""`faas timer` (Fission's `timetrigger`, alias `tt`): call a function on a cron schedule.

Each tick is an asynchronous call (`faas invocation list --function F` shows
them), retried as the function's ``--retries`` say. The daemon checks the
cron expression and the time zone; ``showschedule`` shows when one fires.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.errors import CliError, deleted, reports_errors
from faas_cli.fission import DEFAULT_SPECDIR, SpecDir, SpecDry, SpecSave, saved_as_spec
from faas_cli.options import Labels, Output, client_of, is_fission, label_pairs
from faas_cli.output import Column, OutputFormat, print_item, print_items

app = typer.Typer(
    help="Timers: call a function on a cron schedule.",
    no_args_is_help=True,
)

COLUMNS = (
    Column("NAME", "name"),
    Column("CRON", "cron"),
    Column("TIMEZONE", "timezone"),
    Column("FUNCTION", "function"),
    Column("NEXT RUN", "next_run_at"),
)
# As `fission timer list` prints them.
FISSION_COLUMNS = (
    Column("NAME", "name"),
    Column("CRON", "cron"),
    Column("FUNCTION_NAME", "function"),
    Column("METHOD", "method"),
    Column("SUBPATH", "subpath"),
)
# `timer get` shows the rest of the timer too.
DETAIL_COLUMNS = (
    *COLUMNS,
    Column("METHOD", "method"),
    Column("SUBPATH", "subpath"),
    Column("OVERLAP", "overlap"),
    Column("CATCH UP", "catch_up"),
    Column("LAST TICK", "last_tick_at"),
)

Name = Annotated[str, typer.Option("--name", help="Timer name.")]
Cron = Annotated[
    str,
    typer.Option(
        "--cron",
        help="When: a cron expression such as '*/5 * * * *' (minute hour day month weekday), "
        "'0 3 * * MON', @daily or '@every 30s'.",
    ),
]
Timezone = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="IANA time zone the expression is read in, e.g. Europe/Berlin (default UTC).",
        show_default=False,
    ),
]
Method = Annotated[
    str | None,
    typer.Option("--method", help="HTTP method of each call (default POST).", show_default=False),
]
Subpath = Annotated[
    str | None,
    typer.Option(
        "--subpath", help="Sub-path each call asks for, e.g. /report?full=1 (default none).", show_default=False
    ),
]
Overlap = Annotated[
    str | None,
    typer.Option(
        "--overlap",
        metavar="forbid|allow",
        help="'forbid' (the default) skips a tick while the last tick's call is unfinished; 'allow' does not.",
        show_default=False,
    ),
]
CatchUp = Annotated[
    str | None,
    typer.Option(
        "--catch-up",
        metavar="once|none",
        help="'once' (the default): ticks missed while faasd was down make one call when it starts; 'none': none.",
        show_default=False,
    ),
]


def _fields(
    timezone: str | None,
    method: str | None,
    subpath: str | None,
    overlap: str | None,
    catch_up: str | None,
    labels: str | None = None,
) -> dict[str, Any]:
    """The API fields of the options given."""
    fields = {
        "timezone": timezone,
        "method": method.upper() if method else method,
        "subpath": subpath,
        "overlap": overlap,
        "catch_up": catch_up,
        "labels": label_pairs(labels),
    }
    return {key: value for key, value in fields.items() if value is not None}


def generated_name(function: str) -> str:
    """A trigger's name when none is given (Fission makes one up too): the function's and a random suffix."""
    return f"{function[:54].rstrip('-')}-{secrets.token_hex(4)}"


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    function: Annotated[str, typer.Option("--function", help="Function each tick calls.")],
    cron: Cron,
    name: Annotated[
        str | None, typer.Option("--name", help="Timer name (generated when omitted).", show_default=False)
    ] = None,
    timezone: Timezone = None,
    method: Method = None,
    subpath: Subpath = None,
    overlap: Overlap = None,
    catch_up: CatchUp = None,
    labels: Labels = None,
    spec: SpecSave = False,
    dry: SpecDry = False,
    specdir: SpecDir = DEFAULT_SPECDIR,
) -> None:
    """Create a timer that calls a function on a cron schedule."""
    name = name or generated_name(function)
    fields = _fields(timezone, method, subpath, overlap, catch_up, labels)

    def write(folder: Path) -> list[Path]:
        from faas_cli.specs import files

        written = {k: v for k, v in fields.items() if k != "labels"}
        return [files.write_timer_spec(folder, name, function, cron, **written)]

    if saved_as_spec(spec, dry, specdir, write):
        return
    timer = client_of(ctx).create_timer(name, function, cron, **fields)
    typer.echo(f"timer '{timer.get('name', name)}' created: '{timer.get('cron', cron)}' -> {function}")


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show one timer, with its next run."""
    print_item(client_of(ctx).get_timer(name), DETAIL_COLUMNS, output)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    function: Annotated[
        str | None, typer.Option("--function", help="Only timers that call this function.", show_default=False)
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """List timers."""
    print_items(client_of(ctx).list_timers(function), FISSION_COLUMNS if is_fission(ctx) else COLUMNS, output)


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    function: Annotated[str | None, typer.Option("--function", help="Function to call instead.")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="New cron expression.", show_default=False)] = None,
    timezone: Timezone = None,
    method: Method = None,
    subpath: Subpath = None,
    overlap: Overlap = None,
    catch_up: CatchUp = None,
    labels: Labels = None,
) -> None:
    """Change a timer's schedule, time zone, function or call."""
    fields = _fields(timezone, method, subpath, overlap, catch_up, labels)
    if function is None and cron is None and not fields:
        raise CliError(
            "nothing to update; give --cron, --timezone, --function, --method, --subpath, --overlap or --catch-up"
        )
    client_of(ctx).update_timer(name, function=function, cron=cron, **fields)
    typer.echo(f"timer '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Name,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="A timer that does not exist is no error.")
    ] = False,
) -> None:
    """Delete a timer."""
    if not deleted(lambda: client_of(ctx).delete_timer(name), ignorenotfound):
        return
    typer.echo(f"timer '{name}' deleted")


@app.command()
@app.command("show", hidden=True)
@reports_errors
def showschedule(
    ctx: typer.Context,
    cron: Cron,
    timezone: Timezone = None,
    count: Annotated[int, typer.Option("--round", min=1, help="How many upcoming times to show (at most 100).")] = 5,
) -> None:
    """Print the next times a cron expression fires, one a line (RFC 3339, UTC)."""
    for moment in client_of(ctx).cron_schedule(cron, timezone, count):
        typer.echo(moment)
