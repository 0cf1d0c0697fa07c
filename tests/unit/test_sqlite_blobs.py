"""Blobs in a SQLite file that two nodes on one machine share: each node's files a copy, as on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from faasd.store.codestore import CodeStore
from faasd.store.models import BlobRow
from faasd.store.registry import Store
from faasd.store.sqlite_blobs import SqliteBlobs


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{tmp_path / 'shared.db'}")  # migrated: the blobs table is there
    yield store
    await store.close()


@pytest.fixture
def blobs(registry: Store, tmp_path: Path) -> Iterator[SqliteBlobs]:
    made = SqliteBlobs(tmp_path / "shared.db", grace=3600, every=0)
    yield made
    made.close()


async def count(registry: Store) -> int:
    async with registry.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(BlobRow))).scalar_one())


async def test_code_put_on_one_node_is_read_on_another(blobs: SqliteBlobs, registry: Store, tmp_path: Path) -> None:
    a, b = CodeStore(tmp_path / "a", blobs), CodeStore(tmp_path / "b", blobs)
    data = b"module.exports = () => 'hi';"
    sha = await asyncio.to_thread(a.put, data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "b" / sha).exists()
    assert await asyncio.to_thread(b.get, sha) == data
    assert (tmp_path / "b" / sha).read_bytes() == data  # kept: the next read is the file's
    assert await asyncio.to_thread(a.put, data) == sha  # again: no second row
    assert await count(registry) == 1 and blobs.has(sha) and not blobs.has("0" * 64)
    with pytest.raises(FileNotFoundError):
        await asyncio.to_thread(b.get, "0" * 64)


async def test_the_sweep_keeps_what_is_named_or_recent(blobs: SqliteBlobs, registry: Store, tmp_path: Path) -> None:
    codes = CodeStore(tmp_path / "a", blobs)
    old = await asyncio.to_thread(codes.put, b"old and unnamed")
    recent = await asyncio.to_thread(codes.put, b"recent and unnamed")
    async with registry.engine.begin() as connection:
        moment = datetime.now(UTC) - timedelta(days=2)
        await connection.execute(update(BlobRow).where(BlobRow.sha256 == old).values(created_at=moment))
    assert await asyncio.to_thread(blobs.sweep) == 1
    assert not blobs.has(old) and blobs.has(recent)
