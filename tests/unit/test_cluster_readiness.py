"""Readiness and "the registry cannot be reached", on a real SQLite file and a real PostgreSQL server.

The pool is the real PoolManager on the fake engine (tests/fakes.py), whose starts a test can hold.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from faasd.cluster.availability import is_unavailable, ping, unavailable_error
from faasd.cluster.changes import ChangeFeed, Follower
from faasd.cluster.readiness import Readiness
from faasd.core.entities import Environment
from faasd.core.errors import Conflict, RegistryUnavailable
from faasd.pool.manager import PoolManager
from faasd.store.registry import Store
from tests.fakes import FakeBackend
from tests.postgres import free_port

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'faasd.db'}")
    yield opened
    await opened.close()


async def test_a_locked_sqlite_file_is_unavailable_a_conflict_is_not(store: Store, tmp_path: Path) -> None:
    env = Environment("nodejs", "faasd/runtime-nodejs:latest", 0, NOW, NOW)
    await store.add_environment(env)
    with pytest.raises(Conflict) as conflict:
        await store.add_environment(env)
    assert not is_unavailable(conflict.value)
    other = sqlite3.connect(tmp_path / "faasd.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writes: faasd waits its busy timeout, then fails
    try:
        with pytest.raises(Exception) as locked:
            await store.add_environment(Environment("python", "faasd/runtime-python:latest", 0, NOW, NOW))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert is_unavailable(locked.value)
    error = unavailable_error(locked.value)
    assert (error.status, error.code) == (503, "registry_unavailable")
    assert "database is locked" in error.message and "nothing was changed" in error.message
    assert error.to_json()["error"]["code"] == "registry_unavailable"
    assert not is_unavailable(ValueError("a bug"))


async def test_ping_a_postgresql_that_is_not_there() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/faasd")
    try:
        with pytest.raises(RegistryUnavailable, match="cannot be reached"):
            await ping(engine, timeout=5)
    finally:
        await engine.dispose()


async def test_ping_a_registry_that_answers(store: Store, postgres_url: str) -> None:
    await ping(store.engine)
    on_postgresql = await Store.open(postgres_url)
    try:
        await ping(on_postgresql.engine)
    finally:
        await on_postgresql.close()


async def test_ready_once_the_stock_pools_were_full(store: Store) -> None:
    backend = FakeBackend()
    backend.start_gate = asyncio.Event()  # starts wait until the test lets them go
    pool = PoolManager(backend, lambda fn: b"", idle_timeout=120)
    engine_up = True

    async def engine_ping() -> None:
        if not engine_up:
            raise OSError("connection refused")

    readiness = Readiness(store.engine, engine_ping, pool, ["nodejs"])
    try:
        pool.set_environment(Environment("nodejs", "faasd/runtime-nodejs:latest", 2, NOW, NOW))
        ready, body = await readiness.check()
        assert not ready
        assert body == {"status": "not_ready", "failing": {"pools": "stock pools not filled yet: nodejs 0/2"}}

        backend.start_gate.set()
        async with asyncio.timeout(10):
            await pool.settle()  # the starts in flight are done
        assert pool.pool_sizes()["nodejs"][1] == 2
        ready, body = await readiness.check()
        assert ready and body == {"status": "ready", "checks": {"registry": "ok", "engine": "ok", "pools": "ok"}}

        # Full once is enough: a drained pool refills while the node serves. The engine still counts.
        pool.set_environment(Environment("nodejs", "faasd/runtime-nodejs:latest", 5, NOW, NOW))
        engine_up = False
        ready, body = await readiness.check()
        assert not ready and body["failing"] == {"engine": "the container engine does not answer: connection refused"}
    finally:
        await pool.shutdown()


async def test_not_ready_while_the_registry_does_not_answer() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/faasd")
    pool = PoolManager(FakeBackend(), lambda fn: b"", idle_timeout=120)
    try:
        ready, body = await Readiness(engine, None, pool, []).check()
        assert not ready
        assert list(body["failing"]) == ["registry"]
        assert body["failing"]["registry"].startswith("the registry's database cannot be reached")
    finally:
        await pool.shutdown()
        await engine.dispose()


async def test_pools_full_for_a_moment_between_two_checks_count(store: Store) -> None:
    pool = PoolManager(FakeBackend(), lambda fn: b"", idle_timeout=120)
    readiness = Readiness(store.engine, None, pool, ["nodejs"])
    try:
        watch = readiness.start(every=0.01)
        pool.set_environment(Environment("nodejs", "faasd/runtime-nodejs:latest", 1, NOW, NOW))
        async with asyncio.timeout(10):
            await watch  # it saw the pool full, and ended
        pool.set_environment(Environment("nodejs", "faasd/runtime-nodejs:latest", 4, NOW, NOW))  # not full now
        assert (await readiness.check())[0]
    finally:
        await readiness.close()
        await pool.shutdown()


class NoApply:
    """The follower's applier: never reached here (its rows cannot even be read)."""

    async def apply(self, kind: str, name: str) -> None:
        raise AssertionError("nothing to apply")

    async def reload_all(self) -> None:
        raise AssertionError("nothing to reload")


async def test_not_ready_once_the_change_follower_has_failed_for_30_s(store: Store) -> None:
    """The registry answers this node's ping, but its follower reads the changes from a server that is
    gone: a moment of it (a restart) is no reason, half a minute is."""
    now = [1000.0]
    gone = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/faasd")
    follower = Follower(ChangeFeed(gone), NoApply(), "a", 0, poll=0.05, clock=lambda: now[0])
    pool = PoolManager(FakeBackend(), lambda fn: b"", idle_timeout=120)
    readiness = Readiness(store.engine, None, pool, [], follower=follower)
    try:
        ready, body = await readiness.check()
        assert ready and body["checks"] == {"registry": "ok", "engine": "ok", "pools": "ok", "changes": "ok"}
        follower.start()
        for _ in range(1000):  # its first pass fails at once (refused)
            if follower.failing_since is not None:
                break
            await asyncio.sleep(0.01)
        assert follower.failing_since == 1000.0
        now[0] += 30
        assert (await readiness.check())[0]
        now[0] += 1
        ready, body = await readiness.check()
        assert not ready and list(body["failing"]) == ["changes"]
        reason = body["failing"]["changes"]
        assert reason.startswith("the other nodes' changes have not been applied for 31 s (") and reason.endswith(")")
    finally:
        await follower.close()
        await pool.shutdown()
        await gone.dispose()


async def test_socket_errors_mean_the_database_only_from_its_drivers() -> None:
    """A refused connection or a timeout from anything else (another node, the container engine) is not
    a registry that cannot be reached; asyncpg's own, raised as they are, are."""
    assert not is_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert not is_unavailable(TimeoutError())
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/faasd")
    try:
        with pytest.raises(OSError) as refused:
            async with engine.connect():
                pass
        assert is_unavailable(refused.value)
        try:
            raise RuntimeError("a write failed") from refused.value
        except RuntimeError as wrapped:
            assert is_unavailable(wrapped)
    finally:
        await engine.dispose()
