"""`faas watch` (alias `w`): call a function when the container engine's objects change.

A watch follows one type of object (containers, networks, volumes or images),
optionally only those with some labels, and calls its function asynchronously
for each event of the kinds chosen. faasd's own containers are left out unless
``--include-faasd``. The daemon checks the labels and names the bad one.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faas_cli.commands.timer import generated_name
from faas_cli.errors import CliError, deleted, reports_errors
from faas_cli.options import Output, client_of, label_pairs
from faas_cli.output import EMPTY, Column, OutputFormat, note_once, print_item, print_items

app = typer.Typer(
    help="Watches: call a function when containers, networks, volumes or images change.",
    no_args_is_help=True,
)

EVENTS = ("added", "removed", "updated")
# Fission watches Kubernetes objects: a pod is what a container is to the Docker engine.
FISSION_TYPES = {"pod": "container", "pods": "container"}


def _labels(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return EMPTY
    return ",".join(f"{key}={val}" if val else str(key) for key, val in value.items())


def _events(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) and value else EMPTY


COLUMNS = (
    Column("NAME", "name"),
    Column("TYPE", "type"),
    Column("LABELS", "labels", _labels),
    Column("EVENTS", "events", _events),
    Column("FUNCTION", "function"),
)
DETAIL_COLUMNS = (*COLUMNS, Column("INCLUDE FAASD", "include_faasd"), Column("UPDATED", "updated_at"))

Name = Annotated[str, typer.Option("--name", help="Watch name.")]
Type = Annotated[
    str | None,
    typer.Option(
        "--type",
        metavar="container|network|volume|image",
        help="What is watched (default container).",
        show_default=False,
    ),
]
Label = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        help="Only objects with this label: KEY=VALUE, or KEY for any value (repeat: all of them; "
        "on update, replaces the labels).",
        show_default=False,
    ),
]
Event = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        metavar="added,removed,updated",
        help="Which changes call the function, comma-separated or repeated (default all three).",
        show_default=False,
    ),
]
SelectorLabels = Annotated[
    str | None,
    typer.Option(
        "--labels",
        metavar="KEY=VALUE,...",
        help="Fission's spelling of --label: a selector such as app=shop,tier=web.",
        show_default=False,
    ),
]
IncludeFaasd = Annotated[
    bool | None,
    typer.Option(
        "--include-faasd/--exclude-faasd",
        help="Whether faasd's own containers (function instances, pools, builders) count too (default: excluded).",
        show_default=False,
    ),
]


def _label_pairs(items: list[str] | None) -> dict[str, str] | None:
    """``KEY=VALUE`` and ``KEY`` (any value: ``""``) as the API's labels object."""
    if items is None:
        return None
    pairs: dict[str, str] = {}
    for item in items:
        key, _sep, value = item.partition("=")
        pairs[key.strip()] = value
    return pairs


def _event_kinds(items: list[str] | None) -> list[str] | None:
    if items is None:
        return None
    return [kind.strip() for item in items for kind in item.split(",") if kind.strip()]


def _type(value: str | None) -> str | None:
    """The watched type, as faasd names it: Fission's ``pod`` is a container."""
    if value is None:
        return None
    kind = value.strip().lower()
    if kind in FISSION_TYPES:
        note_once("--type", f"--type {value}: faasd watches the Docker engine's containers")
    return FISSION_TYPES.get(kind, kind)


def _fields(
    type_: str | None,
    label: list[str] | None,
    event: list[str] | None,
    include_faasd: bool | None,
    labels: str | None = None,
) -> dict[str, Any]:
    """The API fields of the options given."""
    selector = _label_pairs(label)
    if labels is not None:
        selector = {**(selector or {}), **(label_pairs(labels) or {})}
    fields = {
        "type": _type(type_),
        "labels": selector,
        "events": _event_kinds(event),
        "include_faasd": include_faasd,
    }
    return {key: value for key, value in fields.items() if value is not None}


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    function: Annotated[str, typer.Option("--function", help="Function each event calls.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Watch name (generated when omitted).", show_default=False)
    ] = None,
    type_: Type = None,
    label: Label = None,
    event: Event = None,
    include_faasd: IncludeFaasd = None,
    labels: SelectorLabels = None,
) -> None:
    """Create a watch that calls a function on the engine's events."""
    name = name or generated_name(function)
    fields = _fields(type_, label, event, include_faasd, labels)
    watch = client_of(ctx).create_watch(name, function, **fields)
    typer.echo(f"watch '{watch.get('name', name)}' created: {watch.get('type', type_ or 'container')} -> {function}")


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show one watch."""
    print_item(client_of(ctx).get_watch(name), DETAIL_COLUMNS, output)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    function: Annotated[
        str | None, typer.Option("--function", help="Only watches that call this function.", show_default=False)
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """List watches."""
    print_items(client_of(ctx).list_watches(function), COLUMNS, output)


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    function: Annotated[str | None, typer.Option("--function", help="Function to call instead.")] = None,
    type_: Type = None,
    label: Label = None,
    event: Event = None,
    include_faasd: IncludeFaasd = None,
    labels: SelectorLabels = None,
) -> None:
    """Change what a watch follows or the function it calls."""
    fields = _fields(type_, label, event, include_faasd, labels)
    if function is None and not fields:
        raise CliError(
            "nothing to update; give --function, --type, --label, --event or --include-faasd/--exclude-faasd"
        )
    client_of(ctx).update_watch(name, function=function, **fields)
    typer.echo(f"watch '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Name,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="A watch that does not exist is no error.")
    ] = False,
) -> None:
    """Delete a watch."""
    if not deleted(lambda: client_of(ctx).delete_watch(name), ignorenotfound):
        return
    typer.echo(f"watch '{name}' deleted")
