"""`faas usage`: what functions used, per hour: calls, billed time, GB-seconds, instance-seconds."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faas_cli.errors import reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat, table_of, to_json

USAGE_COLUMNS = (
    Column("HOUR", "hour"),
    Column("FUNCTION", "function"),
    Column("CALLS", "calls"),
    Column("BILLED MS", "billed_ms"),
    Column("GB-SECONDS", "gb_seconds"),
    Column("INSTANCE-SECONDS", "instance_seconds"),
)


def render_usage(report: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = report.get("usage", [])
    totals = {"hour": "TOTAL", "function": "", **report.get("totals", {})}
    if not rows:
        return f"no usage since {report.get('since', '?')}"
    return table_of([*rows, totals], USAGE_COLUMNS)


@reports_errors
def usage(
    ctx: typer.Context,
    function: Annotated[str | None, typer.Option("--function", help="Only this function.", show_default=False)] = None,
    since: Annotated[
        str, typer.Option("--since", help="From this long ago (90m, 24h, 7d) or an RFC 3339 time.")
    ] = "24h",
    output: Output = OutputFormat.table,
) -> None:
    """Show usage per function and hour: calls, billed milliseconds, GB-seconds, instance-seconds."""
    report = client_of(ctx).usage(function=function, since=since)
    if output is OutputFormat.json:
        typer.echo(to_json(report))
        return
    typer.echo(render_usage(report))
