"""A package's source or deployment as uploaded: an archive file as it is, or a directory zipped.

A directory is zipped into a temporary file, one file at a time (never all in
memory), without ``.git``, ``__pycache__`` and ``node_modules``: the builder
installs the dependencies from the manifests. Both are checked against
faasd's limit first, so a too-large package is refused before its upload.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from faas_cli.errors import CliError

MAX_PACKAGE_BYTES = 256 * 1024 * 1024
"""faasd's limit on a package's archive, compressed and unpacked (its MAX_PACKAGE_BYTES)."""
SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules"})
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    """Whether ``path`` names an archive (zip, tar, tar.gz) rather than one source file."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def is_package_source(path: Path) -> bool:
    """Whether `faas deploy PATH` makes a package: a directory, or an archive."""
    return path.is_dir() or is_archive(path)


def package_name_for(path: Path) -> str:
    """The package name a directory or archive deploys as: its name as a DNS label.

    ``./My_App`` -> ``my-app``; ``build/site.tar.gz`` -> ``site``.
    """
    name = path.resolve().name if path.is_dir() or not path.name else path.name
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
            break
    label = re.sub(r"[^a-z0-9]+", "-", lowered).strip("-")[:63].strip("-")
    return label or "package"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise CliError(f"cannot read '{path}' ({(error.strerror or str(error)).lower()})") from None


def _files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under ``root`` to package, with its name in the archive, in a stable order."""
    base = root.resolve()
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        here = Path(folder)
        for name in [*dirs, *sorted(names)]:
            path = here / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if target != base and base not in target.parents:
                    raise CliError(f"'{root / relative}' is a link that leads out of '{root}'; replace it with a file")
                if target.is_dir():
                    raise CliError(f"'{root / relative}' is a link to a directory; replace it with the directory")
            if name in dirs:
                continue
            yield path, relative


@contextlib.contextmanager
def prepared(path: Path, what: str = "source") -> Iterator[Path]:
    """``path`` as an archive to upload: the archive itself, or a directory zipped into a temporary file."""
    if not path.exists():
        raise CliError(f"{what} '{path}' not found")
    if not path.is_dir():
        if _size(path) > MAX_PACKAGE_BYTES:
            raise CliError(f"{what} '{path}' is {_size(path):,} bytes; the limit is {MAX_PACKAGE_BYTES:,}")
        yield path
        return
    files = list(_files(path))
    total = sum(_size(file) for file, _ in files)
    if total > MAX_PACKAGE_BYTES:
        raise CliError(f"{what} directory '{path}' holds {total:,} bytes; the limit is {MAX_PACKAGE_BYTES:,}")
    with _zipped(files, f"'{path}'") as zipped:
        yield zipped


def expanded(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with Fission's glob patterns (``--deploy "bin/*"``) expanded; a pattern matching nothing is kept."""
    found: list[Path] = []
    for path in paths:
        text = str(path)
        matches = sorted(glob.glob(text)) if any(char in text for char in "*?[") else []
        if matches:
            found.extend(Path(match) for match in matches)
        else:
            found.append(path)
    return found


def refuse_url(path: Path, what: str) -> None:
    """Fission's CLI takes an archive's URL (its fetcher downloads it); faasd's uploads local files."""
    text = str(path)
    if text.lower().startswith(("http:/", "https:/")):
        url = re.sub(r"^(https?):/+", r"\1://", text, flags=re.IGNORECASE)
        raise CliError(f"the {what} '{url}' is a URL: faasd's CLI uploads local files; download it first")


@contextlib.contextmanager
def prepared_many(paths: Sequence[Path], what: str = "source") -> Iterator[Path]:
    """Fission's ``--src``/``--deploy`` (repeatable, globs) as one archive to upload.

    One directory or archive is :func:`prepared` as it is; anything else (one
    plain file, or several paths) is zipped together, each file and directory
    at the top of the archive under its own name, as Fission's CLI does.
    """
    given = expanded(paths)
    for path in given:
        refuse_url(path, what)
    if len(given) == 1 and (given[0].is_dir() or is_archive(given[0])):
        with prepared(given[0], what) as archive:
            yield archive
        return
    members: list[tuple[Path, str]] = []
    for path in given:
        if not path.exists():
            raise CliError(f"{what} '{path}' not found")
        if path.is_dir():
            members.extend((file, f"{path.resolve().name}/{relative}") for file, relative in _files(path))
        else:
            members.append((path, path.name))
    names = [name for _, name in members]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise CliError(f"two files would be '{duplicate}' in the {what} archive; give their directory instead")
    total = sum(_size(file) for file, _ in members)
    if total > MAX_PACKAGE_BYTES:
        raise CliError(f"the {what} files hold {total:,} bytes; the limit is {MAX_PACKAGE_BYTES:,}")
    with _zipped(members, f"the {what} files") as zipped:
        yield zipped


@contextlib.contextmanager
def _zipped(members: Sequence[tuple[Path, str]], described: str) -> Iterator[Path]:
    """A temporary zip of ``members`` (file, name in the archive), removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="faas-", suffix=".zip")
    os.close(fd)
    zipped = Path(name)
    try:
        try:
            with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                for file, relative in members:
                    archive.write(file, relative)
        except OSError as error:
            raise CliError(f"cannot zip {described} ({(error.strerror or str(error)).lower()})") from None
        yield zipped
    finally:
        zipped.unlink(missing_ok=True)
