"""`faas env`: environments, a runtime image and its pool of warm containers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faas_cli.errors import CliError, deleted, reports_errors
from faas_cli.fission import DEFAULT_SPECDIR, SpecDir, SpecDry, SpecSave, saved_as_spec
from faas_cli.options import Labels, Output, client_of, is_fission, label_pairs
from faas_cli.output import Column, OutputFormat, print_item, print_items, working

app = typer.Typer(
    help="Environments: a runtime image and its pool of pre-started containers.",
    no_args_is_help=True,
)

COLUMNS = (
    Column("NAME", "name"),
    Column("IMAGE", "image"),
    Column("POOLSIZE", "poolsize"),
    Column("BUILDER", "builder"),
    Column("UPDATED", "updated_at"),
)
# As `fission env list` prints them (as far as faasd has them).
FISSION_COLUMNS = (
    Column("NAME", "name"),
    Column("IMAGE", "image"),
    Column("BUILDER_IMAGE", "builder"),
    Column("POOLSIZE", "poolsize"),
)

Name = Annotated[str, typer.Option("--name", help="Environment name.")]
Image = Annotated[
    str | None,
    typer.Option(help="Runtime container image, e.g. faasd/runtime-python:latest (needed to create)."),
]
Poolsize = Annotated[int | None, typer.Option(min=0, help="Number of warm, unspecialized containers to keep.")]
Builder = Annotated[
    str | None,
    typer.Option(
        help="Builder image that builds the environment's packages, e.g. faasd/builder-python:latest ('' for none).",
        show_default=False,
    ),
]


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    name: Name,
    image: Image = None,
    poolsize: Poolsize = None,
    builder: Builder = None,
    labels: Labels = None,
    spec: SpecSave = False,
    dry: SpecDry = False,
    specdir: SpecDir = DEFAULT_SPECDIR,
) -> None:
    """Create an environment."""

    def write(folder: Path) -> list[Path]:
        from faas_cli.specs import files

        if image is None:
            raise CliError("give --image: the environment's runtime image")
        return [files.write_environment_spec(folder, name, image, builder, poolsize)]

    if saved_as_spec(spec, dry, specdir, write):
        return
    with working(f"creating environment '{name}'"):
        env = client_of(ctx).create_environment(
            name, image=image, poolsize=poolsize, builder=builder, labels=label_pairs(labels)
        )
    typer.echo(f"environment '{env.get('name', name)}' created")


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """List environments."""
    print_items(client_of(ctx).list_environments(), FISSION_COLUMNS if is_fission(ctx) else COLUMNS, output)


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show one environment."""
    print_item(client_of(ctx).get_environment(name), COLUMNS, output)


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    image: Image = None,
    poolsize: Poolsize = None,
    builder: Builder = None,
    labels: Labels = None,
) -> None:
    """Change an environment's image, pool size or builder."""
    if image is None and poolsize is None and builder is None and labels is None:
        raise CliError("nothing to update; give --image, --poolsize or --builder")
    with working(f"updating environment '{name}'"):
        client_of(ctx).update_environment(
            name, image=image, poolsize=poolsize, builder=builder, labels=label_pairs(labels)
        )
    typer.echo(f"environment '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Name,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="An environment that does not exist is no error.")
    ] = False,
) -> None:
    """Delete an environment."""
    with working(f"deleting environment '{name}'"):
        if not deleted(lambda: client_of(ctx).delete_environment(name), ignorenotfound):
            return
    typer.echo(f"environment '{name}' deleted")
