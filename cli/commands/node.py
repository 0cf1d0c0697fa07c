"""`faas node list`: the faasd nodes sharing the daemon's registry, and which of them are live."""

from __future__ import annotations

import typer

from faas_cli.errors import reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat, print_items

app = typer.Typer(help="faasd nodes: the daemons sharing one registry (docs/cluster.md).", no_args_is_help=True)

COLUMNS = (
    Column("NODE", "id"),
    Column("URL", "url"),
    Column("LIVE", "live"),
    Column("LAST SEEN", "last_seen"),
    Column("STARTED", "started_at"),
    Column("VERSION", "version"),
    Column("SELF", "self", lambda value: "*" if value else ""),
)


@app.command("list")
@reports_errors
def list_nodes(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """List the nodes: id, admin URL, live (beat within the last 9 s), last seen, started, version; * answered."""
    print_items(client_of(ctx).nodes(), COLUMNS, output)
