"""Helpers for the package tests: file trees, and dependencies made by hand.

A wheel and an npm tarball are written here byte by byte (what `pip wheel` and
`npm pack` make for a pure-Python / pure-JS package), so the builder tests
need neither a registry nor a build tool on the host.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Writes ``{relative path: text}`` under ``root`` (folders as needed)."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: relative path -> (size, mtime_ns)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel ``<name>-<version>-py3-none-any.whl`` in ``folder``.

    ``files``: the wheel's modules, e.g. ``{"greet/__init__.py": "..."}``.
    """
    dist_info = f"{name}-{version}.dist-info"
    members = {rel: text.encode() for rel, text in files.items()}
    members[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: faasd-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{rel},{_record_hash(data)},{len(data)}\n" for rel, data in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in members.items():
            zf.writestr(rel, data)
    return path


def make_npm_tgz(path: Path, files: dict[str, str]) -> Path:
    """An npm package tarball (what ``npm pack`` makes): ``files`` under ``package/``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{rel}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 499162500  # what npm pack stamps
            tar.addfile(info, io.BytesIO(data))
    return path
