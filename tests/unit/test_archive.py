"""faasd/builds/archive.py: uploads checked and stored as one normalized tar."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from faasd.builds import archive
from faasd.builds.archive import (
    ArchiveInfo,
    file_hashes,
    members_matching,
    normalize,
    normalize_directory,
    overlay,
    retag,
)
from faasd.core.errors import BadRequest, PayloadTooLarge

# (path, kind, content or symlink target, mode): one member of a test tree.
Member = tuple[str, str, bytes | str, int]

TREE: list[Member] = [
    ("handler.py", "file", b"def main():\n    return 'hi'\n", 0o644),
    ("bin", "dir", b"", 0o700),
    ("bin/run", "file", b"#!/bin/sh\nexec python handler.py\n", 0o700),
    ("lib", "dir", b"", 0o755),
    ("lib/util.py", "file", b"X = 1\n" * 1000, 0o600),
    ("lib/tool", "file", b"#!/bin/sh\n", 0o744),
    ("lib/data", "dir", b"", 0o755),
    ("lib/data/empty.txt", "file", b"", 0o664),
    ("lib/current", "symlink", "util.py", 0o777),
    ("lib/data/up", "symlink", "../../handler.py", 0o777),
    ("caf\u00e9.txt", "file", "\u00e9t\u00e9".encode(), 0o644),
]


def make_zip(path: Path, members: Iterable[Member], *, top: str = "", dirs: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if top and dirs:
            zf.writestr(zipfile.ZipInfo(top + "/"), b"")
        for name, kind, data, mode in members:
            full = f"{top}/{name}" if top else name
            if kind == "dir":
                if not dirs:
                    continue
                info = zipfile.ZipInfo(full + "/")
                info.external_attr = (stat.S_IFDIR | mode) << 16 | 0x10
            else:
                info = zipfile.ZipInfo(full, date_time=(2001, 2, 3, 4, 5, 6))
                info.external_attr = ((stat.S_IFLNK if kind == "symlink" else stat.S_IFREG) | mode) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def make_tar(path: Path, members: Iterable[Member], *, top: str = "", gz: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        if top:
            tf.addfile(_tarinfo(top, "dir", b"", 0o775))
        for name, kind, data, mode in members:
            info = _tarinfo(f"{top}/{name}" if top else name, kind, data, mode)
            tf.addfile(info, io.BytesIO(data) if isinstance(data, bytes) and kind == "file" else None)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def _tarinfo(name: str, kind: str, data: bytes | str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 1_700_000_000 + len(name)
    info.uid, info.gid, info.uname, info.gname = 501, 20, "alice", "staff"
    if kind == "dir":
        info.type = tarfile.DIRTYPE
    elif kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = str(data)
    elif kind == "file":
        assert isinstance(data, bytes)
        info.size = len(data)
    return info


def make_dir(root: Path, members: Iterable[Member]) -> Path:
    root.mkdir()
    for name, kind, data, mode in members:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            path.mkdir(exist_ok=True)
            path.chmod(mode)
        elif kind == "symlink":
            path.symlink_to(str(data))
        else:
            assert isinstance(data, bytes)
            path.write_bytes(data)
            path.chmod(mode)
    return root


def read_members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path, "r:") as tf:
        return tf.getmembers()


def names(path: Path) -> list[str]:
    return [m.name for m in read_members(path)]


def content(path: Path, name: str) -> bytes:
    with tarfile.open(path, "r:") as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The destination, alone in its own directory (so that leftovers show)."""
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "package.tar"


def assert_nothing_written(dest: Path) -> None:
    assert list(dest.parent.iterdir()) == []


EXPECTED_NAMES = [
    "bin",
    "bin/run",
    "caf\u00e9.txt",
    "handler.py",
    "lib",
    "lib/current",
    "lib/data",
    "lib/data/empty.txt",
    "lib/data/up",
    "lib/tool",
    "lib/util.py",
]


# -- determinism and normalization ----------------------------------------------------------------


def test_zip_tar_targz_and_directory_give_byte_identical_tars(tmp_path: Path) -> None:
    sources = [
        make_zip(tmp_path / "a.zip", TREE),
        make_zip(tmp_path / "b.zip", reversed(TREE), top="pkg"),
        make_tar(tmp_path / "c.tar", TREE),
        make_tar(tmp_path / "d.tar", reversed(TREE), top="."),
        make_tar(tmp_path / "e.tar.gz", TREE, top="pkg", gz=True),
    ]
    outputs = []
    for i, src in enumerate(sources):
        dest = tmp_path / f"out{i}.tar"
        info = normalize(src, dest)
        outputs.append(dest.read_bytes())
        assert info.sha256 == hashlib.sha256(outputs[-1]).hexdigest()
    dest = tmp_path / "fromdir.tar"
    normalize_directory(make_dir(tmp_path / "tree", TREE), dest)
    outputs.append(dest.read_bytes())
    assert all(o == outputs[0] for o in outputs)
    assert names(tmp_path / "out0.tar") == EXPECTED_NAMES


def test_a_folder_without_its_own_entry_is_not_stripped(tmp_path: Path, out: Path) -> None:
    """A zip of a folder's contents whose only content is a package folder keeps that folder."""
    normalize(make_zip(tmp_path / "b.zip", TREE, top="greet", dirs=False), out)
    assert names(out) == ["greet", *(f"greet/{name}" for name in EXPECTED_NAMES)]


def test_archive_info_describes_the_written_tar(tmp_path: Path, out: Path) -> None:
    info = normalize(make_zip(tmp_path / "a.zip", TREE), out)
    data = out.read_bytes()
    file_bytes = sum(len(d) for _, kind, d, _ in TREE if kind == "file")
    assert info == ArchiveInfo(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), files=len(EXPECTED_NAMES), unpacked_bytes=file_bytes
    )
    assert len(data) % tarfile.RECORDSIZE == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["package.tar"]


def test_owner_mode_and_mtime_are_normalized(tmp_path: Path, out: Path) -> None:
    normalize(make_tar(tmp_path / "a.tar", TREE), out, owner=1000)
    by_name = {m.name: m for m in read_members(out)}
    for m in by_name.values():
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (1000, 1000, "", "", 0)
    assert by_name["bin"].isdir() and by_name["bin"].mode == 0o755
    assert by_name["bin/run"].mode == 0o755  # was 0700
    assert by_name["lib/tool"].mode == 0o755  # was 0744
    assert by_name["lib/util.py"].mode == 0o644  # was 0600
    assert by_name["lib/data/empty.txt"].mode == 0o644  # was 0664
    assert by_name["lib/current"].issym() and by_name["lib/current"].linkname == "util.py"
    assert content(out, "lib/util.py") == b"X = 1\n" * 1000
    normalize(make_tar(tmp_path / "a.tar", TREE), out)
    assert {(m.uid, m.gid) for m in read_members(out)} == {(0, 0)}


def test_normalizing_a_normalized_tar_changes_nothing(tmp_path: Path, out: Path) -> None:
    normalize(make_zip(tmp_path / "a.zip", TREE), out)
    again = tmp_path / "again.tar"
    normalize(out, again)
    assert again.read_bytes() == out.read_bytes()


def test_output_extracts_safely(tmp_path: Path, out: Path) -> None:
    normalize(make_zip(tmp_path / "a.zip", TREE), out)
    with tarfile.open(out) as tf:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the strict filter must accept it
            tf.extractall(tmp_path / "x", filter="data")
        else:  # Debian's 3.11.2: every member must stay inside by itself
            root = (tmp_path / "x").resolve()
            for member in tf.getmembers():
                assert (root / member.name).resolve().is_relative_to(root), member.name
                assert not member.islnk() and not member.isdev(), member.name
            tf.extractall(tmp_path / "x")
    assert (tmp_path / "x/lib/current").read_bytes() == b"X = 1\n" * 1000


def test_parent_directories_are_added(tmp_path: Path, out: Path) -> None:
    src = make_zip(tmp_path / "a.zip", [("a/b/c.txt", "file", b"c", 0o644), ("d.txt", "file", b"d", 0o644)], dirs=False)
    normalize(src, out)
    assert names(out) == ["a", "a/b", "a/b/c.txt", "d.txt"]
    assert [m.isdir() for m in read_members(out)] == [True, True, False, False]


@pytest.mark.parametrize("gz", [False, True])
def test_hardlink_inside_becomes_a_copy(tmp_path: Path, out: Path, gz: bool) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(_tarinfo("a.txt", "file", b"shared", 0o755), io.BytesIO(b"shared"))
        link = tarfile.TarInfo("sub/b.txt")
        link.type, link.linkname = tarfile.LNKTYPE, "a.txt"
        tf.addfile(link)
    src = tmp_path / "a.tar"
    src.write_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
    info = normalize(src, out)
    member = {m.name: m for m in read_members(out)}["sub/b.txt"]
    assert member.isreg() and member.mode == 0o755
    assert content(out, "sub/b.txt") == b"shared"
    assert info.unpacked_bytes == 12


@pytest.mark.parametrize("target", ["missing.txt", "../a.txt", "/etc/passwd"])
def test_hardlink_to_anything_but_an_earlier_file_is_refused(tmp_path: Path, out: Path, target: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(_tarinfo("a.txt", "file", b"x", 0o644), io.BytesIO(b"x"))
        link = tarfile.TarInfo("b.txt")
        link.type, link.linkname = tarfile.LNKTYPE, target
        tf.addfile(link)
    src = tmp_path / "a.tar"
    src.write_bytes(buf.getvalue())
    with pytest.raises(BadRequest, match=r"archive member 'b.txt' is a hard link to .*not a file in the package"):
        normalize(src, out)
    assert_nothing_written(out)


# -- the top-level directory ----------------------------------------------------------------------


def test_a_single_top_level_directory_is_stripped(tmp_path: Path, out: Path) -> None:
    normalize(make_zip(tmp_path / "a.zip", TREE, top="myfn"), out)
    assert names(out) == EXPECTED_NAMES


def test_two_top_level_entries_are_kept(tmp_path: Path, out: Path) -> None:
    members: list[Member] = [("one/a.py", "file", b"a", 0o644), ("two/b.py", "file", b"b", 0o644)]
    normalize(make_zip(tmp_path / "a.zip", members), out)
    assert names(out) == ["one", "one/a.py", "two", "two/b.py"]


def test_a_single_top_level_file_is_kept(tmp_path: Path, out: Path) -> None:
    normalize(make_zip(tmp_path / "a.zip", [("main.py", "file", b"pass\n", 0o644)]), out)
    assert names(out) == ["main.py"]


def test_only_one_level_is_stripped(tmp_path: Path, out: Path) -> None:
    normalize(make_tar(tmp_path / "a.tar", [("node_modules/x/index.js", "file", b"", 0o644)], top="deploy"), out)
    assert names(out) == ["node_modules", "node_modules/x", "node_modules/x/index.js"]


def test_symlinks_are_checked_after_stripping(tmp_path: Path, out: Path) -> None:
    # Inside pkg/ this link pointed at pkg/a.txt; once pkg/ is stripped it would leave the package.
    members: list[Member] = [("a.txt", "file", b"a", 0o644), ("link", "symlink", "../pkg/a.txt", 0o777)]
    with pytest.raises(BadRequest, match=r"archive member 'link' is a symlink to '\.\./pkg/a\.txt', which leaves"):
        normalize(make_tar(tmp_path / "a.tar", members, top="pkg"), out)


# -- refused members ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../etc/passwd", "archive member '../etc/passwd' leaves the package"),
        ("a/../../b", "archive member 'a/../../b' leaves the package"),
        ("a/../b", "archive member 'a/../b' leaves the package"),
        ("/etc/passwd", "archive member '/etc/passwd' is an absolute path"),
        ("a\\..\\..\\b", "archive member 'a\\..\\..\\b' has a backslash in its name"),
        ("C:\\Windows\\x", "has a backslash in its name"),
    ],
)
@pytest.mark.parametrize("fmt", ["zip", "tar", "tgz"])
def test_bad_paths_are_refused_and_nothing_is_written(
    tmp_path: Path, out: Path, member: str, why: str, fmt: str
) -> None:
    members: list[Member] = [("ok.txt", "file", b"fine", 0o644), (member, "file", b"evil", 0o644)]
    if fmt == "zip":
        src = make_zip(tmp_path / "a.zip", members)
    else:
        src = make_tar(tmp_path / "a.tar", members, gz=fmt == "tgz")
    with pytest.raises(BadRequest) as caught:
        normalize(src, out)
    assert why in caught.value.message
    assert_nothing_written(out)


def test_nul_in_a_name_is_refused(tmp_path: Path, out: Path) -> None:
    src = make_zip(tmp_path / "a.zip", [("evilXname.txt", "file", b"x", 0o644)])
    src.write_bytes(src.read_bytes().replace(b"evilXname", b"evil\x00name"))
    with pytest.raises(BadRequest, match=r"archive member 'evil\\x00name.txt' has a NUL byte in its name"):
        normalize(src, out)
    assert_nothing_written(out)


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_duplicate_paths_are_refused(tmp_path: Path, out: Path, fmt: str) -> None:
    members: list[Member] = [("a/b.txt", "file", b"1", 0o644), ("a//./b.txt", "file", b"2", 0o644)]
    src = make_zip(tmp_path / "a.zip", members) if fmt == "zip" else make_tar(tmp_path / "a.tar", members)
    with pytest.raises(BadRequest, match=r"archive member 'a//\./b.txt' appears more than once"):
        normalize(src, out)
    assert_nothing_written(out)


@pytest.mark.parametrize(
    ("kind", "why"), [(tarfile.CHRTYPE, "a device"), (tarfile.BLKTYPE, "a device"), (tarfile.FIFOTYPE, "a fifo")]
)
def test_tar_devices_and_fifos_are_refused(tmp_path: Path, out: Path, kind: bytes, why: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(_tarinfo("ok.txt", "file", b"x", 0o644), io.BytesIO(b"x"))
        special = tarfile.TarInfo("dev/thing")
        special.type = kind
        tf.addfile(special)
    src = tmp_path / "a.tar"
    src.write_bytes(buf.getvalue())
    with pytest.raises(BadRequest, match=f"archive member 'dev/thing' is {why}"):
        normalize(src, out)
    assert_nothing_written(out)


def test_zip_fifo_is_refused(tmp_path: Path, out: Path) -> None:
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        info = zipfile.ZipInfo("pipe")
        info.create_system = 3
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    with pytest.raises(BadRequest, match="archive member 'pipe' is a fifo"):
        normalize(tmp_path / "a.zip", out)


def test_directory_fifo_is_refused(tmp_path: Path, out: Path) -> None:
    root = make_dir(tmp_path / "tree", [("a.txt", "file", b"a", 0o644)])
    os.mkfifo(root / "pipe")
    with pytest.raises(BadRequest, match="archive member 'pipe' is a fifo"):
        normalize_directory(root, out)
    assert_nothing_written(out)


def test_encrypted_zip_member_is_refused(tmp_path: Path, out: Path) -> None:
    src = make_zip(tmp_path / "a.zip", [("secret.txt", "file", b"x", 0o644)])
    data = bytearray(src.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + flags_at
        data[at] |= 0x1
    src.write_bytes(bytes(data))
    with pytest.raises(BadRequest, match=r"archive member 'secret\.txt' is encrypted"):
        normalize(src, out)


def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_tarinfo("ok.txt", "file", b"x", 0o644), io.BytesIO(b"x"))
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("gz", [False, True])
def test_huge_extended_headers_are_refused(tmp_path: Path, out: Path, gz: bool) -> None:
    info = _tarinfo("a.txt", "file", b"a", 0o644)
    info.pax_headers = {"comment": "x" * 100_000}
    data = _tar_with(info, b"a")
    src = tmp_path / "a.tar"
    src.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(BadRequest, match="extended header over 65536 bytes"):
        normalize(src, out)
    assert_nothing_written(out)


def test_sparse_members_are_refused(tmp_path: Path, out: Path) -> None:
    pax = _tarinfo("holes", "file", b"abc", 0o644)
    pax.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "1000000000"}
    old = _tarinfo("old-holes", "file", b"", 0o644)
    old.type = tarfile.GNUTYPE_SPARSE
    for info in (pax, old):
        src = tmp_path / "a.tar"
        src.write_bytes(_tar_with(info, b"abc"))
        with pytest.raises(BadRequest, match="is a sparse file, which is not supported"):
            normalize(src, out)
        assert_nothing_written(out)


# -- symlinks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target", "why"),
    [
        ("link", "../outside", "which leaves the package"),
        ("a/link", "../../etc/passwd", "which leaves the package"),
        ("link", "/etc/passwd", "which is an absolute path"),
        ("up", "..", "which leaves the package"),
        ("a/hop", "up/..", "which leaves the package"),  # a/up -> the root, so a/up/.. is the root's parent
        ("loop1", "loop2", "which loops"),
    ],
)
@pytest.mark.parametrize("fmt", ["zip", "tar", "dir"])
def test_symlinks_leaving_the_package_are_refused(
    tmp_path: Path, out: Path, name: str, target: str, why: str, fmt: str
) -> None:
    members: list[Member] = [
        ("a/file.txt", "file", b"x", 0o644),
        ("a/up", "symlink", "..", 0o777),
        ("loop2", "symlink", "loop1", 0o777),
        (name, "symlink", target, 0o777),
    ]
    with pytest.raises(BadRequest) as caught:
        if fmt == "zip":
            normalize(make_zip(tmp_path / "a.zip", members), out)
        elif fmt == "tar":
            normalize(make_tar(tmp_path / "a.tar", members), out)
        else:
            normalize_directory(make_dir(tmp_path / "tree", members), out)
    assert f"archive member '{name}' is a symlink to '{target}', {why}" in caught.value.message
    assert_nothing_written(out)


def test_symlinks_inside_are_kept_even_through_other_symlinks(tmp_path: Path, out: Path) -> None:
    members: list[Member] = [
        ("a/b/file.txt", "file", b"x", 0o644),
        ("deep", "symlink", "a/b", 0o777),
        ("a/b/back", "symlink", "../../deep/file.txt", 0o777),
        ("a/root", "symlink", "..", 0o777),
        ("dangling", "symlink", "not/there", 0o777),
    ]
    normalize(make_zip(tmp_path / "a.zip", members), out)
    links = {m.name: m.linkname for m in read_members(out) if m.issym()}
    assert links == {"a/b/back": "../../deep/file.txt", "a/root": "..", "dangling": "not/there", "deep": "a/b"}


def test_members_under_a_symlink_or_file_are_refused(tmp_path: Path, out: Path) -> None:
    members: list[Member] = [("lib", "symlink", "real", 0o777), ("real", "dir", b"", 0o755), ("lib/x", "file", b"", 0)]
    with pytest.raises(BadRequest, match="archive member 'lib/x' is inside 'lib', which is not a directory"):
        normalize(make_tar(tmp_path / "a.tar", members), out)
    members = [("f", "file", b"", 0o644), ("f/x", "file", b"", 0o644), ("g", "file", b"", 0o644)]
    with pytest.raises(BadRequest, match="archive member 'f/x' is inside 'f', which is not a directory"):
        normalize(make_zip(tmp_path / "a.zip", members), out)
    assert_nothing_written(out)


# -- limits ---------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_anything_is_unpacked(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_zip(tmp_path / "bomb.zip", [("zeros", "file", bytes(5_000_000), 0o644)])
    assert src.stat().st_size < 10_000

    def no_unpacking(*args: object, **kwargs: object) -> None:
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_unpacking)
    with pytest.raises(PayloadTooLarge, match="over the limit of 1000000 bytes unpacked"):
        normalize(src, out, max_bytes=1_000_000)
    assert_nothing_written(out)


def test_zip_whose_declared_sizes_lie_is_never_unpacked_past_them(tmp_path: Path, out: Path) -> None:
    src = make_zip(tmp_path / "liar.zip", [("zeros", "file", bytes(5_000_000), 0o644)])
    data = bytearray(src.read_bytes())
    struct.pack_into("<I", data, data.index(b"PK\x03\x04") + 22, 100)  # uncompressed size, local header
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, 100)  # and in the central directory
    src.write_bytes(bytes(data))
    with pytest.raises(BadRequest, match="archive member 'zeros' is corrupt"):
        normalize(src, out, max_bytes=1_000_000)
    assert_nothing_written(out)


def test_gzip_bomb_is_refused(tmp_path: Path, out: Path) -> None:
    members: list[Member] = [("small", "file", b"x", 0o644), ("zeros", "file", bytes(5_000_000), 0o644)]
    src = make_tar(tmp_path / "bomb.tar.gz", members, gz=True)
    assert src.stat().st_size < 20_000
    expected = r"over the limit of 1000000 bytes unpacked \(at archive member 'zeros'\)"
    with pytest.raises(PayloadTooLarge, match=expected):
        normalize(src, out, max_bytes=1_000_000)
    assert_nothing_written(out)


def test_size_limit_counts_the_files_content(tmp_path: Path, out: Path) -> None:
    members: list[Member] = [("a", "file", bytes(600), 0o644), ("b", "file", bytes(400), 0o644)]
    assert normalize(make_tar(tmp_path / "a.tar", members), out, max_bytes=1000).unpacked_bytes == 1000
    members.append(("c", "file", b"1", 0o644))
    with pytest.raises(PayloadTooLarge):
        normalize(make_tar(tmp_path / "a.tar", members), out, max_bytes=1000)


@pytest.mark.parametrize("fmt", ["zip", "tar", "tgz", "dir"])
def test_too_many_files_is_refused(tmp_path: Path, out: Path, fmt: str) -> None:
    members: list[Member] = [(f"f{i}.txt", "file", b"x", 0o644) for i in range(6)]
    with pytest.raises(PayloadTooLarge, match="over the limit of 5 files"):
        if fmt == "zip":
            normalize(make_zip(tmp_path / "a.zip", members), out, max_files=5)
        elif fmt == "dir":
            normalize_directory(make_dir(tmp_path / "tree", members), out, max_files=5)
        else:
            normalize(make_tar(tmp_path / "a.tar", members, gz=fmt == "tgz"), out, max_files=5)
    assert_nothing_written(out)


def test_file_limit_counts_the_normalized_members(tmp_path: Path, out: Path) -> None:
    five: list[Member] = [(f"f{i}.txt", "file", b"x", 0o644) for i in range(5)]
    # The stripped top-level directory does not count...
    assert normalize(make_tar(tmp_path / "a.tar", five, top="pkg"), out, max_files=5).files == 5
    # ...but the directories a zip leaves implicit do.
    nested: list[Member] = [(f"d/f{i}.txt", "file", b"x", 0o644) for i in range(4)]
    nested.append(("e.txt", "file", b"", 0o644))
    with pytest.raises(PayloadTooLarge, match="over the limit of 5 files"):
        normalize(make_zip(tmp_path / "a.zip", nested, dirs=False), out, max_files=5)


# -- unrecognized input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, world\n" * 100, os.urandom(4096), gzip.compress(b"just some text\n" * 50)],
    ids=["empty", "text", "random", "gzip-of-text"],
)
def test_garbage_is_not_an_archive(tmp_path: Path, out: Path, data: bytes) -> None:
    src = tmp_path / "upload"
    src.write_bytes(data)
    with pytest.raises(BadRequest, match=r"^not a zip or tar archive$"):
        normalize(src, out)
    assert_nothing_written(out)


def test_truncated_archives_are_corrupt(tmp_path: Path, out: Path) -> None:
    members: list[Member] = [("big", "file", os.urandom(100_000), 0o644)]
    for src in (make_zip(tmp_path / "a.zip", members), make_tar(tmp_path / "a.tgz", members, gz=True)):
        src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        with pytest.raises(BadRequest):
            normalize(src, out)
        assert_nothing_written(out)


def test_a_failed_normalize_leaves_an_existing_dest_alone(tmp_path: Path, out: Path) -> None:
    out.write_bytes(b"previous")
    with pytest.raises(BadRequest):
        normalize(make_zip(tmp_path / "a.zip", [("../x", "file", b"", 0o644)]), out)
    assert out.read_bytes() == b"previous"
    assert list(out.parent.iterdir()) == [out]


# -- overlay and retag ----------------------------------------------------------------------------


def _normalized(tmp_path: Path, name: str, members: list[Member]) -> Path:
    dest = tmp_path / f"{name}.tar"
    normalize(make_zip(tmp_path / f"{name}.zip", members), dest)
    return dest


def test_overlay_lays_top_over_base_under_the_prefix(tmp_path: Path, out: Path) -> None:
    base = _normalized(
        tmp_path,
        "base",
        [("node_modules/x/index.js", "file", b"x", 0o644), ("app.js", "file", b"old", 0o644), ("z", "dir", b"", 0)],
    )
    top = _normalized(tmp_path, "top", [("app.js", "file", b"new", 0o755), ("package.json", "file", b"{}", 0o644)])
    info = overlay(base, top, out, owner=0)
    assert names(out) == [
        "deploy",
        "deploy/app.js",
        "deploy/node_modules",
        "deploy/node_modules/x",
        "deploy/node_modules/x/index.js",
        "deploy/package.json",
        "deploy/z",
    ]
    assert content(out, "deploy/app.js") == b"new"
    assert {m.name: m.mode for m in read_members(out)}["deploy/app.js"] == 0o755
    assert info.files == 7 and info.unpacked_bytes == 6


def test_overlay_with_an_empty_prefix_and_no_base(tmp_path: Path, out: Path) -> None:
    top = _normalized(tmp_path, "top", [("a.py", "file", b"a", 0o644), ("b.py", "file", b"b", 0o644)])
    overlay(None, top, out, prefix="", owner=1000)
    assert names(out) == ["a.py", "b.py"]
    assert {m.uid for m in read_members(out)} == {1000}
    overlay(None, top, out)
    assert names(out) == ["deploy", "deploy/a.py", "deploy/b.py"]


@pytest.mark.parametrize(
    ("lower", "upper", "why"),
    [
        ("dir", "file", "a directory in the base archive but not in the top one"),
        ("file", "dir", "a directory in the top archive but not in the base one"),
        ("dir", "symlink", "a directory in the base archive but not in the top one"),
    ],
)
def test_overlay_refuses_a_file_replacing_a_directory(
    tmp_path: Path, out: Path, lower: str, upper: str, why: str
) -> None:
    def tree(kind: str) -> list[Member]:
        if kind == "dir":
            return [("x/inner.txt", "file", b"i", 0o644), ("other", "file", b"o", 0o644)]
        if kind == "symlink":
            return [("x", "symlink", "other", 0o777), ("other", "file", b"o", 0o644)]
        return [("x", "file", b"f", 0o644), ("other", "file", b"o", 0o644)]

    base = _normalized(tmp_path, "base", tree(lower))
    top = _normalized(tmp_path, "top", tree(upper))
    with pytest.raises(BadRequest, match=f"archive member 'x' is {why}"):
        overlay(base, top, out)
    assert_nothing_written(out)


def test_retag_moves_members_under_a_prefix_with_another_owner(tmp_path: Path, out: Path) -> None:
    src = _normalized(tmp_path, "src", TREE)
    info = retag(src, out, prefix="src", owner=1000, extra_dirs=("deploy",))
    members = read_members(out)
    assert [m.name for m in members] == ["deploy", "src"] + [f"src/{n}" for n in EXPECTED_NAMES]
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(1000, 1000, 0)}
    assert members[0].isdir() and members[0].mode == 0o755
    assert info.files == len(EXPECTED_NAMES) + 2
    assert content(out, "src/lib/util.py") == b"X = 1\n" * 1000

    retag(src, out, prefix="src", owner=0)
    assert names(out) == ["src"] + [f"src/{n}" for n in EXPECTED_NAMES]


def test_retag_refuses_an_extra_dir_over_a_file(tmp_path: Path, out: Path) -> None:
    src = _normalized(tmp_path, "src", [("deploy", "file", b"", 0o644), ("x", "file", b"", 0o644)])
    with pytest.raises(BadRequest, match="'deploy' is not a directory"):
        retag(src, out, prefix="", owner=0, extra_dirs=("deploy",))


# -- hashes ---------------------------------------------------------------------------------------


def test_file_hashes_of_top_level_files(tmp_path: Path) -> None:
    members: list[Member] = [
        ("requirements.txt", "file", b"requests==2.31\n", 0o644),
        ("package.json", "symlink", "conf/package.json", 0o777),
        ("conf/package.json", "file", b"{}", 0o644),
        ("package-lock.json", "dir", b"", 0o755),
        ("dangling.txt", "symlink", "nowhere", 0o777),
    ]
    src = _normalized(tmp_path, "src", members)
    wanted = ["requirements.txt", "package.json", "package-lock.json", "missing.txt", "dangling.txt"]
    assert file_hashes(src, wanted) == {
        "package.json": hashlib.sha256(b"{}").hexdigest(),
        "requirements.txt": hashlib.sha256(b"requests==2.31\n").hexdigest(),
    }
    assert file_hashes(src, []) == {}


def test_members_matching_suffixes(tmp_path: Path) -> None:
    members: list[Member] = [
        ("wheels/a-1.0-py3-none-any.whl", "file", b"wheel", 0o644),
        ("vendor/b-2.0.tar.gz", "file", b"sdist", 0o644),
        ("c.tgz", "file", b"npm", 0o644),
        ("d.zip", "dir", b"", 0o755),
        ("main.py", "file", b"print()", 0o644),
        ("notes.tar", "file", b"tar", 0o644),
    ]
    src = _normalized(tmp_path, "src", members)
    found = members_matching(src, (".whl", ".tar.gz", ".tgz", ".zip"))
    assert found == {
        "c.tgz": hashlib.sha256(b"npm").hexdigest(),
        "vendor/b-2.0.tar.gz": hashlib.sha256(b"sdist").hexdigest(),
        "wheels/a-1.0-py3-none-any.whl": hashlib.sha256(b"wheel").hexdigest(),
    }
    assert members_matching(src, ()) == {}


def test_hashes_are_read_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "_CHUNK", 1000)
    data = os.urandom(10_500)
    src = _normalized(tmp_path, "src", [("requirements.txt", "file", data, 0o644), ("x", "file", b"", 0)])
    assert file_hashes(src, {"requirements.txt"}) == {"requirements.txt": hashlib.sha256(data).hexdigest()}


def _tar_of(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("files", "local"),
    [
        ({"requirements.txt": "--no-index\n--find-links ./wheels\ngreet==1.0\n"}, False),
        ({"requirements.txt": "six==1.16\n"}, False),
        ({"requirements.txt": "-r base.txt\n"}, True),
        ({"requirements.txt": "-c constraints.txt\nsix\n"}, True),
        ({"requirements.txt": "-e ./lib\n"}, True),
        ({"requirements.txt": "./lib\n"}, True),
        ({"package.json": '{"dependencies": {"x": "file:./vendor/x-1.0.0.tgz"}}'}, False),
        ({"package.json": '{"dependencies": {"x": "file:./lib"}}'}, True),
        ({"package.json": '{"dependencies": {"x": "^1.0.0"}}'}, False),
    ],
)
def test_manifests_that_name_other_files_key_the_cache_by_the_whole_source(
    tmp_path: Path, files: dict[str, str], local: bool
) -> None:
    from faasd.builds.builder import _refers_to_local_paths

    assert bool(_refers_to_local_paths(_tar_of(tmp_path / "src.tar", files))) is local
