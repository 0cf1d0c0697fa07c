"""`faas spec`: a ``specs/`` directory of Fission spec files, applied to faasd as a whole.

``init`` makes the directory (its deployment uid), ``validate`` checks it,
``apply`` makes faasd what it describes (idempotent; ``--delete`` removes what
it dropped, ``--wait`` waits for builds, ``--watch`` applies again on every
change), ``destroy`` removes all it made, ``list`` shows what it made, and
``export`` writes a running faasd as such a directory. docs/specs.md has the
mapping and the way to Fission on Kubernetes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from faas_cli.errors import CliError, reports_errors
from faas_cli.options import Output
from faas_cli.output import Column, OutputFormat, print_items, working
from faas_cli.specs import schema
from faas_cli.specs.api import SpecClient, spec_client
from faas_cli.specs.export import export as export_specs
from faas_cli.specs.files import init as init_specs
from faas_cli.specs.mapping import Wanted
from faas_cli.specs.model import SpecSet, read_specs
from faas_cli.specs.plan import destroy_plan, execute, listings, make_plan, summary, wait_for_builds
from faas_cli.specs.validate import check

app = typer.Typer(
    help="Fission spec files: a specs/ directory of YAML documents (environments, packages, functions, "
    "triggers) applied as a whole.",
    no_args_is_help=True,
)

SpecDir = Annotated[Path, typer.Option("--specdir", help="The spec directory; archive globs start from its parent.")]
SpecIgnore = Annotated[
    str | None,
    typer.Option(
        "--specignore",
        help="A file in the spec directory of globs naming spec files to skip (default: .specignore).",
        show_default=False,
    ),
]
WATCH_INTERVAL = 1.0
"""Seconds between two looks at the files under --watch."""
SETTLE = 0.5
"""After a change, the files must stay the same this long before the specs are applied again."""
SKIPPED = frozenset({".git", "__pycache__", "node_modules", ".venv", ".faasd"})

Snapshot = dict[str, tuple[int, int]]


def warn(text: str) -> None:
    typer.echo(f"warning: {text}", err=True)


def _checked(specs: SpecSet, workdir: Path, notes: bool = False) -> tuple[list[Wanted], str]:
    mapped = check(specs, workdir)
    for text in mapped.warnings:
        warn(text)
    if notes:
        for text in mapped.notes:
            typer.echo(f"note: {text}", err=True)
    if mapped.errors:
        for text in mapped.errors:
            typer.echo(f"error: {' '.join(text.split())}", err=True)
        raise CliError(f"{len(mapped.errors)} problem(s) in '{specs.specdir}'; nothing was applied")
    assert specs.config is not None
    return mapped.wanted, specs.config.uid


@app.command()
@reports_errors
def init(
    specdir: SpecDir = Path("specs"),
    name: Annotated[
        str | None, typer.Option("--name", help="The deployment's name (default: the project directory's).")
    ] = None,
    deployment_id: Annotated[
        str | None,
        typer.Option("--deployment-id", "--deployid", help="Its uid (default: a new one).", show_default=False),
    ] = None,
) -> None:
    """Make a spec directory: its deployment config (name and uid) and a README."""
    config = init_specs(specdir, name, deployment_id)
    typer.echo(f"spec directory '{specdir}' made ({config.name})")


@app.command()
@reports_errors
def validate(specdir: SpecDir = Path("specs"), specignore: SpecIgnore = None) -> None:
    """Check the specs: their fields, what refers to what, and the archives' files."""
    specs = read_specs(specdir, specignore)
    with tempfile.TemporaryDirectory(prefix="faas-spec-") as work:
        wanted, _uid = _checked(specs, Path(work), notes=True)
    typer.echo(f"{specs.count()} resource(s) in '{specdir}' are valid: {len(wanted)} faasd object(s)")


def apply_once(
    client: Callable[[], SpecClient],
    specdir: Path,
    *,
    delete: bool = False,
    wait: bool = False,
    dry_run: bool = False,
    allow_conflicts: bool = False,
    specignore: str | None = None,
) -> None:
    specs = read_specs(specdir, specignore)
    with tempfile.TemporaryDirectory(prefix="faas-spec-") as work:
        wanted, uid = _checked(specs, Path(work))
        daemon = client()
        with working("reading faasd's objects"):
            existing = listings(daemon)
        actions = make_plan(wanted, existing, uid, delete=delete, allow_conflicts=allow_conflicts)
        if dry_run:
            for line in summary(actions, dry_run=True):
                typer.echo(line)
            return
        with working("applying the specs"):
            execute(daemon, actions, typer.echo)
    if not any(a.op != "keep" for a in actions):
        typer.echo("everything up to date")
    built = [a.name for a in actions if a.kind == "package" and a.source]
    if wait:
        packages = [w.name for w in wanted if w.kind == "package"]
        failed = wait_for_builds(daemon, packages, typer.echo)
        if failed:
            raise CliError(f"{len(failed)} package(s) failed to build: {', '.join(p['name'] for p in failed)}")
    elif built:
        typer.echo(f"building: {', '.join(built)} (--wait waits; faas pkg info --name NAME shows a build)")


def snapshot(root: Path) -> Snapshot:
    """Every file under ``root`` with its mtime and size (dependency and VCS folders, editor files skipped)."""
    seen: Snapshot = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED]
        for name in names:
            if name.startswith(".#") or name.endswith("~"):
                continue
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            seen[path] = (info.st_mtime_ns, info.st_size)
    return seen


def watch_loop(
    apply: Callable[[], None],
    look: Callable[[], Snapshot],
    *,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = WATCH_INTERVAL,
    rounds: int | None = None,
) -> int:
    """Apply, then again after each change ``look`` sees, ``rounds`` times (None: until Ctrl-C). Returns applies."""
    applied = 0
    while True:
        before = look()
        try:
            apply()
        except CliError as error:
            typer.echo(f"error: {' '.join(error.message.split())}", err=True)
        applied += 1
        if rounds is not None and applied >= rounds:
            return applied
        typer.echo("watching for changes (Ctrl-C stops)", err=True)
        while (now := look()) == before:
            sleep(interval)
        while True:  # let a burst of writes finish
            sleep(SETTLE)
            settled = look()
            if settled == now:
                break
            now = settled
        typer.echo("files changed; applying again", err=True)


@app.command()
@reports_errors
def apply(
    ctx: typer.Context,
    specdir: SpecDir = Path("specs"),
    delete: Annotated[
        bool, typer.Option("--delete", help="Also delete what this spec made before and no longer has.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the packages' builds; fail if one fails.")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep watching the files; apply again on each change.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would change.")] = False,
    allow_conflicts: Annotated[
        bool,
        typer.Option(
            "--allow-conflicts",
            "--allowconflicts",
            help="Take over objects of the same name that this spec did not make.",
        ),
    ] = False,
    specignore: SpecIgnore = None,
) -> None:
    """Make faasd's objects what the specs describe (again and again: it changes only what differs)."""

    def once() -> None:
        apply_once(
            lambda: spec_client(ctx),
            specdir,
            delete=delete,
            wait=wait,
            dry_run=dry_run,
            allow_conflicts=allow_conflicts,
            specignore=specignore,
        )

    if not watch:
        once()
        return
    root = specdir.resolve().parent
    try:
        watch_loop(once, lambda: snapshot(root))
    except KeyboardInterrupt:
        raise typer.Exit(code=0) from None


def _uid(specdir: Path, given: str | None = None) -> str:
    if given:
        return given
    specs = read_specs(specdir)
    if specs.config is None or not specs.config.uid:
        raise CliError(f"no DeploymentConfig with a uid in '{specdir}' (make one with 'faas spec init')")
    return specs.config.uid


@app.command()
@reports_errors
def destroy(ctx: typer.Context, specdir: SpecDir = Path("specs")) -> None:
    """Delete everything the specs' deployment made (whatever the files say now)."""
    uid = _uid(specdir)
    client = spec_client(ctx)
    actions = destroy_plan(listings(client, f"{schema.UID_LABEL}={uid}"), uid)
    with working("deleting"):
        execute(client, actions, typer.echo)
    if not actions:
        typer.echo("nothing to delete")


COLUMNS = (Column("KIND", "kind"), Column("NAME", "name"), Column("UPDATED", "updated_at"))


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    specdir: SpecDir = Path("specs"),
    deployment_id: Annotated[
        str | None,
        typer.Option(
            "--deployment-id",
            "--deployid",
            help="A deployment uid (default: the spec directory's).",
            show_default=False,
        ),
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """List the objects on faasd that the specs' deployment made."""
    uid = _uid(specdir, deployment_id)
    found = listings(spec_client(ctx), f"{schema.UID_LABEL}={uid}")
    rows = [{"kind": kind, **item} for kind, items in found.items() for item in items]
    print_items(rows, COLUMNS, output)


@app.command()
@reports_errors
def export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="The project directory to write (its specs/ must not exist).")],
) -> None:
    """Write faasd's environments, packages, functions and triggers as a spec directory (and their files)."""
    with working("exporting"):
        written = export_specs(spec_client(ctx), directory, warn)
    typer.echo(f"{len(written)} spec file(s) written to '{directory / 'specs'}'")
    typer.echo(f"apply them with: cd {directory} && faas spec apply   (on Kubernetes: fission spec apply)")
