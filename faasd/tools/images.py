"""`faasd images build|list|prune`: the images of faasd's recipes, by hand.

The daemon builds what it is missing on its own first start; this command does
the same ahead of time (`make images` runs it), shows what is there, and
removes what no environment uses any more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import docker
import docker.errors

from faasd.core.database import DatabaseUrl, database_url
from faasd.core.progress import Progress
from faasd.core.recipes import Recipe, RecipeBook, broker_recipes, daemon_recipe, runtime_recipes
from faasd.core.settings import IMAGE_NAMESPACE_RE, load_settings
from faasd.engines.images import ImageBuilder, ImageBuildError, describe

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faasd images",
        description="Build, list and prune the images of faasd's runtimes, builders and brokers.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--image-namespace", help="namespace of the images (default $FAASD_IMAGE_NAMESPACE or faasd)", default=None
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,list,prune}")
    build = sub.add_parser("build", parents=[common], help="build every image whose recipe changed or that is missing")
    build.add_argument("--brokers", action="store_true", help="the broker images too (Redis, NATS: tests, compose)")
    build.add_argument("--force", action="store_true", help="build even the current ones")
    build.add_argument("--no-pull", action="store_true", help="never pull a base: make local Debian bases")
    build.add_argument(
        "--apt-sources",
        nargs="+",
        default=None,
        metavar="FILE",
        help="apt sources files mmdebstrap makes the local Debian bases from (default: this host's)",
    )
    build.add_argument(
        "--source",
        default=None,
        help="a clone of faasd: also build faasd's own image (faasd/faasd, for docker-compose.yml) from it",
    )
    build.add_argument(
        "--ca-bundle",
        default=str(HOST_CA),
        help="CA bundle pip trusts while building faasd's image ('none' for none; default: this host's)",
    )
    build.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="only these, e.g. runtime-python builder-python faasd (default: all)",
    )
    listing = sub.add_parser("list", parents=[common], help="the images this faasd runs, and whether they are built")
    listing.add_argument("--brokers", action="store_true", help="the broker images too")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    prune = sub.add_parser(
        "prune", parents=[common], help="remove faasd's images that no recipe and no environment uses"
    )
    prune.add_argument("--state-dir", default=None, help="faasd's state dir, whose environments keep their images")
    prune.add_argument(
        "--database",
        default=None,
        help="faasd's registry, when not the SQLite file in the state dir: postgresql://... (default $FAASD_DATABASE)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    return parser


def main(command: str, args: Sequence[str]) -> int:
    options = _parser().parse_args(args)
    settings = load_settings([])
    namespace = options.image_namespace or settings.image_namespace
    if not IMAGE_NAMESPACE_RE.fullmatch(namespace):
        print(f"faasd images: --image-namespace {namespace!r} is not an image repository path", file=sys.stderr)
        return 2
    recipes = runtime_recipes(namespace)
    if getattr(options, "brokers", False):
        recipes += broker_recipes(namespace)
    if getattr(options, "source", None):
        try:
            recipes.append(_daemon_recipe(Path(options.source), namespace, options.ca_bundle))
        except ValueError as exc:
            print(f"faasd images: {exc}", file=sys.stderr)
            return 1
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        print(f"faasd images: the Docker engine is not reachable ({exc}); run `faasd doctor`", file=sys.stderr)
        return 1
    book = RecipeBook(recipes)
    try:
        if options.action == "build":
            sources = [Path(f) for f in options.apt_sources] if options.apt_sources else None
            return _build(client, book, options.names, options.force, not options.no_pull, sources)
        if options.action == "list":
            return _list(client, book, options.output)
        state_dir = Path(options.state_dir) if options.state_dir else settings.state_dir
        database = options.database if options.database is not None else settings.database
        return _prune(client, book, state_dir, options.dry_run, database)
    except (docker.errors.DockerException, OSError) as exc:
        print(f"faasd images: Docker engine error: {exc}", file=sys.stderr)
        return 1


def _daemon_recipe(source: Path, namespace: str, ca_bundle: str) -> Recipe:
    """faasd's image from a clone; the CA bundle pip trusts in its build goes in as build/docker-ca.crt
    (git ignores it), so that a proxy that intercepts TLS is trusted there too."""
    recipe = daemon_recipe(source.resolve(), namespace)
    target = recipe.directory / "build" / "docker-ca.crt"
    bundle = Path(ca_bundle)
    if ca_bundle != "none" and bundle.is_file() and bundle.stat().st_size > 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != bundle.read_bytes():
            shutil.copyfile(bundle, target)
    else:
        target.unlink(missing_ok=True)
    return recipe


def _select(book: RecipeBook, names: Sequence[str]) -> list[Recipe]:
    if not names:
        return book.recipes
    by_name = {recipe.repository.rpartition("/")[2]: recipe for recipe in book.recipes}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SystemExit(f"faasd images: no recipe named {', '.join(unknown)} (known: {', '.join(sorted(by_name))})")
    return [by_name[name] for name in names]


def _build(
    client: docker.DockerClient,
    book: RecipeBook,
    names: Sequence[str],
    force: bool,
    pull: bool,
    apt_sources: list[Path] | None,
) -> int:
    wanted = _select(book, names)
    progress = Progress(0)
    builder = ImageBuilder(client, book, report=progress.line, apt_sources=apt_sources, pull=pull)
    todo = builder.missing(wanted, force)
    for recipe in wanted:
        if recipe not in todo:
            progress.line(f"{recipe.reference} is current")
    progress.total = len(todo)
    for recipe in todo:
        try:
            builder.build(recipe)
        except ImageBuildError as exc:
            progress.finish()
            print(f"faasd images: {exc}", file=sys.stderr)
            return 1
        progress.advance()
    progress.finish()
    pruned = 0
    if todo:  # the builds they replaced, now without a tag (`faasd images prune` removes the tagged old ones)
        for image_id, tags in builder.stale(keep=()):
            if not tags and builder.remove(image_id, tags) is None:
                pruned += 1
    print(f"{len(todo)} built, {len(wanted) - len(todo)} current" + (f", {pruned} old removed" if pruned else ""))
    return 0


def _list(client: docker.DockerClient, book: RecipeBook, output: str) -> int:
    states = ImageBuilder(client, book).states(book.recipes)
    if output == "json":
        print(json.dumps(describe(states), indent=2))
        return 0
    width = max(len(state.recipe.reference) for state in states)
    print(f"{'IMAGE':<{width}}  {'BUILT':<5}  {'SIZE':>7}  BASE")
    for state in states:
        size = f"{state.size / 1e6:.0f} MB" if state.present else "-"
        built = "yes" if state.present else "no"
        print(f"{state.recipe.reference:<{width}}  {built:<5}  {size:>7}  {state.base or '-'}")
    return 0


def environment_images(state_dir: Path, database: str = "") -> list[str]:
    """The images and builders the registry's environments name; raises ValueError without a registry.

    ``database``: ``--database`` (empty: the SQLite file in ``state_dir``); a PostgreSQL one is read
    through faasd's own engine.
    """
    url = database_url(database, state_dir)
    if url.is_postgresql:
        return asyncio.run(_postgresql_environment_images(url))
    path = url.sqlite_path
    if not path.is_file():
        raise ValueError(
            f"no faasd registry at {path}: give the state dir of the faasd whose environments' images "
            "to keep, --state-dir DIR (a service installed by `faasd install` keeps it in /var/lib/faasd)"
        )
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT image, builder FROM environments").fetchall()
    except sqlite3.Error as exc:
        raise ValueError(f"cannot read the registry {path}: {exc}") from exc
    return [image for row in rows for image in row if image]


async def _postgresql_environment_images(url: DatabaseUrl) -> list[str]:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from faasd.store.database import open_engine

    engine = open_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT image, builder FROM environments"))).all()
    except (SQLAlchemyError, OSError) as exc:
        raise ValueError(f"cannot read the registry {url.redacted()}: {str(exc).splitlines()[0]}") from exc
    finally:
        await engine.dispose()
    return [image for row in rows for image in row if image]


def _prune(client: docker.DockerClient, book: RecipeBook, state_dir: Path, dry_run: bool, database: str = "") -> int:
    try:
        keep = [book.resolve(image) for image in environment_images(state_dir, database)]
    except ValueError as exc:
        print(f"faasd images prune: {exc}", file=sys.stderr)
        return 1
    builder = ImageBuilder(client, book)
    removed = refused = 0
    for image_id, tags in builder.stale(keep):
        short = image_id.removeprefix("sha256:")[:12]
        name = ", ".join(tags) or "<untagged>"
        if dry_run:
            print(f"would remove {name} ({short})")
            continue
        why = builder.remove(image_id, tags)
        if why is None:
            print(f"removed {name} ({short})")
            removed += 1
        else:
            print(f"kept {name} ({short}): the engine refused: {why}")
            refused += 1
    if not dry_run:
        print(f"{removed} removed" + (f", {refused} kept (in use)" if refused else ""))
    return 0
