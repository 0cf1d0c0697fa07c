"""`faas route` (alias `httptrigger`): HTTP triggers, a method and URL that call a function."""

from __future__ import annotations

from typing import Annotated

import typer

from faas_cli.errors import CliError, reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat, print_item, print_items

app = typer.Typer(help="HTTP triggers: a method and URL pattern that call a function.", no_args_is_help=True)

COLUMNS = (
    Column("NAME", "name"),
    Column("METHOD", "method"),
    Column("URL", "url"),
    Column("FUNCTION", "function"),
    Column("ASYNC", "async"),
    Column("UPDATED", "updated_at"),
)

Name = Annotated[str, typer.Option("--name", help="Trigger name.")]
Url = Annotated[str, typer.Option("--url", help="URL pattern, e.g. /hello or /users/{id}.")]
Function = Annotated[str, typer.Option("--function", help="Function the route calls.")]
ASYNC_HELP = "Queue the route's calls: the caller gets 202 and a call id ('faas invocation get ID'), not the answer."


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    url: Url,
    function: Function,
    method: Annotated[str, typer.Option("--method", help="HTTP method.")] = "GET",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Trigger name (generated when omitted).", show_default=False),
    ] = None,
    asynchronous: Annotated[bool, typer.Option("--async", help=ASYNC_HELP)] = False,
) -> None:
    """Route METHOD URL to a function."""
    trigger = client_of(ctx).create_trigger(
        method.upper(), url, function, name=name, asynchronous=True if asynchronous else None
    )
    typer.echo(
        f"route '{trigger.get('name', name)}' created: "
        f"{trigger.get('method', method.upper())} {trigger.get('url', url)} -> {function}"
        + (" (asynchronous)" if asynchronous else "")
    )


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    function: Annotated[
        str | None,
        typer.Option("--function", help="Only routes to this function.", show_default=False),
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """List routes."""
    print_items(client_of(ctx).list_triggers(function), COLUMNS, output)


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show one route."""
    print_item(client_of(ctx).get_trigger(name), COLUMNS, output)


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    method: Annotated[str | None, typer.Option("--method", help="New HTTP method.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="New URL pattern.")] = None,
    function: Annotated[str | None, typer.Option("--function", help="Function to call instead.")] = None,
    asynchronous: Annotated[
        bool | None,
        typer.Option("--async/--sync", help=f"{ASYNC_HELP} --sync: answer calls again.", show_default=False),
    ] = None,
) -> None:
    """Change a route's method, URL or function, or whether its calls are queued."""
    if method is None and url is None and function is None and asynchronous is None:
        raise CliError("nothing to update; give --method, --url or --function")
    client_of(ctx).update_trigger(
        name, method=method.upper() if method else None, url=url, function=function, asynchronous=asynchronous
    )
    typer.echo(f"route '{name}' updated")


@app.command()
@reports_errors
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a route."""
    client_of(ctx).delete_trigger(name)
    typer.echo(f"route '{name}' deleted")
