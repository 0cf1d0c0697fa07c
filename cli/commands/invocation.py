"""`faas invocation` (alias `inv`): asynchronous calls, how they went, and their answers.

An asynchronous call is what `faas fn invoke --async`, an ``--async`` route, a
timer or a watch makes: the daemon keeps it, tries it (retrying as the
function's ``--retries`` and ``--retry-max-age`` say) and keeps its answer.
``get ID --wait`` waits for it to finish. A call out of attempts is a dead
letter: see `faas dlq`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from faas_cli.client import FaasClient, Json
from faas_cli.errors import CliError, reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat, table_of, to_json, working

app = typer.Typer(
    help="Asynchronous calls: their status, attempts and answer.",
    no_args_is_help=True,
)

FINISHED = ("succeeded", "failed", "dead")
STATUSES = ("queued", "running", *FINISHED)
SERVER_MAX_WAIT = 60
"""The longest the daemon holds `GET /v1/invocations/ID?wait=` for; longer waits ask again."""
DEFAULT_WAIT = 60
"""Seconds `--wait` alone waits."""
POLL_SECONDS = 0.5
"""The pause before asking again when the daemon answered sooner than asked (it never holds the answer)."""


# Options `faas dlq` shares.
OfFunction = Annotated[str | None, typer.Option("--function", help="Only calls of this function.", show_default=False)]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Only calls made since: a duration back from now (90s, 15m, 2h, 7d) or a time (2026-11-30T10:00:00Z).",
        show_default=False,
    ),
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit", min=1, help="At most this many, newest first (default 100, at most 1000).", show_default=False
    ),
]


def _trigger(call: Json) -> str:
    trigger = str(call.get("trigger") or "")
    name = call.get("trigger_name")
    return f"{trigger}:{name}" if trigger and name else trigger


def _attempts(call: Json) -> str:
    attempts = call.get("attempts")
    made = len(attempts) if isinstance(attempts, list) else 0
    most = call.get("max_attempts")
    return f"{made}/{most}" if isinstance(most, int) else str(made)


def _last_attempt(call: Json) -> str:
    """The last attempt's HTTP status, ``no answer`` (see the reason), or ``running``."""
    attempts = [a for a in call.get("attempts") or [] if isinstance(a, dict)]
    if not attempts:
        return ""
    last = attempts[-1]
    if last.get("status") is not None:
        return str(last["status"])
    return "running" if last.get("finished_at") is None else "no answer"


COLUMNS = (
    Column("ID", "id"),
    Column("FUNCTION", "function"),
    Column("TRIGGER", "_trigger"),
    Column("STATUS", "status"),
    Column("ATTEMPTS", "_attempts"),
    Column("LAST ATTEMPT", "_last_attempt"),
    Column("CREATED", "created_at"),
    Column("REASON", "reason"),
)


def _row(call: Json) -> Json:
    return {**call, "_trigger": _trigger(call), "_attempts": _attempts(call), "_last_attempt": _last_attempt(call)}


def calls_table(calls: Iterable[Json], columns: Sequence[Column] = COLUMNS) -> str:
    return table_of([_row(call) for call in calls], columns)


def print_calls(calls: list[Json], output: OutputFormat, columns: Sequence[Column] = COLUMNS) -> None:
    """A listing of calls: a table, or the API's JSON array."""
    typer.echo(to_json(calls) if output is OutputFormat.json else calls_table(calls, columns))


def print_call(call: Json, output: OutputFormat, columns: Sequence[Column] = COLUMNS) -> None:
    """One call: a one-row table and, after it, the function's answer's body; or the API's JSON."""
    if output is OutputFormat.json:
        typer.echo(to_json(call))
        return
    typer.echo(calls_table([call], columns))
    response = call.get("response")
    if not isinstance(response, dict):
        return
    body = response.get("body")
    if isinstance(body, str) and body:
        typer.echo("")
        typer.echo(body, nl=not body.endswith("\n"))
    elif response.get("body_base64"):
        typer.echo("")
        typer.echo("(the answer's body is binary; -o json shows it in base64)")
    if response.get("truncated"):
        typer.echo("(the answer's body was cut short: the daemon keeps its first MiB)", err=True)


# -- get --wait ----------------------------------------------------------------

_SECONDS = re.compile(r"\d+(\.\d*)?")


def with_wait_value(args: list[str]) -> list[str]:
    """``--wait`` without seconds after it becomes ``--wait 60``.

    Typer has no option whose value may be left out, so the command fills it in
    before parsing: ``get ID --wait``, ``get --wait ID`` and ``get --wait 300 ID``
    all read as meant (a call id is never a number).
    """
    filled: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        filled.append(arg)
        if arg == "--":
            filled.extend(rest)
            break
        if arg == "--wait" and not (rest and _SECONDS.fullmatch(rest[0])):
            filled.append(str(DEFAULT_WAIT))
    return filled


class OptionalWaitCommand(TyperCommand):
    """A command whose ``--wait`` may come without its seconds."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, with_wait_value(args))


def wait_for_call(client: FaasClient, call_id: str, seconds: float) -> Json:
    """The call once it is finished, or as it is after ``seconds``.

    The daemon holds each answer up to a minute until the call is finished; a
    longer wait asks again until the time is up.
    """
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        asked = min(SERVER_MAX_WAIT, math.ceil(remaining)) if remaining > 0 else 0
        began = time.monotonic()
        call = client.get_invocation(call_id, wait=asked or None)
        now = time.monotonic()
        if call.get("status") in FINISHED or now >= deadline:
            return call
        if now - began < min(asked, POLL_SECONDS):
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))


@app.command(cls=OptionalWaitCommand)
@reports_errors
def get(
    ctx: typer.Context,
    call_id: Annotated[str, typer.Argument(metavar="ID", help="The call id (faas fn invoke --async prints it).")],
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            metavar="[SECONDS]",
            help=f"Wait until the call is finished (succeeded, failed or dead), at most SECONDS "
            f"({DEFAULT_WAIT} when left out); then show it as it is.",
            show_default=False,
        ),
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """Show an asynchronous call: its status, attempts, and the function's answer.

    Exits with 0 whatever the call's status (the STATUS column says it), 1 when
    there is no such call.
    """
    client = client_of(ctx)
    if wait is None:
        call = client.get_invocation(call_id)
    else:
        try:
            with working(f"waiting for call {call_id}"):
                call = wait_for_call(client, call_id, wait)
        except KeyboardInterrupt:
            raise CliError(f"stopped waiting; the call goes on (see 'faas invocation get {call_id}')") from None
    print_call(call, output)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    function: OfFunction = None,
    status: Annotated[
        str | None,
        typer.Option("--status", metavar="|".join(STATUSES), help="Only calls with this status.", show_default=False),
    ] = None,
    since: Since = None,
    limit: Limit = None,
    output: Output = OutputFormat.table,
) -> None:
    """List asynchronous calls, newest first."""
    print_calls(client_of(ctx).list_invocations(function, status, since, limit), output)
