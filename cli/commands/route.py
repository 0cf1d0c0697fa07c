"""`faas route` (alias `httptrigger`, `ht`): HTTP triggers, a method and URL that call a function.

Fission's spellings: ``--method`` repeated makes one route per method (faasd's
route has one method; the first takes ``--name``, the others ``NAME-<method>``);
a URL template's regular expression (``{id:[0-9]+}``) is dropped, as faasd
matches any segment; ``delete --function F`` deletes every route to F.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from faas_cli.errors import ApiError, CliError, reports_errors
from faas_cli.options import Labels, Output, client_of, label_pairs
from faas_cli.output import Column, OutputFormat, note_once, print_item, print_items

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
Functions = Annotated[
    list[str],
    typer.Option("--function", help="Function the route calls (Fission's second one, for a canary, is refused)."),
]
Weights = Annotated[
    list[int] | None,
    typer.Option("--weight", hidden=True, help="Fission's canary weights: faasd routes to one function."),
]
ASYNC_HELP = "Queue the route's calls: the caller gets 202 and a call id ('faas invocation get ID'), not the answer."
# Fission's URL templates may constrain a parameter with a regular expression: {id:[0-9]+}.
TEMPLATE_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^/]*\}")


def url_of(url: str) -> str:
    """A Fission URL as faasd takes it: a leading /, parameters without their regular expressions."""
    url = url.strip()
    if not url.startswith("/"):
        url = f"/{url}"
    plain = TEMPLATE_RE.sub(r"{\1}", url)
    if plain != url:
        note_once("url-regexp", f"--url {url}: faasd matches any segment, so the route is {plain}")
    return plain


def one_function(functions: list[str]) -> str:
    if len(functions) != 1:
        raise CliError(
            "a faasd route calls one function: give --function once (weighted canary routes are not supported)"
        )
    return functions[0]


def methods_of(methods: list[str] | None) -> list[str]:
    """Upper-cased methods, each once, in the order given; GET when none."""
    chosen: list[str] = []
    for method in methods or ["GET"]:
        for part in method.split(","):
            upper = part.strip().upper()
            if upper and upper not in chosen:
                chosen.append(upper)
    return chosen or ["GET"]


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    url: Url,
    function: Functions,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method", help="HTTP method (default GET); repeat for more: one route each.", show_default=False
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Trigger name (generated when omitted).", show_default=False),
    ] = None,
    asynchronous: Annotated[bool, typer.Option("--async", help=ASYNC_HELP)] = False,
    weight: Weights = None,
    labels: Labels = None,
) -> None:
    """Route METHOD URL to a function."""
    del weight  # with one function, Fission's weight means nothing
    target = one_function(function)
    client = client_of(ctx)
    methods = methods_of(method)
    for number, verb in enumerate(methods):
        own = name if name is None or number == 0 else f"{name[:55]}-{verb.lower()}"
        trigger = client.create_trigger(
            verb,
            url_of(url),
            target,
            name=own,
            asynchronous=True if asynchronous else None,
            labels=label_pairs(labels),
        )
        typer.echo(
            f"route '{trigger.get('name', own)}' created: "
            f"{trigger.get('method', verb)} {trigger.get('url', url)} -> {target}"
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
    function: Annotated[list[str] | None, typer.Option("--function", help="Function to call instead.")] = None,
    asynchronous: Annotated[
        bool | None,
        typer.Option("--async/--sync", help=f"{ASYNC_HELP} --sync: answer calls again.", show_default=False),
    ] = None,
    weight: Weights = None,
    labels: Labels = None,
) -> None:
    """Change a route's method, URL or function, or whether its calls are queued."""
    del weight  # with one function, Fission's weight means nothing
    if method is None and url is None and function is None and asynchronous is None and labels is None:
        raise CliError("nothing to update; give --method, --url or --function")
    verbs = methods_of([method]) if method else None
    if verbs is not None and len(verbs) > 1:
        raise CliError("a faasd route has one method: give --method once")
    client_of(ctx).update_trigger(
        name,
        method=verbs[0] if verbs else None,
        url=url_of(url) if url is not None else None,
        function=one_function(function) if function else None,
        asynchronous=asynchronous,
        labels=label_pairs(labels),
    )
    typer.echo(f"route '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="Trigger name.", show_default=False)] = None,
    function: Annotated[
        str | None, typer.Option("--function", help="Delete every route to this function.", show_default=False)
    ] = None,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="A route that does not exist is no error.")
    ] = False,
) -> None:
    """Delete a route, or with --function every route to a function."""
    if (name is None) == (function is None):
        raise CliError("give --name (one route) or --function (every route to it)")
    client = client_of(ctx)
    names = [name] if name is not None else [str(t["name"]) for t in client.list_triggers(function)]
    for each in names:
        try:
            client.delete_trigger(each)
        except ApiError as error:
            if error.status == 404 and ignorenotfound:
                continue
            raise
        typer.echo(f"route '{each}' deleted")
