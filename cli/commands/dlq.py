"""`faas dlq`: dead letters, the asynchronous calls that ran out of attempts or of time.

A dead letter is kept until it is redriven (queued again, with a fresh budget
of attempts) or purged. ``redrive`` and ``purge`` act on the call ids given,
or on every dead letter the filters select; with neither, nothing is chosen
by accident: ``--all`` says "every one".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from faas_cli.commands.invocation import COLUMNS as CALL_COLUMNS
from faas_cli.commands.invocation import Limit, OfFunction, Since, print_call, print_calls
from faas_cli.errors import CliError, reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat

app = typer.Typer(
    help="Dead letters: asynchronous calls out of attempts; show, redrive or purge them.",
    no_args_is_help=True,
)

BATCH = 1000
"""Dead letters per request when the filters choose them (the daemon's largest limit)."""
MAX_BATCHES = 1000

# Every row is a dead letter: the time it died instead of its status.
COLUMNS = (
    *(column for column in CALL_COLUMNS if column.key not in ("status", "reason")),
    Column("DIED", "updated_at"),
    Column("REASON", "reason"),
)

CallIds = Annotated[
    list[str] | None,
    typer.Argument(metavar="ID", help="Call ids of dead letters.", show_default=False),
]
Everything = Annotated[
    bool, typer.Option("--all", help="Every dead letter (or, with --function/--since, every one they select).")
]


def _check_selection(ids: list[str], function: str | None, since: str | None, everything: bool) -> None:
    """Call ids, or filters, or --all: one of them, so that acting on every dead letter is asked for."""
    if ids and (function is not None or since is not None or everything):
        raise typer.BadParameter(
            "give call ids, or choose with --function/--since/--all, not both",
            param_hint="'ID' / '--function' / '--since' / '--all'",
        )
    if not ids and function is None and since is None and not everything:
        raise typer.BadParameter(
            "no dead letters chosen: give call ids, --function, --since, or --all for every one",
            param_hint="'ID' / '--function' / '--since' / '--all'",
        )


def in_batches(step: Callable[[int], int]) -> int:
    """Call ``step(BATCH)`` until it acts on fewer than a batch; the total acted on."""
    total = 0
    for _ in range(MAX_BATCHES):
        done = step(BATCH)
        total += done
        if done < BATCH:
            break
    return total


def _act(
    action: Callable[..., dict[str, Any]],
    key: str,
    chosen: list[str],
    function: str | None,
    since: str | None,
    everything: bool,
) -> int:
    """Redrive or purge: the dead letters ``chosen`` by id in one request, else those the filters select, in batches."""
    _check_selection(chosen, function, since, everything)
    if chosen:
        return _count(action(chosen), key)
    return in_batches(lambda limit: _count(action(None, function, since, limit), key))


def _count(answer: dict[str, object], key: str) -> int:
    value = answer.get(key)
    if not isinstance(value, int):
        raise CliError(f"unexpected answer from faasd: no '{key}' count")
    return value


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    function: OfFunction = None,
    since: Since = None,
    limit: Limit = None,
    output: Output = OutputFormat.table,
) -> None:
    """List dead letters, newest first."""
    print_calls(client_of(ctx).list_dead_letters(function, since, limit), output, COLUMNS)


@app.command()
@reports_errors
def show(
    ctx: typer.Context,
    call_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's call id.")],
    output: Output = OutputFormat.table,
) -> None:
    """Show a dead letter: its attempts, why it died, and the function's last answer."""
    print_call(client_of(ctx).get_dead_letter(call_id), output, COLUMNS)


@app.command()
@reports_errors
def redrive(
    ctx: typer.Context,
    ids: CallIds = None,
    function: OfFunction = None,
    since: Since = None,
    everything: Everything = False,
) -> None:
    """Queue dead letters again, each with the function's full budget of attempts."""
    count = _act(client_of(ctx).redrive, "redriven", ids or [], function, since, everything)
    typer.echo(f"{count} call(s) redriven")


@app.command()
@reports_errors
def purge(
    ctx: typer.Context,
    ids: CallIds = None,
    function: OfFunction = None,
    since: Since = None,
    everything: Everything = False,
) -> None:
    """Delete dead letters for good."""
    count = _act(client_of(ctx).purge, "purged", ids or [], function, since, everything)
    typer.echo(f"{count} dead letter(s) purged")
