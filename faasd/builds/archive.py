"""Package archives: check a user's upload and store it in one normalized form.

A package arrives as a zip, a tar or a gzip'd tar (its source, or a ready
deployment) and is stored as a *normalized tar*:

* an uncompressed POSIX (pax) tar whose members are sorted by path (plain
  string order, so a directory always comes before what it holds);
* only directories, regular files and symlinks whose target resolves inside
  the tree (kept as symlinks); every parent directory is a member of its own;
* mtime 0, uid = gid = ``owner`` (the builder wants 1000, the runtime 0) and
  empty uname/gname, so that an extractor goes by the numeric ids;
* modes 0755 for directories, 0755 for files with any x bit set, 0644 for
  other files, 0777 for symlinks.

The same tree therefore gives byte-identical tars whatever the container
format, the member order, the timestamps or the owners were, and the tar's
sha256 can name it.

Checks, each a :class:`BadRequest` naming the member and why: paths must be
relative, valid UTF-8, without NUL, backslash or ``..`` component, and unique
after normalization (``./a`` and ``a`` are the same path); no devices, fifos,
sockets, sparse or encrypted members; a hard link becomes a copy of the file
it names when that file is an earlier member, else it is refused; a member
cannot live under a file or a symlink; symlinks may not be absolute, leave the
tree or loop. When every member of an upload is under one top-level directory,
that directory is stripped (zipping a folder and tarring ``dir/`` both give the
folder's contents at the root) -- once, and by :func:`normalize` only.

Limits, a :class:`PayloadTooLarge` naming the limit: at most ``max_files``
members and ``max_bytes`` bytes of file content once unpacked. Both are
checked from the members' headers as the archive is read, before any content
is unpacked; a member is then never read past the size its header declares (a
zip bomb whose declared sizes lie is refused as corrupt as soon as its data
runs over), and the bytes actually copied are counted again while writing.

Nothing is written on a refusal: the tar is written to a temporary file in the
destination's directory and renamed into place at the end (a gzip'd upload is
first unpacked into an anonymous temporary file there). No member and no
archive is ever held in memory whole; content is copied and hashed in chunks.

Every function here blocks; faasd calls them in a worker thread.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, Self

from faasd.core.entities import MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES
from faasd.core.errors import BadRequest, PayloadTooLarge

__all__ = [
    "ArchiveInfo",
    "file_hashes",
    "members_matching",
    "normalize",
    "normalize_directory",
    "overlay",
    "retag",
]

NOT_AN_ARCHIVE = "not a zip or tar archive"

_CHUNK = 1 << 20  # bytes copied or hashed at a time
_MAX_LINK = 4096  # bytes in a symlink's target
_MAX_METADATA = 64 * 1024  # bytes in one pax or GNU long-name header
_MAX_HOPS = 40  # symlinks followed while resolving one path, as Linux does
_MAX_OWNER = 0o7777777  # the largest id a ustar header holds

# What parsing a broken upload raises (besides what faasd raises itself).
_PARSE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
    ValueError,
    NotImplementedError,
    RecursionError,
)
_METADATA_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_ZIP_UNIX = 3  # ZipInfo.create_system of a zip made on Unix: external_attr holds st_mode

_Kind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class ArchiveInfo:
    """What was written: the normalized tar's digest and size, and what it holds."""

    sha256: str  # hex digest of the tar file
    size: int  # bytes of the tar file
    files: int  # members in the tar: directories, files and symlinks
    unpacked_bytes: int  # bytes of file content


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> object: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    """One member of a tree; a file's content is read through ``opener`` only when it is needed."""

    kind: _Kind
    origin: str = ""  # the member's name in its archive, for messages
    executable: bool = False
    size: int = 0
    target: str = ""  # a symlink's target
    opener: Callable[[], _Reader] | None = None


_DIR = _Entry("dir")


# -- the public API -------------------------------------------------------------------------------


def normalize(
    src: Path,
    dest: Path,
    *,
    owner: int = 0,
    max_bytes: int = MAX_PACKAGE_BYTES,
    max_files: int = MAX_PACKAGE_FILES,
) -> ArchiveInfo:
    """Check the zip, tar or gzip'd tar ``src`` and write it to ``dest`` as a normalized tar owned by ``owner``.

    A single top-level directory holding every member is stripped. Raises
    BadRequest for a refused member or an unrecognized or corrupt archive,
    PayloadTooLarge past ``max_bytes`` (unpacked) or ``max_files`` (members);
    ``dest`` is then left as it was.
    """
    _check_owner(owner)
    # One member of slack: the top-level directory may be stripped.
    budget = _Budget(max_bytes, max_files, slack=1)
    with _opened_archive(src, budget, spool_dir=dest.parent) as entries:
        tree = _make_tree(_strip_top(entries), max_bytes, max_files)
        return _write(dest, tree, owner, max_bytes)


def normalize_directory(
    root: Path,
    dest: Path,
    *,
    owner: int = 0,
    max_bytes: int = MAX_PACKAGE_BYTES,
    max_files: int = MAX_PACKAGE_FILES,
) -> ArchiveInfo:
    """Write the tree under the directory ``root`` (not ``root`` itself) to ``dest`` as a normalized tar.

    Same checks and limits as :func:`normalize`; symlinks are not followed
    but kept, under the same rules; nothing is stripped.
    """
    _check_owner(owner)
    entries = _read_directory(root, _Budget(max_bytes, max_files))
    tree = _make_tree(entries, max_bytes, max_files)
    return _write(dest, tree, owner, max_bytes)


def overlay(
    base: Path | None,
    top: Path,
    dest: Path,
    *,
    prefix: str = "deploy",
    owner: int = 0,
    max_bytes: int = MAX_PACKAGE_BYTES,
    max_files: int = MAX_PACKAGE_FILES,
) -> ArchiveInfo:
    """Write ``base``'s members with ``top``'s laid over them, all under ``prefix/``, as a normalized tar.

    ``top`` wins where both have a path; a directory in one where the other
    has a file or symlink is a BadRequest. ``prefix`` ("" = the root) becomes
    a directory member itself. Nothing is stripped from either archive. The
    limits apply to each archive and to the result.
    """
    _check_owner(owner)
    lower_archive: contextlib.AbstractContextManager[dict[str, _Entry]] = contextlib.nullcontext({})
    if base is not None:
        lower_archive = _opened_archive(base, _Budget(max_bytes, max_files), spool_dir=dest.parent)
    upper_archive = _opened_archive(top, _Budget(max_bytes, max_files), spool_dir=dest.parent)
    with lower_archive as lower_entries, upper_archive as upper:
        merged = dict(lower_entries)
        for path, entry in upper.items():
            lower = merged.get(path)
            if lower is not None and (lower.kind == "dir") != (entry.kind == "dir"):
                if lower.kind == "dir":
                    why = "a directory in the base archive but not in the top one"
                else:
                    why = "a directory in the top archive but not in the base one"
                raise BadRequest(f"archive member '{_show(path)}' is {why}")
            merged[path] = entry
        tree = _make_tree(merged, max_bytes, max_files)
        return _write(dest, _place(tree, prefix, ()), owner, max_bytes)


def retag(
    src: Path,
    dest: Path,
    *,
    prefix: str,
    owner: int,
    extra_dirs: tuple[str, ...] = (),
    max_bytes: int = MAX_PACKAGE_BYTES,
    max_files: int = MAX_PACKAGE_FILES,
) -> ArchiveInfo:
    """Write ``src``'s members under ``prefix/`` ("" = the root), owned by ``owner``, as a normalized tar.

    ``extra_dirs`` are paths from the archive's root (not under ``prefix``)
    added as empty directories owned by ``owner`` -- only those asked for:
    ``retag(src, dest, prefix="src", owner=1000, extra_dirs=("deploy",))``
    gives the builder its source under ``src/`` and an empty ``deploy/``.
    Nothing is stripped from ``src``.
    """
    _check_owner(owner)
    with _opened_archive(src, _Budget(max_bytes, max_files), spool_dir=dest.parent) as entries:
        tree = _make_tree(entries, max_bytes, max_files)
        return _write(dest, _place(tree, prefix, extra_dirs), owner, max_bytes)


def file_hashes(src: Path, names: Collection[str]) -> dict[str, str]:
    """The sha256 of each of ``names`` (paths from the archive's root) that ``src`` has as a file.

    A symlink counts as the file it resolves to inside the archive; a name
    that is absent, a directory or a dangling symlink is left out. Meant for
    the dependency cache key (requirements.txt, package.json, ...).
    """
    with _opened_archive(src, _Budget()) as entries:
        tree = _make_tree(entries, MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES)
        found: dict[str, str] = {}
        for name in sorted(set(names)):
            entry = _file_at(tree, _clean(name, "name"))
            if entry is not None:
                found[name] = _sha256(entry)
        return found


def members_matching(src: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """Path -> sha256 of every file (or symlink to a file) in ``src`` whose path ends with one of ``suffixes``.

    Meant for local dependency files, e.g. ``(".whl", ".tar.gz", ".tgz", ".zip")``.
    """
    with _opened_archive(src, _Budget()) as entries:
        tree = _make_tree(entries, MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES)
        found: dict[str, str] = {}
        for path in sorted(tree):
            if path.endswith(suffixes):
                entry = _file_at(tree, path)
                if entry is not None:
                    found[path] = _sha256(entry)
        return found


# -- limits ---------------------------------------------------------------------------------------


class _Budget:
    """Counts members and declared content bytes as an archive is read; raises past the limits."""

    def __init__(self, max_bytes: int = MAX_PACKAGE_BYTES, max_files: int = MAX_PACKAGE_FILES, slack: int = 0) -> None:
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._slack = slack
        self._files = 0
        self._bytes = 0

    def member(self) -> None:
        self._files += 1
        if self._files > self.max_files + self._slack:
            raise _too_many_files(self.max_files)

    def content(self, name: str, size: int) -> None:
        self._bytes += size
        if self._bytes > self.max_bytes:
            raise _too_many_bytes(self.max_bytes, name)


def _too_many_files(max_files: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the package is over the limit of {max_files} files")


def _too_many_bytes(max_bytes: int, name: str = "") -> PayloadTooLarge:
    at = f" (at archive member '{_show(name)}')" if name else ""
    return PayloadTooLarge(f"the package is over the limit of {max_bytes} bytes unpacked{at}")


def _check_owner(owner: int) -> None:
    if not 0 <= owner <= _MAX_OWNER:
        raise ValueError(f"owner {owner} is not a uid from 0 to {_MAX_OWNER}")


# -- paths ----------------------------------------------------------------------------------------


def _show(name: str) -> str:
    """``name`` fit for a message: escaped when it holds unprintable characters, and cut when long."""
    shown = name if name.isprintable() else repr(name)[1:-1]
    return shown if len(shown) <= 200 else shown[:200] + "..."


def _clean(name: str, what: str = "archive member") -> str:
    """The normalized relative path of ``name`` ("" for the root), or a BadRequest saying what is wrong with it."""
    if "\x00" in name:
        raise BadRequest(f"{what} '{_show(name)}' has a NUL byte in its name")
    if "\\" in name:
        raise BadRequest(f"{what} '{_show(name)}' has a backslash in its name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} '{_show(name)}' has a name that is not valid UTF-8") from None
    if name.startswith("/"):
        raise BadRequest(f"{what} '{_show(name)}' is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BadRequest(f"{what} '{_show(name)}' leaves the package")
    return "/".join(parts)


# -- reading an archive ---------------------------------------------------------------------------


class _Collector:
    """The members read so far, by normalized path; refuses duplicates and keeps the budget."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.entries: dict[str, _Entry] = {}

    def claim(self, name: str, kind: _Kind, size: int = 0) -> str | None:
        """The path for a new member, or None for the package's root itself (which needs no member)."""
        path = _clean(name)
        if not path:
            if kind != "dir":
                raise BadRequest(f"archive member '{_show(name)}' is not a directory")
            return None
        if path in self.entries:
            raise BadRequest(f"archive member '{_show(name)}' appears more than once")
        self.budget.member()
        if kind == "file":
            if size < 0:
                raise BadRequest(f"archive member '{_show(name)}' has a negative size")
            self.budget.content(name, size)
        return path

    def add(self, name: str, entry: _Entry) -> None:
        path = self.claim(name, entry.kind, entry.size)
        if path is not None:
            self.entries[path] = entry


@contextlib.contextmanager
def _opened_archive(src: Path, budget: _Budget, spool_dir: Path | None = None) -> Iterator[dict[str, _Entry]]:
    """The members of the zip, tar or gzip'd tar ``src``, by normalized path (nothing stripped).

    The archive stays open in the ``with`` block: files' openers read from it.
    A gzip'd tar is read once, its files' content copied into an anonymous
    temporary file in ``spool_dir`` as it goes.
    """
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open(src, "rb"))
        magic = fh.read(4)
        fh.seek(0)
        collector = _Collector(budget)
        try:
            if magic.startswith(b"\x1f\x8b"):
                gz = stack.enter_context(gzip.GzipFile(fileobj=fh, mode="rb"))
                try:
                    tar = stack.enter_context(tarfile.open(fileobj=gz, mode="r|", tarinfo=_CheckedTarInfo))
                except tarfile.ReadError:
                    raise BadRequest(NOT_AN_ARCHIVE) from None
                spool = stack.enter_context(tempfile.TemporaryFile(dir=spool_dir))
                _read_tar(tar, collector, spool=spool)
            elif magic in (b"PK\x03\x04", b"PK\x05\x06"):
                _read_zip(stack.enter_context(zipfile.ZipFile(fh)), collector)
            else:
                try:
                    tar = stack.enter_context(tarfile.open(fileobj=fh, mode="r:", tarinfo=_CheckedTarInfo))
                except _PARSE_ERRORS:
                    raise BadRequest(NOT_AN_ARCHIVE) from None
                _read_tar(tar, collector, spool=None)
        except _PARSE_ERRORS as e:
            raise BadRequest(f"the archive is corrupt: {e}") from e
        yield collector.entries


def _read_zip(zf: zipfile.ZipFile, collector: _Collector) -> None:
    for info in zf.infolist():
        name = info.orig_filename  # ZipInfo.filename is cut at a NUL
        if info.flag_bits & 0x1:
            raise BadRequest(f"archive member '{_show(name)}' is encrypted")
        mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
        fmt = stat.S_IFMT(mode)
        if name.endswith("/") or fmt == stat.S_IFDIR:
            collector.add(name, _DIR)
        elif fmt == stat.S_IFLNK:
            if collector.claim(name, "symlink") is None:
                continue
            with zf.open(info) as f:
                raw = f.read(_MAX_LINK + 1)
            if len(raw) > _MAX_LINK:
                raise BadRequest(f"archive member '{_show(name)}' is a symlink with a target over {_MAX_LINK} bytes")
            path = _clean(name)
            collector.entries[path] = _Entry("symlink", origin=name, target=raw.decode("utf-8"))
        elif fmt in (0, stat.S_IFREG):
            collector.add(
                name,
                _Entry(
                    "file",
                    origin=name,
                    executable=bool(mode & 0o111),
                    size=info.file_size,
                    opener=_zip_opener(zf, info),
                ),
            )
        else:
            raise BadRequest(f"archive member '{_show(name)}' is {_describe(fmt)}")


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], _Reader]:
    def opener() -> _Reader:
        return zf.open(info)

    return opener


def _read_tar(tar: tarfile.TarFile, collector: _Collector, spool: IO[bytes] | None) -> None:
    """Collect ``tar``'s members; with a ``spool`` the tar is a stream, read once, and content goes there."""
    for info in tar:
        name = info.name
        if info.size < 0:
            raise BadRequest(f"archive member '{_show(name)}' has a negative size")
        if info.isdir():
            collector.add(name, _DIR)
        elif info.issym():
            collector.add(name, _Entry("symlink", origin=name, target=info.linkname))
        elif info.islnk():
            collector.add(name, _hardlink(collector, name, info.linkname))
        elif info.isreg():
            if info.sparse is not None:
                raise _sparse(name)
            path = collector.claim(name, "file", info.size)
            if path is None:
                continue
            if spool is None:
                opener = _tar_opener(tar, info)
            else:
                offset = spool.seek(0, os.SEEK_END)
                reader = tar.extractfile(info)
                if reader is None:  # pragma: no cover - isreg() members always have content
                    raise BadRequest(f"archive member '{_show(name)}' has no content")
                with reader:
                    _copy(reader, spool.write, info.size, name)
                opener = _spool_opener(spool, offset, info.size)
            collector.entries[path] = _Entry(
                "file", origin=name, executable=bool(info.mode & 0o111), size=info.size, opener=opener
            )
        elif info.ischr() or info.isblk():
            raise BadRequest(f"archive member '{_show(name)}' is a device")
        elif info.isfifo():
            raise BadRequest(f"archive member '{_show(name)}' is a fifo")
        else:
            raise BadRequest(f"archive member '{_show(name)}' has an unsupported type ({info.type!r})")


def _hardlink(collector: _Collector, name: str, linkname: str) -> _Entry:
    """A copy of the earlier file member a hard link names."""
    refused = BadRequest(
        f"archive member '{_show(name)}' is a hard link to '{_show(linkname)}', which is not a file in the package"
    )
    try:
        target = collector.entries.get(_clean(linkname))
    except BadRequest:
        raise refused from None
    if target is None or target.kind != "file":
        raise refused
    return _Entry("file", origin=name, executable=target.executable, size=target.size, opener=target.opener)


def _tar_opener(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], _Reader]:
    def opener() -> _Reader:
        reader = tar.extractfile(info)
        if reader is None:  # pragma: no cover - isreg() members always have content
            raise BadRequest(f"archive member '{_show(info.name)}' has no content")
        return reader

    return opener


class _SpoolRange:
    """A reader over ``size`` bytes of the spool file from ``offset``."""

    def __init__(self, spool: IO[bytes], offset: int, size: int) -> None:
        self._spool = spool
        self._offset = offset
        self._size = size
        self._pos = 0

    def read(self, size: int = -1, /) -> bytes:
        left = self._size - self._pos
        n = left if size < 0 else min(size, left)
        if n <= 0:
            return b""
        self._spool.seek(self._offset + self._pos)
        data = self._spool.read(n)
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass


def _spool_opener(spool: IO[bytes], offset: int, size: int) -> Callable[[], _Reader]:
    def opener() -> _Reader:
        return _SpoolRange(spool, offset, size)

    return opener


def _sparse(name: str) -> BadRequest:
    return BadRequest(f"archive member '{_show(name)}' is a sparse file, which is not supported")


class _CheckedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses, while tarfile parses the headers, what would make it read without bound.

    A pax or GNU long-name header is read into memory whole, and so would be a
    GNU sparse map; so those are bounded or refused before tarfile reads them.
    """

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.size < 0:
            raise BadRequest(f"archive member '{_show(info.name)}' has a negative size")
        if info.type in _METADATA_TYPES and info.size > _MAX_METADATA:
            raise BadRequest(f"the archive has an extended header over {_MAX_METADATA} bytes")
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise _sparse(info.name)
        return info

    # Older tarfiles (Python 3.11.2, Debian's) parse pax and GNU long-name headers
    # without going through frombuf for the size check above: check here too.
    def _proc_pax(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > _MAX_METADATA:
            raise BadRequest(f"the archive has an extended header over {_MAX_METADATA} bytes")
        return super()._proc_pax(tarfile)  # type: ignore[misc,no-any-return]

    def _proc_gnulong(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > _MAX_METADATA:
            raise BadRequest(f"the archive has an extended header over {_MAX_METADATA} bytes")
        return super()._proc_gnulong(tarfile)  # type: ignore[misc,no-any-return]

    # tarfile calls these for a member a pax header marks as sparse.
    def _proc_gnusparse_00(self, member: tarfile.TarInfo, *args: object) -> None:
        raise _sparse(member.name)

    def _proc_gnusparse_01(self, member: tarfile.TarInfo, *args: object) -> None:
        raise _sparse(member.name)

    def _proc_gnusparse_10(self, member: tarfile.TarInfo, *args: object) -> None:
        raise _sparse(member.name)


def _describe(fmt: int) -> str:
    return {
        stat.S_IFCHR: "a device",
        stat.S_IFBLK: "a device",
        stat.S_IFIFO: "a fifo",
        stat.S_IFSOCK: "a socket",
    }.get(fmt, "of an unsupported type")


# -- reading a directory --------------------------------------------------------------------------


def _read_directory(root: Path, budget: _Budget) -> dict[str, _Entry]:
    if not root.is_dir():
        raise BadRequest(f"'{_show(str(root))}' is not a directory")
    collector = _Collector(budget)
    pending: list[tuple[str, str]] = [("", os.fspath(root))]
    while pending:
        rel, where = pending.pop()
        with os.scandir(where) as it:
            for item in it:
                name = f"{rel}/{item.name}" if rel else item.name
                mode = item.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    collector.add(name, _DIR)
                    pending.append((name, item.path))
                elif stat.S_ISLNK(mode):
                    collector.add(name, _Entry("symlink", origin=name, target=os.readlink(item.path)))
                elif stat.S_ISREG(mode):
                    size = item.stat(follow_symlinks=False).st_size
                    entry = _Entry(
                        "file", origin=name, executable=bool(mode & 0o111), size=size, opener=_file_opener(item.path)
                    )
                    collector.add(name, entry)
                else:
                    raise BadRequest(f"archive member '{_show(name)}' is {_describe(stat.S_IFMT(mode))}")
    return collector.entries


def _file_opener(path: str) -> Callable[[], _Reader]:
    def opener() -> _Reader:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        return os.fdopen(fd, "rb")

    return opener


# -- the tree -------------------------------------------------------------------------------------


def _strip_top(entries: dict[str, _Entry]) -> dict[str, _Entry]:
    """``entries`` without their single top-level directory, when every member is under one.

    Only a directory the archive names itself (``zip -r app.zip app``, ``tar czf
    app.tgz app/``): an archive of a folder's contents whose only content is a
    package folder (``greet/...``, no ``greet/`` entry) keeps it.
    """
    tops = {path.partition("/")[0] for path in entries}
    if len(tops) != 1:
        return entries
    (top,) = tops
    head = entries.get(top)
    if head is None or head.kind != "dir":
        return entries
    cut = len(top) + 1
    return {path[cut:]: entry for path, entry in entries.items() if path != top}


def _make_tree(entries: Mapping[str, _Entry], max_bytes: int, max_files: int) -> dict[str, _Entry]:
    """``entries`` with a member for every parent directory, checked: parents, limits, symlinks."""
    tree = dict(entries)
    for path in sorted(entries):
        parent = path.rpartition("/")[0]
        while parent:
            found = tree.get(parent)
            if found is None:
                tree[parent] = _DIR
            elif found.kind != "dir":
                raise BadRequest(
                    f"archive member '{_show(path)}' is inside '{_show(parent)}', which is not a directory"
                )
            else:
                break  # checked with that directory's own path
            parent = parent.rpartition("/")[0]
    if len(tree) > max_files:
        raise _too_many_files(max_files)
    if sum(entry.size for entry in tree.values() if entry.kind == "file") > max_bytes:
        raise _too_many_bytes(max_bytes)
    for path in sorted(tree):
        entry = tree[path]
        if entry.kind == "symlink":
            _check_symlink(tree, path, entry.target)
    return tree


class _LinkError(Exception):
    pass


def _check_symlink(tree: Mapping[str, _Entry], path: str, target: str) -> None:
    what = f"archive member '{_show(path)}' is a symlink to '{_show(target)}'"
    if not target:
        raise BadRequest(f"archive member '{_show(path)}' is a symlink with an empty target")
    if "\x00" in target or "\\" in target:
        raise BadRequest(f"{what}, which has a NUL byte or a backslash in it")
    try:
        encoded = target.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what}, which is not valid UTF-8") from None
    if len(encoded) > _MAX_LINK:
        raise BadRequest(f"archive member '{_show(path)}' is a symlink with a target over {_MAX_LINK} bytes")
    if target.startswith("/"):
        raise BadRequest(f"{what}, which is an absolute path")
    try:
        _resolve(tree, path.split("/")[:-1], target.split("/"))
    except _LinkError as e:
        raise BadRequest(f"{what}, which {e}") from None


def _resolve(tree: Mapping[str, _Entry], where: list[str], steps: list[str]) -> str:
    """Follow ``steps`` from the directory ``where`` as the kernel would, symlinks in the tree included.

    Returns the path reached ("" = the root); raises _LinkError when a step
    leaves the tree or too many symlinks are followed. A component missing
    from the tree is taken as a directory: it cannot lead outside.
    """
    parts = list(where)
    todo = list(reversed(steps))
    hops = 0
    while todo:
        step = todo.pop()
        if step in ("", "."):
            continue
        if step == "..":
            if not parts:
                raise _LinkError("leaves the package")
            parts.pop()
            continue
        parts.append(step)
        entry = tree.get("/".join(parts))
        if entry is not None and entry.kind == "symlink":
            hops += 1
            if hops > _MAX_HOPS:
                raise _LinkError("loops (too many levels of symlinks)")
            if entry.target.startswith("/"):
                raise _LinkError("leaves the package")
            parts.pop()
            todo.extend(reversed(entry.target.split("/")))
    return "/".join(parts)


def _file_at(tree: Mapping[str, _Entry], path: str) -> _Entry | None:
    """The file at ``path``, symlinks followed; None when there is none."""
    if not path:
        return None
    try:
        resolved = _resolve(tree, [], path.split("/"))
    except _LinkError:
        return None
    entry = tree.get(resolved)
    return entry if entry is not None and entry.kind == "file" else None


def _place(tree: Mapping[str, _Entry], prefix: str, extra_dirs: tuple[str, ...]) -> dict[str, _Entry]:
    """``tree`` moved under ``prefix`` (with its directories), plus the directories ``extra_dirs``."""
    placed: dict[str, _Entry] = {}
    base = _clean(prefix, "prefix")
    _add_dirs(placed, base)
    for path, entry in tree.items():
        placed[f"{base}/{path}" if base else path] = entry
    for extra in extra_dirs:
        _add_dirs(placed, _clean(extra, "directory"))
    return placed


def _add_dirs(placed: dict[str, _Entry], path: str) -> None:
    """Make ``path`` and its parents directory members of ``placed``."""
    parts = path.split("/") if path else []
    for i in range(1, len(parts) + 1):
        here = "/".join(parts[:i])
        found = placed.setdefault(here, _DIR)
        if found.kind != "dir":
            raise BadRequest(f"archive member '{_show(here)}' is not a directory")


# -- content --------------------------------------------------------------------------------------


def _read_chunk(reader: _Reader, size: int, name: str) -> bytes:
    try:
        return reader.read(size)
    except _PARSE_ERRORS as e:
        raise BadRequest(f"archive member '{_show(name)}' is corrupt: {e}") from e


def _copy(reader: _Reader, write: Callable[[bytes], object], size: int, name: str) -> None:
    """Copy exactly the ``size`` bytes ``name``'s header declares, in chunks; refuse more or fewer."""
    left = size
    while left > 0:
        chunk = _read_chunk(reader, min(_CHUNK, left), name)
        if not chunk:
            raise BadRequest(f"archive member '{_show(name)}' is shorter than the {size} bytes it declares")
        write(chunk)
        left -= len(chunk)
    if _read_chunk(reader, 1, name):
        raise BadRequest(f"archive member '{_show(name)}' is longer than the {size} bytes it declares")


def _sha256(entry: _Entry) -> str:
    digest = hashlib.sha256()
    assert entry.opener is not None
    with contextlib.closing(entry.opener()) as reader:
        _copy(reader, digest.update, entry.size, entry.origin)
    return digest.hexdigest()


# -- writing --------------------------------------------------------------------------------------


class _TarWriter:
    """Writes normalized tar members to ``out``, hashing and counting what it writes."""

    def __init__(self, out: IO[bytes], owner: int, max_bytes: int) -> None:
        self._out = out
        self._owner = owner
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0
        self.members = 0
        self.unpacked = 0

    def _put(self, data: bytes) -> None:
        self._out.write(data)
        self._digest.update(data)
        self.size += len(data)

    def add(self, name: str, entry: _Entry) -> None:
        info = tarfile.TarInfo(name)
        info.mtime = 0
        info.uid = info.gid = self._owner
        info.uname = info.gname = ""
        if entry.kind == "dir":
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
        elif entry.kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.mode = 0o777
            info.linkname = entry.target
        else:
            info.type = tarfile.REGTYPE
            info.mode = 0o755 if entry.executable else 0o644
            info.size = entry.size
        self._put(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"))
        self.members += 1
        if entry.kind != "file":
            return
        self.unpacked += entry.size
        if self.unpacked > self._max_bytes:
            raise _too_many_bytes(self._max_bytes, entry.origin)
        assert entry.opener is not None
        with contextlib.closing(entry.opener()) as reader:
            _copy(reader, self._put, entry.size, entry.origin or name)
        if entry.size % tarfile.BLOCKSIZE:
            self._put(tarfile.NUL * (tarfile.BLOCKSIZE - entry.size % tarfile.BLOCKSIZE))

    def finish(self) -> str:
        """End the archive (two zero blocks, then zeros to a whole record, as tarfile does); its sha256."""
        self._put(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        if self.size % tarfile.RECORDSIZE:
            self._put(tarfile.NUL * (tarfile.RECORDSIZE - self.size % tarfile.RECORDSIZE))
        return self._digest.hexdigest()


def _write(dest: Path, members: Mapping[str, _Entry], owner: int, max_bytes: int) -> ArchiveInfo:
    """Write ``members`` sorted by path to a temporary file beside ``dest``, then rename it to ``dest``."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            writer = _TarWriter(out, owner, max_bytes)
            for name in sorted(members):
                writer.add(name, members[name])
            digest = writer.finish()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(dest.parent)
    return ArchiveInfo(sha256=digest, size=writer.size, files=writer.members, unpacked_bytes=writer.unpacked)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
