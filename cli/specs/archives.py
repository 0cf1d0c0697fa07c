"""A package's archive as a spec names it: an ArchiveUploadSpec's files, a literal, or a URL.

An ArchiveUploadSpec is read the way Fission's ``spec apply`` reads it: each
``include`` glob (Unix shell globs, no ``**``, hidden files matched too)
from the spec's ``rootdir`` (default: the spec directory's parent); a matched
file goes to the archive's root under its base name, a matched directory
under its own name with everything in it. One matched file is the archive as
it is: a zip or tar is uploaded as it is, any other file is one source file
(a function of one file: faasd's ``code``). ``exclude`` globs leave out the
paths they match (from the root, or by base name).

:meth:`LocalArchive.digest` computes the sha256 faasd will give the archive
once it has normalized it (faasd/builds/archive.py: a sorted pax tar, mtime
0, modes by the x bit, a lone top-level directory stripped, a deployment
under ``deploy/``), so that an apply sends an archive only when its content
changed. Where that cannot be worked out (an archive this module does not
read), it is None and the archive is sent: faasd then sees the same content
and builds nothing again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import glob
import hashlib
import os
import posixpath
import re
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from faas_cli.archives import MAX_PACKAGE_BYTES
from faas_cli.errors import CliError
from faas_cli.specs.model import ArchiveSpec

Kind = Literal["file", "dir", "symlink"]
CHUNK = 1 << 20
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
DEPLOY_PREFIX = "deploy"
URL_TIMEOUT = 120.0


@dataclass(frozen=True)
class Member:
    """One entry of an archive: its path in the archive and where its content is."""

    path: str
    kind: Kind
    source: Path | None = None  # a file's content on disk
    executable: bool = False
    size: int = 0
    target: str = ""  # a symlink's


@dataclass
class LocalArchive:
    """An archive ready to upload: ``members`` to zip, or ``file`` as it is.

    ``plain``: ``file`` is one file that is not an archive (a single source file).
    """

    name: str
    members: list[Member] = field(default_factory=list)
    file: Path | None = None
    plain: bool = False
    _digests: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def filename(self) -> str:
        """The one file's name (a single-file function's ``filename``)."""
        return self.file.name if self.file is not None else ""

    def code(self) -> str:
        """A plain file's text: a single-file function's code."""
        assert self.file is not None and self.plain
        try:
            return self.file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CliError(f"archive '{self.name}': '{self.file}' is not UTF-8 text (a function's source)") from None
        except OSError as error:
            raise CliError(f"archive '{self.name}': cannot read '{self.file}' ({_reason(error)})") from None

    def tree(self) -> list[Member] | None:
        """The members faasd will read: those to zip, a plain file at the root, or an archive file's (None: unread)."""
        if self.file is None:
            return self.members
        if self.plain:
            size = _size(self.file)
            return [Member(self.file.name, "file", self.file, _executable(self.file), size)]
        return read_archive(self.file)

    def digest(self, prefix: str = "") -> str | None:
        """The sha256 faasd gives this archive once normalized (``prefix`` ``deploy`` for a deployment)."""
        if prefix not in self._digests:
            members = self.tree()
            self._digests[prefix] = None if members is None else tree_digest(members, prefix)
        return self._digests[prefix]

    @contextlib.contextmanager
    def upload(self) -> Iterator[Path]:
        """A file to upload: the archive file itself, or the members (or the plain file) zipped."""
        if self.file is not None and not self.plain:
            if _size(self.file) > MAX_PACKAGE_BYTES:
                raise CliError(
                    f"archive '{self.name}' is {_size(self.file):,} bytes; the limit is {MAX_PACKAGE_BYTES:,}"
                )
            yield self.file
            return
        members = self.tree() or []
        total = sum(m.size for m in members)
        if total > MAX_PACKAGE_BYTES:
            raise CliError(f"archive '{self.name}' holds {total:,} bytes; the limit is {MAX_PACKAGE_BYTES:,}")
        fd, name = tempfile.mkstemp(prefix=f"faas-{self.name[:40]}-", suffix=".zip")
        os.close(fd)
        path = Path(name)
        try:
            write_zip(members, path)
            yield path
        finally:
            path.unlink(missing_ok=True)


# -- globs ------------------------------------------------------------------------------------------


def go_glob_regex(pattern: str) -> re.Pattern[str]:
    """A shell glob as Go's path.Match reads it: ``*`` and ``?`` never match ``/``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(char))
            else:
                inside = pattern[i + 1 : end]
                negate = inside.startswith(("^", "!"))
                body = inside[1:] if negate else inside
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _excluded(relative: str, excludes: list[re.Pattern[str]]) -> bool:
    base = relative.rsplit("/", 1)[-1]
    return any(p.match(relative) or p.match(base) for p in excludes)


def resolve_globs(spec: ArchiveSpec, root: Path) -> LocalArchive:
    """The archive an ArchiveUploadSpec names, its globs read from ``spec.rootdir`` or ``root``."""
    base = Path(spec.rootdir).expanduser() if spec.rootdir else root
    if not base.is_absolute():
        base = root / base
    if not spec.include:
        raise CliError(f"{spec.where}: archive '{spec.name}' includes nothing (give include: [globs])")
    excludes = [go_glob_regex(p.strip("/")) for p in spec.exclude]
    matched: list[str] = []
    for pattern in spec.include:
        relative = pattern.lstrip("/")  # Go's filepath.Join(root, glob): always under the root
        found = sorted(glob.glob(relative, root_dir=base, include_hidden=True))
        found = [f for f in found if not _excluded(Path(f).as_posix(), excludes)]
        if not found:
            raise CliError(f"{spec.where}: archive '{spec.name}': '{pattern}' matches no file under '{base}'")
        matched.extend(f for f in found if f not in matched)
    if len(matched) == 1 and (base / matched[0]).is_file() and not (base / matched[0]).is_symlink():
        file = base / matched[0]
        return LocalArchive(spec.name, file=file, plain=not is_archive_file(file))
    members: dict[str, Member] = {}
    for relative in matched:
        path = base / relative
        for member in _members_of(path, path.name, Path(relative).as_posix(), excludes):
            seen = members.get(member.path)
            if seen is not None:
                raise CliError(
                    f"{spec.where}: archive '{spec.name}' has '{member.path}' twice (from '{seen.source}' and "
                    f"'{member.source}'): a matched file goes to the archive's root under its base name"
                )
            members[member.path] = member
    if not members:
        raise CliError(f"{spec.where}: archive '{spec.name}' is empty")
    return LocalArchive(spec.name, members=[members[p] for p in sorted(members)])


def _members_of(path: Path, name: str, relative: str, excludes: list[re.Pattern[str]]) -> Iterator[Member]:
    """``path`` as archive members under ``name`` (a directory: everything in it; empty ones kept)."""
    if path.is_symlink():
        yield Member(name, "symlink", path, target=os.readlink(path))
        return
    if path.is_file():
        yield Member(name, "file", path, _executable(path), _size(path))
        return
    if not path.is_dir():
        raise CliError(f"'{path}' is neither a file nor a directory")
    children = sorted(os.listdir(path))
    kept = [c for c in children if not _excluded(f"{relative}/{c}", excludes)]
    if not kept:
        yield Member(name, "dir")
        return
    for child in kept:
        yield from _members_of(path / child, f"{name}/{child}", f"{relative}/{child}", excludes)


def is_archive_file(path: Path) -> bool:
    """Whether ``path`` is a zip or a tar (gzip'd or not), by its content."""
    try:
        if zipfile.is_zipfile(path):
            return True
        with path.open("rb") as data:
            head = data.read(265)
    except OSError as error:
        raise CliError(f"cannot read '{path}' ({_reason(error)})") from None
    if head[:2] == b"\x1f\x8b":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


# -- literal and URL archives -------------------------------------------------------------------------


def literal_archive(name: str, value: object, folder: Path, filename: str = "") -> LocalArchive:
    """A Package's ``literal`` (base64, as Kubernetes writes bytes) written to ``folder``."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            data = value.encode()  # written by hand: the text itself
    else:
        raise CliError(f"{name}: literal must be base64 text")
    path = folder / (filename or name)
    path.write_bytes(data)
    return LocalArchive(name, file=path, plain=not is_archive_file(path))


def url_archive(name: str, url: str, checksum: str, folder: Path) -> LocalArchive:
    """A Package's archive at an http(s) URL, downloaded here (faasd takes uploads, not URLs)."""
    target = folder / (posixpath.basename(url.split("?", 1)[0]) or name)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response, target.open("wb") as out:
            total = 0
            while chunk := response.read(CHUNK):
                total += len(chunk)
                if total > MAX_PACKAGE_BYTES:
                    raise CliError(f"{name}: {url} is over {MAX_PACKAGE_BYTES:,} bytes")
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise CliError(f"{name}: cannot download {url} ({reason})") from None
    if checksum and digest.hexdigest() != checksum.lower():
        raise CliError(f"{name}: {url} has sha256 {digest.hexdigest()}, not the checksum {checksum} the spec gives")
    return LocalArchive(name, file=target, plain=not is_archive_file(target))


# -- reading an archive file (for its digest) ------------------------------------------------------


def _clean(name: str) -> str | None:
    """An archive member's path as faasd reads it (``./a/`` is ``a``); None when it would leave the archive."""
    while name.startswith("./"):
        name = name[2:]
    path = posixpath.normpath(name).rstrip("/") if name else ""
    if not path or path == "." or path.startswith(("/", "../")) or path == ".." or "\\" in path:
        return None
    return path


def read_archive(path: Path) -> list[Member] | None:
    """The members of a zip or tar file as faasd reads them; None for anything unusual (then not worked out)."""
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        with tarfile.open(path) as tar:
            return _read_tar(tar, path)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, UnicodeError, ValueError):
        return None


def _read_zip(path: Path) -> list[Member] | None:
    members: list[Member] = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = _clean(info.filename)
            if name is None:
                return None
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            kind = stat.S_IFMT(mode)
            if info.filename.endswith("/") or kind == stat.S_IFDIR:
                members.append(Member(name, "dir"))
            elif kind == stat.S_IFLNK:
                members.append(Member(name, "symlink", target=archive.read(info).decode("utf-8")))
            elif kind in (0, stat.S_IFREG):
                members.append(Member(name, "file", path, bool(mode & 0o111), info.file_size, target=info.filename))
            else:
                return None
    return members


def _read_tar(tar: tarfile.TarFile, path: Path) -> list[Member] | None:
    members: list[Member] = []
    for info in tar.getmembers():
        name = _clean(info.name)
        if name is None or info.islnk():
            return None
        if info.isdir():
            members.append(Member(name, "dir"))
        elif info.issym():
            members.append(Member(name, "symlink", target=info.linkname))
        elif info.isreg():
            members.append(Member(name, "file", path, bool(info.mode & 0o111), info.size, target=info.name))
        else:
            return None
    return members


@contextlib.contextmanager
def _open_member(member: Member) -> Iterator[IO[bytes]]:
    """A file member's content: a file on disk, or (``target`` names it) a member of the archive ``source``."""
    assert member.source is not None
    if not member.target:
        with member.source.open("rb") as data:
            yield data
    elif zipfile.is_zipfile(member.source):
        with zipfile.ZipFile(member.source) as archive, archive.open(member.target) as inner:
            yield inner
    else:
        with tarfile.open(member.source) as tar:
            found = tar.extractfile(member.target)
            if found is None:
                raise ValueError(f"no file {member.target}")
            with found:
                yield found


# -- faasd's normalized tar, for its digest ------------------------------------------------------------


def _strip_top(members: dict[str, Member]) -> dict[str, Member]:
    """Without the lone top-level directory, when the archive names it and holds nothing beside it."""
    tops = {path.partition("/")[0] for path in members}
    if len(tops) != 1:
        return members
    (top,) = tops
    head = members.get(top)
    if head is None or head.kind != "dir":
        return members
    cut = len(top) + 1
    return {path[cut:]: m for path, m in members.items() if path != top}


def _with_parents(members: dict[str, Member]) -> dict[str, Member]:
    tree = dict(members)
    for path in list(members):
        parent = path.rpartition("/")[0]
        while parent and parent not in tree:
            tree[parent] = Member(parent, "dir")
            parent = parent.rpartition("/")[0]
    return tree


def tree_digest(members: list[Member], prefix: str = "") -> str | None:
    """The sha256 of the normalized tar faasd makes of ``members`` (under ``prefix/`` when given)."""
    tree = _with_parents(_strip_top({m.path: m for m in members}))
    if prefix:
        tree = {prefix: Member(prefix, "dir"), **{f"{prefix}/{p}": m for p, m in tree.items()}}
    digest = hashlib.sha256()
    size = 0
    try:
        for name in sorted(tree):
            member = tree[name]
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if member.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif member.kind == "symlink":
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, member.target
            else:
                info.type, info.mode, info.size = tarfile.REGTYPE, 0o755 if member.executable else 0o644, member.size
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
            digest.update(header)
            size += len(header)
            if member.kind != "file":
                continue
            copied = 0
            with _open_member(member) as data:
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
                    copied += len(chunk)
            if copied != member.size:
                return None  # changed while read: no digest, the archive is sent
            size += copied
            if copied % tarfile.BLOCKSIZE:
                pad = tarfile.BLOCKSIZE - copied % tarfile.BLOCKSIZE
                digest.update(tarfile.NUL * pad)
                size += pad
    except (OSError, KeyError, ValueError, UnicodeError, tarfile.TarError, zipfile.BadZipFile):
        return None
    digest.update(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
    size += 2 * tarfile.BLOCKSIZE
    if size % tarfile.RECORDSIZE:
        digest.update(tarfile.NUL * (tarfile.RECORDSIZE - size % tarfile.RECORDSIZE))
    return digest.hexdigest()


# -- writing ---------------------------------------------------------------------------------------------


def write_zip(members: list[Member], path: Path) -> None:
    """``members`` as a zip at ``path``: Unix modes kept, symlinks as links, empty directories as entries."""
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for member in members:
                if member.kind == "dir":
                    info = zipfile.ZipInfo(member.path + "/", ZIP_EPOCH)
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                    archive.writestr(info, b"")
                elif member.kind == "symlink":
                    info = zipfile.ZipInfo(member.path, ZIP_EPOCH)
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    archive.writestr(info, member.target.encode())
                else:
                    info = zipfile.ZipInfo(member.path, ZIP_EPOCH)
                    info.external_attr = (stat.S_IFREG | (0o755 if member.executable else 0o644)) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with (
                        archive.open(info, "w", force_zip64=member.size > (1 << 31)) as out,
                        _open_member(member) as data,
                    ):
                        while chunk := data.read(CHUNK):
                            out.write(chunk)
    except OSError as error:
        raise CliError(f"cannot write the archive '{path}' ({_reason(error)})") from None


def extract_tar(data: IO[bytes], dest: Path, strip: str = "") -> int:
    """Unpack a (normalized) tar stream into ``dest``; members under ``strip/`` only, without it. Returns files."""
    count = 0
    with tarfile.open(fileobj=data, mode="r|*") as tar:
        for info in tar:
            name = _clean(info.name)
            if name is None:
                raise CliError(f"archive member '{info.name}' leaves the archive")
            if strip:
                if name == strip:
                    continue
                if not name.startswith(strip + "/"):
                    continue
                name = name[len(strip) + 1 :]
            target = dest / name
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif info.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(info.linkname, target)
            elif info.isreg():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(info)
                assert source is not None
                with target.open("wb") as out:
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
                target.chmod(0o755 if info.mode & 0o111 else 0o644)
                count += 1
    return count


def _executable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o111)
    except OSError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise CliError(f"cannot read '{path}' ({_reason(error)})") from None


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()
