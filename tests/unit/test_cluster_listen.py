"""PostgreSQL's LISTEN for the follower, on a real server: woken by the other nodes' commits, not its own;
back after the server restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from faasd.cluster.journal import CHANNEL, ChangeKind, Journal, recording
from faasd.cluster.listen import ChangeListener, asyncpg_dsn
from faasd.core.entities import Environment
from faasd.store.registry import Store
from tests.postgres import PostgresServer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def notify(url: str, *nodes: str) -> None:
    """NOTIFY as each of ``nodes``, in order, from one connection (delivered in that order)."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for node in nodes:
            await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, node)
    finally:
        await connection.close()


def test_asyncpg_dsn() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5/db") == "postgresql://u:p@h:5/db"
    assert asyncpg_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


async def test_a_commit_of_another_node_wakes_the_follower(postgres_url: str) -> None:
    store = await Store.open(postgres_url)
    journal = Journal(store.engine, "a")
    wakes: list[None] = []
    woken = asyncio.Event()

    def wake() -> None:
        wakes.append(None)
        woken.set()

    listener = ChangeListener(asyncpg_dsn(postgres_url), "b", wake)
    try:
        listener.start()
        async with asyncio.timeout(10):
            await listener.connected.wait()
            await woken.wait()  # once when it starts listening: rows written before are read now
        woken.clear()
        with recording(ChangeKind.environment, "custom"):
            await store.add_environment(Environment("custom", "me/img:1", 0, NOW, NOW))
        async with asyncio.timeout(10):
            await woken.wait()  # a's commit
        assert len(wakes) == 2
        # Its own node's notification does not wake it (c's, sent after it, arrives after it).
        woken.clear()
        await notify(postgres_url, "b", "c")
        async with asyncio.timeout(10):
            await woken.wait()
        assert len(wakes) == 3
    finally:
        await listener.close()
        journal.close()
        await store.close()


async def test_the_listener_comes_back_after_a_restart(postgres: PostgresServer, postgres_url: str) -> None:
    woken = asyncio.Event()
    listener = ChangeListener(asyncpg_dsn(postgres_url), "b", woken.set)
    try:
        listener.start()
        async with asyncio.timeout(10):
            await listener.connected.wait()
        woken.clear()
        await asyncio.to_thread(postgres.restart)
        async with asyncio.timeout(30):
            await woken.wait()  # it noticed, listened again, and woke the follower to read what it missed
        assert listener.connected.is_set()
        woken.clear()
        await notify(postgres_url, "c")
        async with asyncio.timeout(10):
            await woken.wait()  # listening on the new connection
    finally:
        await listener.close()
        if not postgres.running:
            postgres.start()
