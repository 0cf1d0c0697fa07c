"""Reading a spec directory: every ``*.yaml``/``*.yml`` under it, each document by its kind.

As Fission's CLI reads one: the directory is walked (subdirectories too, in
name order), a file may hold several documents (``---``), a document of an
unknown kind is passed over with a warning, and a kind and name twice is an
error naming both places. ``metadata.namespace`` is read and ignored: faasd
has one namespace, so two documents that differ only by it are the same name.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faas_cli.errors import CliError
from faas_cli.specs import schema

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Doc:
    """One resource document: its kind, name, the document as read, and where it was."""

    kind: str
    name: str
    body: dict[str, Any]
    where: str

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def labels(self) -> dict[str, str]:
        raw = self.metadata.get("labels")
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def annotations(self) -> dict[str, str]:
        raw = self.metadata.get("annotations")
        return {str(k): "" if v is None else str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}' ({self.where})"


@dataclass(frozen=True)
class ArchiveSpec:
    """An ArchiveUploadSpec: the files that make archive ``archive://<name>``."""

    name: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    rootdir: str
    where: str


@dataclass(frozen=True)
class DeploymentConfig:
    name: str
    uid: str
    where: str


@dataclass
class SpecSet:
    """Every document of a spec directory, by kind and name."""

    specdir: Path
    config: DeploymentConfig | None = None
    resources: dict[str, dict[str, Doc]] = field(default_factory=lambda: {k: {} for k in schema.RESOURCE_KINDS})
    archives: dict[str, ArchiveSpec] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The directory an ArchiveUploadSpec's globs start from (by default): the spec directory's parent."""
        return self.specdir.resolve().parent

    def of(self, kind: str) -> list[Doc]:
        return [self.resources[kind][name] for name in sorted(self.resources[kind])]

    def count(self) -> int:
        return sum(len(docs) for docs in self.resources.values())


SPEC_IGNORE = ".specignore"
"""Fission's file of globs (one a line, ``#`` comments) naming files under the spec directory not to read."""


def ignored_globs(specdir: Path, specignore: str | None = None) -> list[str]:
    path = specdir / (specignore or SPEC_IGNORE)
    if not path.is_file():
        if specignore:
            raise CliError(f"spec ignore file '{path}' not found")
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def spec_files(specdir: Path, ignore: list[str] | None = None) -> list[Path]:
    """The YAML files under ``specdir``, in a stable order (subdirectories walked, hidden ones skipped,
    those an ``ignore`` glob matches by path from ``specdir`` or by name left out)."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(specdir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            relative = path.relative_to(specdir).as_posix()
            if not name.endswith(YAML_SUFFIXES) or name.startswith("."):
                continue
            if any(fnmatch.fnmatchcase(relative, g.strip("/")) or fnmatch.fnmatchcase(name, g) for g in ignore or []):
                continue
            found.append(path)
    return found


def _documents(path: Path, shown: str) -> list[tuple[int, Any]]:
    """``(line, data)`` of every document of the YAML file ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise CliError(f"cannot read spec file '{shown}' ({reason.lower()})") from None
    loader = yaml.SafeLoader(text)
    found: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            found.append((node.start_mark.line + 1, loader.construct_document(node)))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = getattr(error, "problem", None) or str(error)
        raise CliError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return found


def read_specs(specdir: Path, specignore: str | None = None) -> SpecSet:
    """Every document under ``specdir`` (but those ``.specignore`` names); a :class:`CliError` for a
    directory that is not one, bad YAML, or a kind and name given twice."""
    if not specdir.is_dir():
        raise CliError(f"spec directory '{specdir}' not found; make one with 'faas spec init'")
    specs = SpecSet(specdir=specdir)
    for path in spec_files(specdir, ignored_globs(specdir, specignore)):
        shown = os.path.relpath(path)
        for line, data in _documents(path, shown):
            if data is None:
                continue
            _add(specs, data, f"{shown}:{line}")
    return specs


def _add(specs: SpecSet, data: Any, where: str) -> None:
    if not isinstance(data, dict):
        specs.warnings.append(f"{where}: not a mapping (kind: ...); ignored")
        return
    kind = data.get("kind")
    if kind in schema.RESOURCE_KINDS:
        if data.get("apiVersion") != schema.API_VERSION:
            specs.warnings.append(
                f"{where}: {kind} has apiVersion {data.get('apiVersion')!r}; read as {schema.API_VERSION}"
            )
        meta = data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            raise CliError(f"{where}: {kind} has no metadata.name")
        seen = specs.resources[kind].get(name)
        if seen is not None:
            raise CliError(f"{where}: {kind} '{name}' is defined twice (first at {seen.where})")
        specs.resources[kind][name] = Doc(kind, name, data, where)
    elif kind == schema.DEPLOYMENT_CONFIG:
        if specs.config is not None:
            raise CliError(f"{where}: a second DeploymentConfig (first at {specs.config.where})")
        specs.config = DeploymentConfig(str(data.get("name") or ""), str(data.get("uid") or ""), where)
    elif kind == schema.ARCHIVE_UPLOAD:
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise CliError(f"{where}: ArchiveUploadSpec has no name")
        if name in specs.archives:
            raise CliError(
                f"{where}: ArchiveUploadSpec '{name}' is defined twice (first at {specs.archives[name].where})"
            )
        specs.archives[name] = ArchiveSpec(
            name=name,
            include=_strings(data.get("include"), f"{where}: ArchiveUploadSpec '{name}' include"),
            exclude=_strings(data.get("exclude"), f"{where}: ArchiveUploadSpec '{name}' exclude"),
            rootdir=str(data.get("rootdir") or ""),
            where=where,
        )
    else:
        specs.warnings.append(f"{where}: ignoring unknown kind {kind!r}")


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CliError(f"{what} must be a list of globs")
    return tuple(value)
