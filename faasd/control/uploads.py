"""A package's upload: multipart/form-data streamed to temporary files, never held in memory.

``POST /v1/packages`` and ``PATCH /v1/packages/{name}`` send the text fields
``name``, ``environment`` and ``buildcmd`` and the files ``source`` and
``deploy`` (each an archive: zip, tar, tar.gz). A file is written to the
upload directory (``<state dir>/tmp``) as it arrives, in worker threads, and
reading stops with 413 as soon as one is over the limit (compressed), so a
too-large upload is never read whole. The files are removed when the request
is done, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from faasd.core.errors import BadRequest, PayloadTooLarge

TEXT_FIELDS = ("name", "environment", "buildcmd", "labels")
FILE_FIELDS = ("source", "deploy")
MAX_TEXT_BYTES = 8192
CHUNK_BYTES = 1 << 20
PREFIX = "upload-"
# Room for the form's own framing and text fields next to two archives at the limit.
FORM_OVERHEAD = 1 << 20


@dataclass
class PackageForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def clear_upload_dir(folder: Path) -> int:
    """Remove the upload files a stopped faasd left (blocking; at start)."""
    removed = 0
    if folder.is_dir():
        for path in folder.glob(PREFIX + "*"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.asynccontextmanager
async def package_form(request: web.Request, folder: Path, max_bytes: int) -> AsyncIterator[PackageForm]:
    """The form of a package upload, its files on disk until the ``async with`` ends."""
    form = PackageForm()
    try:
        await _read(request, folder, max_bytes, form)
        yield form
    finally:
        for path in form.files.values():
            await asyncio.to_thread(path.unlink, missing_ok=True)


async def _read(request: web.Request, folder: Path, max_bytes: int, form: PackageForm) -> None:
    if request.content_type != "multipart/form-data":
        raise BadRequest(
            "send a package as multipart/form-data: the fields name, environment and buildcmd, "
            "the files source and/or deploy (faas package create does)"
        )
    length = request.content_length
    if length is not None and length > 2 * max_bytes + FORM_OVERHEAD:
        raise PayloadTooLarge(f"the upload is {length:,} bytes; each archive may be at most {max_bytes:,} bytes")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("a nested multipart part is not accepted")
            name = part.name or ""
            if name in form.fields or name in form.files:
                raise BadRequest(f"the field {name!r} is given twice")
            if name in FILE_FIELDS:
                form.files[name] = await _save(part, name, folder, max_bytes)
            elif name in TEXT_FIELDS:
                form.fields[name] = await _text(part, name)
            else:
                accepted = ", ".join((*TEXT_FIELDS, *FILE_FIELDS))
                raise BadRequest(f"unknown field {name!r}; accepted: {accepted}")
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise BadRequest(f"the multipart/form-data body is malformed: {exc}") from None


async def _text(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(MAX_TEXT_BYTES):
        data.extend(chunk)
        if len(data) > MAX_TEXT_BYTES:
            raise BadRequest(f"{name} is longer than {MAX_TEXT_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{name} is not UTF-8 text") from None


def _open(folder: Path) -> tuple[Path, IO[bytes]]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=PREFIX)
    return Path(name), os.fdopen(fd, "wb")


async def _save(part: BodyPartReader, name: str, folder: Path, max_bytes: int) -> Path:
    path, out = await asyncio.to_thread(_open, folder)
    size = 0
    try:
        try:
            while chunk := await part.read_chunk(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"the {'source' if name == 'source' else 'deployment'} archive is over the limit of "
                        f"{max_bytes:,} bytes"
                    )
                await asyncio.to_thread(out.write, chunk)
        finally:
            await asyncio.to_thread(out.close)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    if size == 0:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise BadRequest(f"the {name} file is empty")
    return path
