"""Code blobs and package archives that every node reads: in PostgreSQL, each node's files a copy.

Two "nodes" here are two file stores with state dirs of their own on one real
PostgreSQL database; SQLite keeps its blobs in its files only.
"""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from faasd.builds.archive import ArchiveInfo
from faasd.builds.store import PackageStore
from faasd.core.database import database_url
from faasd.core.errors import RegistryUnavailable
from faasd.store.blobs import BlobTable
from faasd.store.codestore import CodeStore
from faasd.store.database import open_engine
from faasd.store.models import BlobRow, FunctionRow
from faasd.store.registry import Store
from tests.postgres import running_postgres


@pytest.fixture
async def registry(postgres_url: str) -> AsyncIterator[Store]:
    store = await Store.open(postgres_url)  # migrated: the blobs table is there
    yield store
    await store.close()


@pytest.fixture
def table(registry: Store, postgres_url: str) -> Iterator[BlobTable]:
    made = BlobTable(database_url(postgres_url), grace=3600, every=0)
    yield made
    made.close()


async def rows(url: str) -> int:
    engine = open_engine(database_url(url))
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(select(func.count()).select_from(BlobRow))).scalar_one())
    finally:
        await engine.dispose()


async def test_code_put_on_one_node_is_read_on_another(registry: Store, tmp_path: Path) -> None:
    assert registry.blobs is not None
    a, b = CodeStore(tmp_path / "a", registry.blobs), CodeStore(tmp_path / "b", registry.blobs)
    data = b"module.exports = () => 'hi';"
    sha = await asyncio.to_thread(a.put, data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "b" / sha).exists()
    assert await asyncio.to_thread(b.get, sha) == data
    assert (tmp_path / "b" / sha).read_bytes() == data  # kept: the next read is the file's
    b.discard(sha)
    assert not (tmp_path / "b" / sha).exists()
    assert await asyncio.to_thread(b.get, sha) == data  # a discard here leaves the database's copy
    with pytest.raises(FileNotFoundError, match="no code blob"):
        await asyncio.to_thread(b.get, "0" * 64)


async def test_putting_a_blob_again_sends_no_bytes_and_renews_it(table: BlobTable, postgres_url: str) -> None:
    await asyncio.to_thread(table.put, "a" * 64, b"first")
    await asyncio.to_thread(table.put, "a" * 64, b"first")
    assert await rows(postgres_url) == 1
    assert await asyncio.to_thread(table.get, "a" * 64) == b"first"
    assert await asyncio.to_thread(table.has, "a" * 64)
    assert not await asyncio.to_thread(table.has, "b" * 64)


async def test_the_sweep_takes_only_old_blobs_that_nothing_names(table: BlobTable, postgres_url: str) -> None:
    for sha in ("a" * 64, "b" * 64, "c" * 64):
        await asyncio.to_thread(table.put, sha, sha.encode())
    engine = open_engine(database_url(postgres_url))
    made = datetime(2026, 11, 30, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(BlobRow).where(BlobRow.sha256 != "c" * 64).values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
            )
            await connection.exec_driver_sql(
                "INSERT INTO environments (name, image, poolsize, created_at, updated_at) "
                "VALUES ('e', 'x:1', 0, now(), now())"  # a function needs its environment
            )
            await connection.execute(
                FunctionRow.__table__.insert().values(
                    name="f",
                    environment="e",
                    filename="f.js",
                    entrypoint="",
                    timeout=60,
                    code_sha256="b" * 64,
                    code_size=64,
                    revision=1,
                    created_at=made,
                    updated_at=made,
                )
            )
    finally:
        await engine.dispose()
    # "a": old and named by nothing; "b": old, a function runs it; "c": named by nothing, but just put.
    assert await asyncio.to_thread(table.sweep) == 1
    assert not await asyncio.to_thread(table.has, "a" * 64)
    assert await asyncio.to_thread(table.has, "b" * 64)
    assert await asyncio.to_thread(table.has, "c" * 64)


def _archive(folder: Path, text: str) -> tuple[Path, ArchiveInfo]:
    source = folder / "hello.txt"
    source.write_text(text)
    tar = folder / "in.tar"
    with tarfile.open(tar, "w") as out:
        out.add(source, arcname="hello.txt")
    data = tar.read_bytes()
    return tar, ArchiveInfo(sha256=hashlib.sha256(data).hexdigest(), size=len(data), files=1, unpacked_bytes=len(text))


async def test_an_archive_put_on_one_node_is_a_file_on_another(registry: Store, tmp_path: Path) -> None:
    a = PackageStore(tmp_path / "a", registry.blobs)
    b = PackageStore(tmp_path / "b", registry.blobs)
    tar, info = _archive(tmp_path, "hello")
    data = tar.read_bytes()
    await asyncio.to_thread(a.put, tar, info)
    a.release(info.sha256)
    assert not (tmp_path / "b" / info.sha256).exists()
    assert await asyncio.to_thread(b.has, info.sha256)
    path = await asyncio.to_thread(b.path, info.sha256)
    assert path == tmp_path / "b" / info.sha256
    assert path.read_bytes() == data
    assert list((tmp_path / "b" / "incoming").iterdir()) == []


async def test_on_sqlite_the_files_are_all(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "faasd.db")
    try:
        assert store.blobs is None
        codes = CodeStore(tmp_path / "code", store.blobs)
        sha = codes.put(b"x")
        assert (tmp_path / "code" / sha).read_bytes() == b"x"
    finally:
        await store.close()


async def test_a_database_that_went_away_is_a_503_and_blobs_come_back_with_it(tmp_path: Path) -> None:
    with running_postgres() as server:
        name = server.create_database()
        store = await Store.open(server.url(name))
        try:
            assert store.blobs is not None
            codes = CodeStore(tmp_path / "code", store.blobs)
            sha = await asyncio.to_thread(codes.put, b"kept")
            codes.discard(sha)
            await asyncio.to_thread(server.stop)
            with pytest.raises(RegistryUnavailable, match="cannot be reached for a code blob") as raised:
                await asyncio.to_thread(codes.get, sha)
            assert raised.value.status == 503
            await asyncio.to_thread(server.start)
            assert await asyncio.to_thread(codes.get, sha) == b"kept"
        finally:
            await store.close()


async def test_a_blob_the_database_does_not_answer_in_time_is_a_503(registry: Store, postgres_url: str) -> None:
    """A database that holds the query (here: the table locked by another session) costs the caller its
    wait at most; then the query is cancelled, and the next call works."""
    waiting = BlobTable(database_url(postgres_url), wait=1)
    engine = open_engine(database_url(postgres_url))
    try:
        async with engine.connect() as other:
            transaction = await other.begin()
            await other.exec_driver_sql("LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE")
            started = asyncio.get_running_loop().time()
            with pytest.raises(RegistryUnavailable, match="no answer within 1 s") as raised:
                await asyncio.to_thread(waiting.has, "0" * 64)
            assert raised.value.status == 503
            assert asyncio.get_running_loop().time() - started < 5
            await transaction.rollback()
        assert await asyncio.to_thread(waiting.has, "0" * 64) is False
    finally:
        waiting.close()
        await engine.dispose()
