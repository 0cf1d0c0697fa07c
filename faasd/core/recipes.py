"""The image recipes faasd ships, and the tags their contents give them.

A recipe is a folder with a Dockerfile: a runtime (runtimes/<lang>/, installed
as the package ``faasd_runtimes``), its builder (runtimes/<lang>/builder/), or
a message broker the tests and docker-compose run (brokers/<name>/, installed
as ``faasd_brokers``). Its image is tagged with the first 12 hex digits of the
sha256 over its files' names and contents, so a faasd whose recipe changed
(an upgrade, an edit) never runs an image built from the old one:
``faasd/runtime-python:3f2a9c1d7e4b``. ``:latest`` is moved to the newest
build too, for people and scripts; faasd itself resolves a stock reference
(``faasd/runtime-python`` or ``faasd/runtime-python:latest``) to the recipe's
tag when it creates a container.

Pure: files only, no Docker (faasd/engines/images.py builds them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

RUNTIME, BUILDER, BROKER, DAEMON = "runtime", "builder", "broker", "faasd"
DEFAULT_NAMESPACE = "faasd"
# Bytecode never counts.
_IGNORED_DIRS = frozenset({"__pycache__"})
_BASE_ARG = re.compile(r"^ARG BASE_IMAGE=(\S+)\s*$", re.MULTILINE)

# The Debian packages of the local base that stands in for a recipe's default
# base where no registry answers (faasd/engines/debian.py): the runtime's own,
# and for a builder the runtime's plus its package manager and the CA
# certificates it fetches with. A new runtime adds a row (runtimes/README.md).
RUNTIME_PACKAGES = {"nodejs": "nodejs", "python": "python3", "ruby": "ruby"}
BUILDER_PACKAGES = {"nodejs": "nodejs,npm,ca-certificates", "python": "python3,python3-pip,ca-certificates"}
BROKER_PACKAGES = {"redis": "redis-server", "nats": "nats-server"}
# faasd's own image (docker-compose.yml): libstdc++6 for greenlet (SQLAlchemy's asyncio),
# iptables for the host firewall around the functions' network.
DAEMON_PACKAGES = "python3,python3-venv,libstdc++6,ca-certificates,iptables"
# What faasd's image is built from, in a clone (the .dockerignore lets the same through).
DAEMON_SOURCES = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "faasd",
    "cli",
    "migrations",
    "runtimes",
    "brokers",
    "build/docker-ca.crt",
)
# The environments registered on a faasd's first start.
STOCK_ENVIRONMENTS = ("nodejs", "python")


@dataclass(frozen=True)
class Recipe:
    kind: str  # runtime, builder or broker
    name: str  # nodejs, python, ruby; redis, nats
    directory: Path  # the build context, with its Dockerfile
    debian_packages: str  # comma list, for the local Debian base
    namespace: str = DEFAULT_NAMESPACE
    exclude: tuple[str, ...] = field(default=())  # subfolders that are not part of it (a runtime's builder/)
    include: tuple[str, ...] = field(default=())  # when given, only these files and folders are part of it

    @property
    def repository(self) -> str:
        if self.kind == DAEMON:
            return f"{self.namespace}/faasd"
        return f"{self.namespace}/{self.kind}-{self.name}"

    @cached_property
    def digest(self) -> str:
        """sha256 over the relative names and contents of the recipe's files."""
        outer = hashlib.sha256()
        for relative in sorted(self.files()):
            outer.update(relative.encode() + b"\0")
            outer.update(hashlib.sha256((self.directory / relative).read_bytes()).digest())
        return outer.hexdigest()

    @property
    def tag(self) -> str:
        return self.digest[:12]

    @property
    def reference(self) -> str:
        """The image this faasd runs: ``<namespace>/<kind>-<name>:<tag>``."""
        return f"{self.repository}:{self.tag}"

    @property
    def latest(self) -> str:
        return f"{self.repository}:latest"

    @property
    def label(self) -> str:
        """The image label that carries the digest: faasd.runtime.hash, faasd.builder.hash, ..."""
        return f"faasd.{self.kind}.hash"

    @cached_property
    def default_base(self) -> str:
        """The Dockerfile's ``ARG BASE_IMAGE=...``: the official base where a registry answers."""
        found = _BASE_ARG.search((self.directory / "Dockerfile").read_text())
        if found is None:
            raise ValueError(f"{self.directory / 'Dockerfile'} has no ARG BASE_IMAGE=...")
        return found.group(1)

    @property
    def local_base(self) -> str:
        """The local Debian base that stands in for the default one (namespace-free: shared)."""
        if self.kind in (RUNTIME, DAEMON):
            return f"faasd/base-{self.name}:bookworm"
        return f"faasd/base-{self.kind}-{self.name}:bookworm"

    def files(self) -> Iterator[str]:
        """The recipe's files, relative to its folder, with / separators."""
        skipped = {self.directory / part for part in self.exclude}
        tops = [self.directory / part for part in self.include] or [self.directory]
        paths = (p for top in tops if top.exists() for p in ([top] if top.is_file() else top.rglob("*")))
        for path in paths:
            if not path.is_file() or path.suffix == ".pyc":
                continue
            if _IGNORED_DIRS.intersection(path.relative_to(self.directory).parts):
                continue
            if any(path.is_relative_to(skip) for skip in skipped):
                continue
            yield path.relative_to(self.directory).as_posix()


def _package_dir(package: str) -> Path:
    return Path(str(resources.files(package)))


def runtime_recipes(namespace: str = DEFAULT_NAMESPACE, root: Path | None = None) -> list[Recipe]:
    """The runtimes and their builders, from ``root`` (default: the installed faasd_runtimes)."""
    root = root or _package_dir("faasd_runtimes")
    found: list[Recipe] = []
    for name, packages in RUNTIME_PACKAGES.items():
        directory = root / name
        found.append(Recipe(RUNTIME, name, directory, packages, namespace, exclude=("builder",)))
        if name in BUILDER_PACKAGES and (directory / "builder" / "Dockerfile").is_file():
            found.append(Recipe(BUILDER, name, directory / "builder", BUILDER_PACKAGES[name], namespace))
    return found


def broker_recipes(namespace: str = DEFAULT_NAMESPACE, root: Path | None = None) -> list[Recipe]:
    """The message brokers' images (Redis, NATS) that the tests and docker-compose run."""
    root = root or _package_dir("faasd_brokers")
    return [Recipe(BROKER, name, root / name, packages, namespace) for name, packages in BROKER_PACKAGES.items()]


def daemon_recipe(source: Path, namespace: str = DEFAULT_NAMESPACE) -> Recipe:
    """faasd's own image, from a clone at ``source`` (its Dockerfile), for docker-compose.yml."""
    if not (source / "Dockerfile").is_file() or not (source / "faasd" / "__init__.py").is_file():
        raise ValueError(f"{source} is not a clone of faasd (no Dockerfile and faasd/ there)")
    return Recipe(DAEMON, "faasd", source, DAEMON_PACKAGES, namespace, include=DAEMON_SOURCES)


def split_reference(reference: str) -> tuple[str, str]:
    """``repo[:tag]`` into (repo, tag); the tag is '' when absent (a registry's :port is not a tag)."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return reference, ""
    return name, tag


class RecipeBook:
    """The recipes one faasd runs from, found by repository."""

    def __init__(self, recipes: Iterable[Recipe]) -> None:
        self.recipes = list(recipes)
        self._by_repository = {recipe.repository: recipe for recipe in self.recipes}

    def of(self, reference: str) -> Recipe | None:
        """The recipe behind a stock reference (``repo``, ``repo:latest`` or ``repo:<its tag>``), else None."""
        repository, tag = split_reference(reference)
        recipe = self._by_repository.get(repository)
        if recipe is None or tag not in ("", "latest", recipe.tag):
            return None
        return recipe

    def resolve(self, reference: str) -> str:
        """A stock reference as the tag of this faasd's recipe; any other reference as it is."""
        recipe = self.of(reference)
        return reference if recipe is None else recipe.reference

    def runtime(self, name: str) -> Recipe:
        return self._by_repository[f"{self.recipes[0].namespace}/{RUNTIME}-{name}"]

    def builder_of(self, runtime: Recipe) -> Recipe | None:
        return self._by_repository.get(f"{runtime.namespace}/{BUILDER}-{runtime.name}")
