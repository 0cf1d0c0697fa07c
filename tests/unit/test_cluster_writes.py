"""Writes through a node that has not followed another node's latest writes yet (SQLite, then PostgreSQL).

Two controllers on one registry, as two faasd processes. Node A's writes catch up first (its follower's
``catch_up`` under the write lock, as faasd wires it): they are checked against the registry as it is.
A node without that (``wired=False``) still gets a 409 from the registry itself, never a 500 or a delete
of what it did not know of.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faasd.core.errors import Conflict, NotFound
from tests.unit.test_cluster_changes import HELLO, Cluster, Node


@pytest.fixture
async def cluster(tmp_path: Path, database: str) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, database)
    yield c
    await c.close()


async def nodes(cluster: Cluster, wired: bool) -> tuple[Node, Node]:
    a = await cluster.node("a")
    b = await cluster.node("b")
    if wired:
        a.controller.catch_up_with(a.follower.catch_up)
    return a, b


both = pytest.mark.parametrize("wired", [True, False], ids=["caught-up", "registry-only"])


@both
async def test_a_function_delete_without_force_sees_a_route_another_node_made(cluster: Cluster, wired: bool) -> None:
    a, b = await nodes(cluster, wired)
    await a.controller.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    await b.follower.catch_up()
    await b.controller.create_trigger({"name": "r", "url": "/r", "function": "f"})
    async with asyncio.timeout(10):
        with pytest.raises(Conflict, match="used by route"):  # caught up: "GET /r"; the registry's: "'r'"
            await a.controller.delete_function("f")
    contents = await a.store.load()
    assert [t.name for t in contents.triggers] == ["r"] and [f.name for f in contents.functions] == ["f"]
    if wired:
        assert "r" in a.controller.catalog.triggers  # A follows what it was refused for


@both
async def test_an_environment_delete_sees_a_function_another_node_made(cluster: Cluster, wired: bool) -> None:
    a, b = await nodes(cluster, wired)
    await a.controller.create_environment({"name": "custom", "image": "me/img:1", "poolsize": 0})
    await b.follower.catch_up()
    await b.controller.create_function({"name": "g", "environment": "custom", "code": HELLO})
    async with asyncio.timeout(10):
        with pytest.raises(Conflict, match=r"used by function.*\bg\b"):
            await a.controller.delete_environment("custom")
    assert "custom" in {e.name for e in (await a.store.load()).environments}


async def test_a_route_update_keeps_what_another_node_changed(cluster: Cluster) -> None:
    a, b = await nodes(cluster, wired=True)
    await a.controller.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    await a.controller.create_trigger({"name": "r", "url": "/r", "function": "f"})
    await b.follower.catch_up()
    await b.controller.update_trigger("r", {"url": "/moved"})
    async with asyncio.timeout(10):
        changed = await a.controller.update_trigger("r", {"async": True})
    assert (changed.url, changed.is_async) == ("/moved", True)
    stored = next(t for t in (await a.store.load()).triggers if t.name == "r")
    assert (stored.url, stored.is_async) == ("/moved", True)


@both
async def test_an_update_of_a_function_another_node_deleted(cluster: Cluster, wired: bool) -> None:
    a, b = await nodes(cluster, wired)
    await a.controller.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    await b.follower.catch_up()
    await b.controller.delete_function("f")
    async with asyncio.timeout(10):
        # Caught up: it is gone (404). Not: the registry refuses the stale revision (409). Never recreated.
        with pytest.raises(NotFound if wired else Conflict):
            await a.controller.update_function("f", {"timeout": 7})
    assert (await a.store.load()).functions == []


async def test_a_route_update_of_a_route_another_node_deleted_is_not_found(cluster: Cluster) -> None:
    a, b = await nodes(cluster, wired=False)
    await a.controller.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    await a.controller.create_trigger({"name": "r", "url": "/r", "function": "f"})
    await b.follower.catch_up()
    await b.controller.delete_trigger("r")
    with pytest.raises(NotFound, match="route 'r'"):
        await a.controller.update_trigger("r", {"url": "/again"})
    assert (await a.store.load()).triggers == []


async def test_the_lock_is_reentered_by_its_holder_and_catches_up_once(cluster: Cluster) -> None:
    a, b = await nodes(cluster, wired=False)
    passes = 0

    async def catch_up() -> int:
        nonlocal passes
        passes += 1
        return await a.follower.catch_up()

    a.controller.catch_up_with(catch_up)
    await b.controller.create_environment({"name": "custom", "image": "me/img:1", "poolsize": 0})
    async with asyncio.timeout(10), a.controller.lock, a.controller.lock:
        assert "custom" in a.controller.catalog.environments
    assert passes == 1 and not a.controller.lock.locked()
