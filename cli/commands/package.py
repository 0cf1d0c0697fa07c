"""`faas package` (alias `pkg`): a function's source archive and the deployment its builder made.

Fission's spellings: ``create --src DIR|ZIP [--deploy DIR|ZIP] --env E
[--buildcmd CMD]``, ``info``, ``list``, ``get`` (``getdeploy``), ``update``,
``rebuild``, ``delete``. A build runs in the daemon, in the background:
``info`` shows where it is and its log; `faas deploy DIR` waits for it.

Like Fission's CLI, ``--src`` and ``--deploy`` may be repeated and may be
globs: several files (or one that is no archive) are zipped together.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.archives import package_name_for, prepared_many
from faas_cli.client import FaasClient
from faas_cli.errors import ApiError, CliError, reports_errors
from faas_cli.fission import DEFAULT_SPECDIR, SpecDir, SpecDry, SpecSave, saved_as_spec
from faas_cli.options import Labels, Output, client_of, is_fission, label_pairs, program
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
# As `fission pkg list` prints them.
FISSION_COLUMNS = (
    Column("NAME", "name"),
    Column("BUILD_STATUS", "status"),
    Column("ENV", "environment"),
    Column("LASTUPDATEDAT", "updated_at"),
)

Name = Annotated[str, typer.Option("--name", help="Package name.")]
Source = Annotated[
    list[Path] | None,
    typer.Option(
        "--src",
        "--sourcearchive",
        "--source",
        help="Source to build: a directory or an archive (zip, tar, tar.gz); several files or a glob are zipped "
        "together.",
        show_default=False,
    ),
]
Deploy = Annotated[
    list[Path] | None,
    typer.Option(
        "--deploy",
        "--deployarchive",
        help="A ready deployment: a directory or an archive, used as it is (no build); several files or a glob "
        "are zipped together.",
        show_default=False,
    ),
]
Code = Annotated[
    Path | None,
    typer.Option(
        "--code",
        help="One source file as the whole deployment (Fission's --code; no build).",
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


def _status_note(package: dict[str, Any], prog: str = "faas") -> str:
    status = package.get("status", "?")
    if status in ("pending", "running"):
        return f"(status: {status}; '{prog} pkg info --name {package.get('name')}' shows the build)"
    if status == "failed":
        return f"(status: failed: {package.get('error') or f'see {prog} pkg info'})"
    return f"(status: {status})"


def unique_name(base: str) -> str:
    """``base`` with a short random suffix, as Fission names the packages it makes (``hello-3f9a``)."""
    return f"{base[:58].rstrip('-')}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def archives(src: Sequence[Path] | None, deploy: Sequence[Path] | None) -> Iterator[tuple[Path | None, Path | None]]:
    """The source and deployment archives to upload (either may be None)."""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(prepared_many(src, "source")) if src else None
        deployment = stack.enter_context(prepared_many(deploy, "deployment")) if deploy else None
        yield source, deployment


def package_spec(
    folder: Path, name: str, env: str, src: list[Path] | None, deploy: list[Path] | None, buildcmd: str | None
) -> Path:
    """The package's spec file (one --src or one --deploy: the spec's archive is one path)."""
    from faas_cli.specs import files

    if len(src or []) + len(deploy or []) != 1:
        raise CliError("with --spec, give one --src or one --deploy (a directory or an archive)")
    return files.write_package_spec(
        folder, name, env, src=src[0] if src else None, deploy=deploy[0] if deploy else None, buildcmd=buildcmd
    )


def deployment_of(deploy: list[Path] | None, code: Path | None) -> list[Path] | None:
    """``--deploy``, or Fission's ``--code FILE``: that one file as the deployment."""
    if code is not None and deploy:
        raise CliError("give --code FILE or --deploy, not both")
    return [code] if code is not None else deploy


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
        typer.Option(
            "--name",
            help="Package name (default: the source's name as a DNS label; as 'fission', with a random suffix).",
            show_default=False,
        ),
    ] = None,
    code: Code = None,
    labels: Labels = None,
    spec: SpecSave = False,
    dry: SpecDry = False,
    specdir: SpecDir = DEFAULT_SPECDIR,
) -> None:
    """Create a package from a source to build (--src) and/or a ready deployment (--deploy)."""
    deploy = deployment_of(deploy, code)
    if not src and not deploy:
        raise CliError("give --src (a source to build) or --deploy (a ready deployment), or both")
    if name is None:
        name = package_name_for((src or deploy or [Path()])[0])
        if is_fission(ctx):
            name = unique_name(name)
    if saved_as_spec(spec, dry, specdir, lambda folder: [package_spec(folder, name, env, src, deploy, buildcmd)]):
        return
    with archives(src, deploy) as (source, deployment), working(f"uploading package '{name}'"):
        package = client_of(ctx).create_package(name, env, source, deployment, buildcmd, labels=label_pairs(labels))
    typer.echo(f"package '{name}' created {_status_note(package, program(ctx))}")


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    src: Source = None,
    deploy: Deploy = None,
    buildcmd: BuildCmd = None,
    env: Annotated[str | None, typer.Option("--env", help="Move the package to this environment.")] = None,
    code: Code = None,
    labels: Labels = None,
) -> None:
    """Change a package's source (built again), deployment, build command or environment."""
    deploy = deployment_of(deploy, code)
    if not src and not deploy and buildcmd is None and env is None and labels is None:
        raise CliError("nothing to update; give --src, --deploy, --buildcmd or --env")
    with archives(src, deploy) as (source, deployment), working(f"uploading package '{name}'"):
        package = client_of(ctx).update_package(name, env, source, deployment, buildcmd, labels=label_pairs(labels))
    typer.echo(f"package '{name}' updated {_status_note(package, program(ctx))}")


@app.command()
@reports_errors
def info(ctx: typer.Context, name: Name) -> None:
    """Show a package's environment, build status and build log."""
    typer.echo(render_info(client_of(ctx).get_package(name)))


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    output: Output = OutputFormat.table,
    orphan: Annotated[bool, typer.Option("--orphan", help="Only the packages no function runs.")] = False,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only the packages whose build is in this status, e.g. failed."),
    ] = None,
) -> None:
    """List packages."""
    client = client_of(ctx)
    packages = client.list_packages()
    if orphan:
        packages = orphans(client, packages)
    if status is not None:
        packages = [p for p in packages if p.get("status") == status.strip().lower()]
    print_items(packages, FISSION_COLUMNS if is_fission(ctx) else COLUMNS, output)


def orphans(client: FaasClient, packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The packages no function runs."""
    used = {f.get("package") for f in client.list_functions()}
    return [p for p in packages if p.get("name") not in used]


@app.command()
@app.command("getdeploy", hidden=True)
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
    _download(ctx, name, output, "deploy")


@app.command("getsrc", hidden=True)
@reports_errors
def getsrc(
    ctx: typer.Context,
    name: Name,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write the source archive to; '-' for stdout.", show_default=False),
    ] = None,
) -> None:
    """Fission's `pkg getsrc`: download a package's source archive (where the daemon serves it)."""
    try:
        _download(ctx, name, output, "source")
    except ApiError as error:
        if error.status == 404 and "no admin API endpoint" in error.message:
            client_of(ctx).get_package(name)  # an unknown package is that error first
            raise CliError(
                f"this faasd does not hand a package's source back; "
                f"'{program(ctx)} pkg getdeploy --name {name}' gets its deployment archive"
            ) from None
        raise


def _download(ctx: typer.Context, name: str, output: Path | None, archive: str) -> None:
    client = client_of(ctx)
    what = "deployment" if archive == "deploy" else archive
    if output is None or str(output) == "-":
        if output is None and sys.stdout.isatty():
            raise CliError(f"the {what} archive is a tar; give --output FILE, or redirect stdout")
        sys.stdout.flush()
        client.download_deploy(name, sys.stdout.buffer, archive)
        sys.stdout.buffer.flush()
        return
    with working(f"downloading package '{name}'"):
        size = client.download_deploy_to(name, output, archive)
    typer.echo(f"package '{name}': {what} archive written to {output} ({size:,} bytes)")


@app.command()
@reports_errors
def rebuild(ctx: typer.Context, name: Name) -> None:
    """Build a package's source again."""
    package = client_of(ctx).rebuild_package(name)
    typer.echo(f"package '{name}' is built again {_status_note(package, program(ctx))}")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="Package name.", show_default=False)] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Delete the functions that run it (and their routes) too.")
    ] = False,
    orphan: Annotated[bool, typer.Option("--orphan", help="Delete every package no function runs.")] = False,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="A package that does not exist is no error.")
    ] = False,
) -> None:
    """Delete a package (with --force, also the functions that run it), or with --orphan every unused one."""
    client = client_of(ctx)
    if orphan:
        if name is not None:
            raise CliError("give --name or --orphan, not both")
        for package in orphans(client, client.list_packages()):
            client.delete_package(str(package["name"]))
            typer.echo(f"package '{package['name']}' deleted")
        return
    if name is None:
        raise CliError("give --name (or --orphan)")
    try:
        client.delete_package(name, force=force)
    except ApiError as error:
        if error.status == 404 and ignorenotfound:
            return
        if error.status == 409 and not force:
            raise CliError(f"{error.message} (with {program(ctx)}: --force)") from None
        raise
    typer.echo(f"package '{name}' deleted")
