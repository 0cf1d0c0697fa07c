"""`faas package` (alias `pkg`): a function's source archive and the deployment its builder made.

Fission's spellings: ``create --src DIR|ZIP [--deploy DIR|ZIP] --env E
[--buildcmd CMD]``, ``info``, ``list``, ``get``, ``update``, ``rebuild``,
``delete``. A build runs in the daemon, in the background: ``info`` shows
where it is and its log; `faas deploy DIR` waits for it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.archives import package_name_for, prepared
from faas_cli.client import FaasClient
from faas_cli.errors import ApiError, CliError, reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat, print_items, progress, working

app = typer.Typer(
    help="Packages: a source archive built by its environment's builder, or a ready deployment archive.",
    no_args_is_help=True,
)

POLL_SECONDS = 0.5
"""How often `faas deploy` asks how a build is going, once it has taken a while."""
QUICK_POLL_SECONDS = 0.05
QUICK_POLL_FOR = 3.0
"""For its first seconds, it asks every 50 ms: a build of changed code alone takes a fraction of a second."""
WAIT_SECONDS = 3600.0
"""How long `faas deploy` waits for a build at most (the daemon's own build timeout is shorter)."""
LOG_TAIL_LINES = 20
FINISHED = ("succeeded", "failed")


def _size(value: Any) -> str:
    return "-" if not value else str(value)


COLUMNS = (
    Column("NAME", "name"),
    Column("ENV", "environment"),
    Column("STATUS", "status"),
    Column("SOURCE", "source_size", _size),
    Column("DEPLOY", "deploy_size", _size),
    Column("UPDATED", "updated_at"),
)

Name = Annotated[str, typer.Option("--name", help="Package name.")]
Source = Annotated[
    Path | None,
    typer.Option("--src", help="Source to build: a directory or an archive (zip, tar, tar.gz).", show_default=False),
]
Deploy = Annotated[
    Path | None,
    typer.Option(
        "--deploy",
        help="A ready deployment: a directory or an archive, used as it is (no build).",
        show_default=False,
    ),
]
BuildCmd = Annotated[
    str | None,
    typer.Option(
        "--buildcmd", help="Build command run in the builder (default: the builder's own).", show_default=False
    ),
]


def render_info(package: dict[str, Any]) -> str:
    """`faas pkg info`, as Fission prints it: name, environment, status, then the build log."""
    lines = [
        f"{'Name:':<13}{package.get('name', '')}",
        f"{'Environment:':<13}{package.get('environment', '')}",
        f"{'Status:':<13}{package.get('status', '')}",
    ]
    if package.get("error"):
        lines.append(f"{'Error:':<13}{' '.join(str(package['error']).split())}")
    lines.append("Build Logs:")
    log = str(package.get("build_log") or "").rstrip("\n")
    if log:
        lines.append(log)
    return "\n".join(lines)


def log_tail(package: dict[str, Any], count: int = LOG_TAIL_LINES) -> list[str]:
    return str(package.get("build_log") or "").rstrip("\n").splitlines()[-count:]


def wait_for_build(client: FaasClient, name: str) -> dict[str, Any]:
    """Poll the package until its build is done; the package as it ended (succeeded or failed)."""
    began = time.monotonic()
    with progress(f"package '{name}': waiting for the build") as show:
        while True:
            package = client.get_package(name)
            status = str(package.get("status", ""))
            if status in FINISHED:
                return package
            elapsed = time.monotonic() - began
            if elapsed > WAIT_SECONDS:
                raise CliError(
                    f"package '{name}' is still {status} after {WAIT_SECONDS:.0f}s; see 'faas pkg info --name {name}'"
                )
            show(f"package '{name}': {status} ({elapsed:.0f}s)")
            time.sleep(QUICK_POLL_SECONDS if elapsed < QUICK_POLL_FOR else POLL_SECONDS)


def built(client: FaasClient, name: str) -> dict[str, Any]:
    """Wait for package ``name``'s build; on failure, print its log's tail and raise the one-line error."""
    try:
        package = wait_for_build(client, name)
    except KeyboardInterrupt:
        raise CliError(f"stopped waiting; the build goes on (see 'faas pkg info --name {name}')") from None
    if package.get("status") != "succeeded":
        for line in log_tail(package):
            typer.echo(line)
        reason = str(package.get("error") or "see its build log")
        raise CliError(f"package '{name}' failed to build: {reason}")
    return package


def _status_note(package: dict[str, Any]) -> str:
    status = package.get("status", "?")
    if status in ("pending", "running"):
        return f"(status: {status}; 'faas pkg info --name {package.get('name')}' shows the build)"
    if status == "failed":
        return f"(status: failed: {package.get('error') or 'see faas pkg info'})"
    return f"(status: {status})"


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", help="Environment whose builder builds the package and that runs it.")],
    src: Source = None,
    deploy: Deploy = None,
    buildcmd: BuildCmd = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Package name (default: the source's name as a DNS label).", show_default=False),
    ] = None,
) -> None:
    """Create a package from a source to build (--src) and/or a ready deployment (--deploy)."""
    if src is None and deploy is None:
        raise CliError("give --src (a source to build) or --deploy (a ready deployment), or both")
    first = src if src is not None else deploy
    assert first is not None
    name = name or package_name_for(first)
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(prepared(src, "source")) if src is not None else None
        deployment = stack.enter_context(prepared(deploy, "deployment")) if deploy is not None else None
        with working(f"uploading package '{name}'"):
            package = client_of(ctx).create_package(name, env, source, deployment, buildcmd)
    typer.echo(f"package '{name}' created {_status_note(package)}")


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    src: Source = None,
    deploy: Deploy = None,
    buildcmd: BuildCmd = None,
    env: Annotated[str | None, typer.Option("--env", help="Move the package to this environment.")] = None,
) -> None:
    """Change a package's source (built again), deployment, build command or environment."""
    if src is None and deploy is None and buildcmd is None and env is None:
        raise CliError("nothing to update; give --src, --deploy, --buildcmd or --env")
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(prepared(src, "source")) if src is not None else None
        deployment = stack.enter_context(prepared(deploy, "deployment")) if deploy is not None else None
        with working(f"uploading package '{name}'"):
            package = client_of(ctx).update_package(name, env, source, deployment, buildcmd)
    typer.echo(f"package '{name}' updated {_status_note(package)}")


@app.command()
@reports_errors
def info(ctx: typer.Context, name: Name) -> None:
    """Show a package's environment, build status and build log."""
    typer.echo(render_info(client_of(ctx).get_package(name)))


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """List packages."""
    print_items(client_of(ctx).list_packages(), COLUMNS, output)


@app.command()
@reports_errors
def get(
    ctx: typer.Context,
    name: Name,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write the deployment archive (a tar) to; '-' for stdout (the default when piped).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download a package's deployment archive (a tar)."""
    client = client_of(ctx)
    if output is None or str(output) == "-":
        if output is None and sys.stdout.isatty():
            raise CliError("the deployment archive is a tar; give --output FILE, or redirect stdout")
        sys.stdout.flush()
        client.download_deploy(name, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    with working(f"downloading package '{name}'"):
        size = client.download_deploy_to(name, output)
    typer.echo(f"package '{name}': deployment archive written to {output} ({size:,} bytes)")


@app.command()
@reports_errors
def rebuild(ctx: typer.Context, name: Name) -> None:
    """Build a package's source again."""
    package = client_of(ctx).rebuild_package(name)
    typer.echo(f"package '{name}' is built again {_status_note(package)}")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Name,
    force: Annotated[
        bool, typer.Option("--force", help="Delete the functions that run it (and their routes) too.")
    ] = False,
) -> None:
    """Delete a package (with --force, also the functions that run it)."""
    try:
        client_of(ctx).delete_package(name, force=force)
    except ApiError as error:
        if error.status == 409 and not force:
            raise CliError(f"{error.message} (with faas: --force)") from None
        raise
    typer.echo(f"package '{name}' deleted")
