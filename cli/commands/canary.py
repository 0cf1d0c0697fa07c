"""`faas canary` (Fission's `canary`): move a route's calls from an old function to a new one, step by step.

The daemon splits the route [old 100-step, new step] and, at the end of every
``--increment-interval``, judges the new function by the share of its calls in
that interval answered with a 5xx: above ``--failure-threshold`` the route goes
back to the old function (aborted); otherwise the new function gains
``--increment-step`` more, until it takes every call (succeeded). An interval
without a call to the new function holds the weight. Fission's flag names;
``--failure-type`` is accepted and explained (faas_cli/fission.py): a failure
is a 5xx answer, Fission's ``status-code``, its one type.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from faas_cli.errors import CliError, deleted, reports_errors
from faas_cli.options import Labels, Output, client_of, label_pairs, program
from faas_cli.output import EMPTY, Column, OutputFormat, duration, print_item, print_items, table_of, to_json

app = typer.Typer(
    help="Canaries: a new function takes a route's calls from the old one step by step, or is rolled back.",
    no_args_is_help=True,
)

COLUMNS = (
    Column("NAME", "name"),
    Column("NEWFUNCTION", "newfunction"),
    Column("OLDFUNCTION", "oldfunction"),
    Column("HTTPTRIGGER", "httptrigger"),
    Column("STATUS", "status"),
    Column("WEIGHT", "weight"),
    Column("STEP", "increment_step"),
    Column("INTERVAL", "increment_interval", duration),
    Column("THRESHOLD", "failure_threshold"),
)


def _rate(value: Any) -> str:
    return EMPTY if not isinstance(value, int | float) or isinstance(value, bool) else f"{value:g}%"


# `canary get`: every change of the new function's weight, with the interval's figures that made it.
HISTORY_COLUMNS = (
    Column("TIME", "time"),
    Column("WEIGHT", "weight"),
    Column("CALLS", "calls"),
    Column("FAILURES", "failures"),
    Column("FAILURE RATE", "failure_rate", _rate),
)

Name = Annotated[str, typer.Option("--name", help="Canary name.")]
Step = Annotated[
    int | None,
    typer.Option(
        "--increment-step",
        "--step",
        min=1,
        max=100,
        help="Percent of the route's calls the new function gains at every healthy interval (default 20).",
        show_default=False,
    ),
]
Interval = Annotated[
    str | None,
    typer.Option(
        "--increment-interval",
        metavar="DURATION",
        help="Time between two verdicts: seconds, or a duration such as 30s, 1m, 1m30s or 2h (default 2m).",
        show_default=False,
    ),
]
Threshold = Annotated[
    int | None,
    typer.Option(
        "--failure-threshold",
        "--threshold",
        min=0,
        max=100,
        help="Percent of the new function's calls in an interval answered 5xx above which the route goes back "
        "to the old function (default 10).",
        show_default=False,
    ),
]

DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def interval_seconds(text: str | None) -> int | None:
    """``--increment-interval``: seconds (``90``) or a Go-style duration (``30s``, ``1m30s``, ``2h``, ``1d``)."""
    if text is None:
        return None
    value = text.strip().lower()
    if value.isascii() and value.isdigit():
        return int(value)
    match = DURATION_RE.fullmatch(value)
    if not value or not value.isascii() or match is None:
        raise CliError(f"--increment-interval {text!r} must be seconds or a duration such as 30s, 1m, 1m30s or 2h")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _fields(step: int | None, interval: str | None, threshold: int | None, labels: str | None) -> dict[str, Any]:
    fields = {
        "increment_step": step,
        "increment_interval": interval_seconds(interval),
        "failure_threshold": threshold,
        "labels": label_pairs(labels),
    }
    return {key: value for key, value in fields.items() if value is not None}


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    name: Name,
    newfunction: Annotated[
        str, typer.Option("--newfunction", "--newfn", help="The new function, which takes the calls step by step.")
    ],
    oldfunction: Annotated[
        str, typer.Option("--oldfunction", "--oldfn", help="The old function, which the route calls now.")
    ],
    httptrigger: Annotated[
        str, typer.Option("--httptrigger", help="The route (HTTP trigger) whose calls move; it calls --oldfunction.")
    ],
    step: Step = None,
    interval: Interval = None,
    threshold: Threshold = None,
    labels: Labels = None,
) -> None:
    """Start moving a route's calls from --oldfunction to --newfunction, --increment-step % at a time."""
    fields = _fields(step, interval, threshold, labels)
    canary = client_of(ctx).create_canary(name, newfunction, oldfunction, httptrigger, **fields)
    typer.echo(
        f"canary '{name}' created: route '{httptrigger}' sends {canary.get('weight', '?')}% of its calls to "
        f"'{newfunction}', {canary.get('increment_step', '?')}% more every "
        f"{duration(canary.get('increment_interval'))} while at most {canary.get('failure_threshold', '?')}% of "
        f"them fail ('{program(ctx)} canary get --name {name}' shows how it goes)"
    )


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show a canary: its status, the new function's weight, why it ended, and every step so far."""
    canary = client_of(ctx).get_canary(name)
    if output is OutputFormat.json:
        typer.echo(to_json(canary))
        return
    print_item(canary, COLUMNS, output)
    reason = " ".join(str(canary.get("reason") or "").split())
    if reason:
        typer.echo(f"reason: {reason}")
    history = canary.get("history")
    steps = [step for step in history if isinstance(step, dict)] if isinstance(history, list) else []
    typer.echo("")
    typer.echo(table_of(steps, HISTORY_COLUMNS))


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """List canaries."""
    print_items(client_of(ctx).list_canaries(), COLUMNS, output)


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    step: Step = None,
    interval: Interval = None,
    threshold: Threshold = None,
    labels: Labels = None,
) -> None:
    """Change a running canary's step, interval or threshold (from its next interval on)."""
    fields = _fields(step, interval, threshold, labels)
    if not fields:
        raise CliError(
            "nothing to update; give --increment-step, --increment-interval, --failure-threshold or --labels"
        )
    client_of(ctx).update_canary(name, **fields)
    typer.echo(f"canary '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Name,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="A canary that does not exist is no error.")
    ] = False,
) -> None:
    """Delete a canary; its route keeps the weights it has then (a running canary stops moving them)."""
    if not deleted(lambda: client_of(ctx).delete_canary(name), ignorenotfound):
        return
    typer.echo(f"canary '{name}' deleted (its route keeps the weights it has now)")
