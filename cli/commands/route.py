"""`faas route` (alias `httptrigger`, `ht`): HTTP triggers, a method and URL that call a function.

Fission's spellings: ``--method`` repeated makes one route per method (faasd's
route has one method; the first takes ``--name``, the others ``NAME-<method>``);
``--function`` repeated, each with a ``--weight``, splits the calls (a canary);
a URL template's regular expression (``{id:[0-9]+}``) is dropped, as faasd
matches any segment; ``delete --function F`` deletes every route to F.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.commands.timer import generated_name
from faas_cli.errors import CliError, deleted, reports_errors
from faas_cli.fission import DEFAULT_SPECDIR, SpecDir, SpecDry, SpecSave, saved_as_spec
from faas_cli.options import Labels, Output, client_of, label_pairs
from faas_cli.output import Column, OutputFormat, note_once, print_item, print_items

app = typer.Typer(help="HTTP triggers: a method and URL pattern that call a function.", no_args_is_help=True)

COLUMNS = (
    Column("NAME", "name"),
    Column("METHOD", "method"),
    Column("URL", "url"),
    Column("FUNCTION", "_function"),
    Column("ASYNC", "async"),
    Column("UPDATED", "updated_at"),
)

Name = Annotated[str, typer.Option("--name", help="Trigger name.")]
Url = Annotated[str, typer.Option("--url", help="URL pattern, e.g. /hello or /users/{id}.")]
Functions = Annotated[
    list[str],
    typer.Option(
        "--function", help="Function the route calls; repeat it, each with a --weight, to split the calls (a canary)."
    ),
]
Weights = Annotated[
    list[int] | None,
    typer.Option(
        "--weight",
        min=0,
        max=100,
        help="Share of the calls, in %, of the --function in the same place; they add up to 100.",
        show_default=False,
    ),
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


def split(functions: list[str], weights: list[int] | None) -> tuple[str | None, list[dict[str, Any]] | None]:
    """Fission's ``--function`` (repeated for a canary, each with a ``--weight``) as the API's route fields:
    ``(function, None)`` for one, ``(None, functions with weights)`` for several."""
    if len(functions) == 1:
        return functions[0], None  # Fission's weight of a lone function means nothing
    if not weights or len(weights) != len(functions):
        raise CliError("give a --weight for each --function; the weights add up to 100")
    return None, [{"function": f, "weight": w} for f, w in zip(functions, weights, strict=True)]


def shown(function: str | None, functions: list[dict[str, Any]] | None) -> str:
    if functions is None:
        return str(function)
    return ", ".join(f"{f['function']} ({f['weight']}%)" for f in functions)


def _shown(trigger: dict[str, Any], output: OutputFormat) -> dict[str, Any]:
    """A route as its table shows it: FUNCTION is its function, or a split route's ``a:90,b:10``."""
    if output is OutputFormat.json:
        return trigger
    functions = trigger.get("functions")
    cell = trigger.get("function")
    if isinstance(functions, list) and len(functions) > 1:
        cell = ",".join(f"{f.get('function')}:{f.get('weight')}" for f in functions if isinstance(f, dict))
    return {**trigger, "_function": cell}


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
    spec: SpecSave = False,
    dry: SpecDry = False,
    specdir: SpecDir = DEFAULT_SPECDIR,
) -> None:
    """Route METHOD URL to a function, or split its calls between functions by weight."""
    target, targets = split(function, weight)
    methods = methods_of(method)

    def write(folder: Path) -> list[Path]:
        from faas_cli.specs import files

        if target is None:
            raise CliError("with --spec, a route calls one function")
        own = name or generated_name(target)
        return [files.write_route_spec(folder, own, target, url_of(url), methods, asynchronous)]

    if saved_as_spec(spec, dry, specdir, write):
        return
    client = client_of(ctx)
    for number, verb in enumerate(methods):
        own = name if name is None or number == 0 else f"{name[:55]}-{verb.lower()}"
        trigger = client.create_trigger(
            verb,
            url_of(url),
            target,
            name=own,
            asynchronous=True if asynchronous else None,
            labels=label_pairs(labels),
            functions=targets,
        )
        typer.echo(
            f"route '{trigger.get('name', own)}' created: "
            f"{trigger.get('method', verb)} {trigger.get('url', url)} -> {shown(target, targets)}"
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
    print_items([_shown(t, output) for t in client_of(ctx).list_triggers(function)], COLUMNS, output)


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show one route."""
    print_item(_shown(client_of(ctx).get_trigger(name), output), COLUMNS, output)


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
    """Change a route's method, URL or function(s), or whether its calls are queued."""
    if weight and not function:
        raise CliError("give the --function of each --weight")
    target, targets = split(function, weight) if function else (None, None)
    if method is None and url is None and function is None and asynchronous is None and labels is None:
        raise CliError("nothing to update; give --method, --url or --function")
    verbs = methods_of([method]) if method else None
    if verbs is not None and len(verbs) > 1:
        raise CliError("a faasd route has one method: give --method once")
    client_of(ctx).update_trigger(
        name,
        method=verbs[0] if verbs else None,
        url=url_of(url) if url is not None else None,
        function=target,
        functions=targets,
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
        if deleted(functools.partial(client.delete_trigger, each), ignorenotfound):
            typer.echo(f"route '{each}' deleted")
