"""The controller and the SQLite registry, on a real database file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faasd.control.controller import Controller
from faasd.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from faasd.pool.manager import PoolManager
from faasd.store.codestore import CodeStore
from faasd.store.registry import Store
from tests.fakes import FakeBackend

HELLO = 'module.exports = function(context, callback) { callback(200, "Hello, world!\\n"); }'
STOCK = {"nodejs": "faasd/runtime-nodejs:latest", "python": "faasd/runtime-python:latest"}


class Registry:
    """Opens (and reopens) a controller on one state dir, as faasd does at start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stores: list[Store] = []
        self.pools: list[PoolManager] = []

    async def open(self) -> Controller:
        store = await Store.open(self.root / "faasd.db")
        codes = CodeStore(self.root / "code")
        pool = PoolManager(FakeBackend(), lambda fn: codes.get(fn.code_sha256), idle_timeout=120)
        controller = Controller(store, codes, pool, default_poolsize=0, max_code_bytes=1000)
        await controller.start(STOCK, self.root / "initialized")
        self.stores.append(store)
        self.pools.append(pool)
        return controller

    async def close(self) -> None:
        for pool in self.pools:
            await pool.shutdown()
        for store in self.stores:
            await store.close()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path)
    yield reg
    await reg.close()


async def test_stock_environments_on_first_start_only(registry: Registry) -> None:
    first = await registry.open()
    assert sorted(first.catalog.environments) == ["nodejs", "python"]
    await first.delete_environment("python")
    again = await registry.open()
    assert sorted(again.catalog.environments) == ["nodejs"]


async def test_everything_survives_a_restart(registry: Registry) -> None:
    c = await registry.open()
    await c.create_environment({"name": "custom", "image": "me/img:2", "poolsize": 2})
    await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO, "timeout": 5})
    await c.create_trigger({"method": "get", "url": "/users/{id}", "function": "hello", "name": "users"})
    reopened = await registry.open()
    assert reopened.catalog.environments["custom"].poolsize == 2
    fn = reopened.catalog.functions["hello"]
    assert (fn.timeout, fn.filename, fn.revision) == (5, "hello.js", 1)
    assert reopened.function_code("hello").decode() == HELLO
    assert reopened.catalog.routes.match("GET", "/users/7").params == {"id": "7"}
    assert reopened.catalog.triggers["users"].method == "GET"


async def test_code_is_content_addressed_on_disk(registry: Registry) -> None:
    c = await registry.open()
    fn = await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    blob = registry.root / "code" / fn.code_sha256
    assert blob.read_text() == HELLO
    updated = await c.update_function("hello", {"code": HELLO + "\n// v2"})
    assert updated.revision == 2
    assert not blob.exists()  # no function uses the old blob any more
    assert [p.name for p in (registry.root / "code").iterdir()] == [updated.code_sha256]


async def test_duplicates_are_409(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    with pytest.raises(Conflict, match="function 'hello' exists"):
        await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await c.create_trigger({"method": "GET", "url": "/u/{id}", "function": "hello"})
    with pytest.raises(Conflict, match=r"route GET /u/\{name\} exists already"):
        await c.create_trigger({"method": "GET", "url": "/u/{name}", "function": "hello"})
    # Another method on the same URL is a different route.
    await c.create_trigger({"method": "POST", "url": "/u/{id}", "function": "hello"})


async def test_bad_input_names_the_field(registry: Registry) -> None:
    c = await registry.open()
    with pytest.raises(BadRequest, match="environment 'nope' does not exist"):
        await c.create_function({"name": "f", "environment": "nope", "code": HELLO})
    with pytest.raises(BadRequest, match=r"name '\.\./x' is invalid"):
        await c.create_function({"name": "../x", "environment": "nodejs", "code": HELLO})
    with pytest.raises(BadRequest, match="timeout must be between"):
        await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO, "timeout": 0})
    with pytest.raises(BadRequest, match="code is required"):
        await c.create_function({"name": "f", "environment": "nodejs"})
    with pytest.raises(BadRequest, match="unknown field 'colour'"):
        await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO, "colour": 1})
    with pytest.raises(PayloadTooLarge):
        await c.create_function({"name": "f", "environment": "nodejs", "code": "x" * 1001})
    with pytest.raises(BadRequest, match="function 'ghost' does not exist"):
        await c.create_trigger({"method": "GET", "url": "/g", "function": "ghost"})
    with pytest.raises(BadRequest, match="method 'FETCH' is invalid"):
        await c.create_trigger({"method": "FETCH", "url": "/g", "function": "ghost"})
    with pytest.raises(BadRequest, match="poolsize"):
        await c.create_environment({"name": "e", "image": "x:1", "poolsize": -1})
    with pytest.raises(BadRequest, match="image"):
        await c.create_environment({"name": "e", "image": "Not An Image"})
    with pytest.raises(BadRequest, match=r"name 'hello\\n' is invalid"):
        await c.create_function({"name": "hello\n", "environment": "nodejs", "code": HELLO})
    with pytest.raises(BadRequest, match="without NUL"):
        await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO, "env": {"A": "x\x00y"}})
    with pytest.raises(BadRequest, match="invalid segment"):
        await c.create_trigger({"method": "GET", "url": "/a%2Fb", "function": "f"})


async def test_deleting_what_is_in_use_is_refused(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await c.create_trigger({"method": "GET", "url": "/hello", "function": "hello"})
    with pytest.raises(Conflict, match="used by function"):
        await c.delete_environment("nodejs")
    with pytest.raises(Conflict, match="used by route"):
        await c.delete_function("hello")
    await c.delete_function("hello", force=True)
    assert not c.catalog.triggers
    with pytest.raises(NotFound):
        c.catalog.routes.match("GET", "/hello")
    reopened = await registry.open()
    assert "hello" not in reopened.catalog.functions
    assert not reopened.catalog.triggers


async def test_unknown_names_are_404(registry: Registry) -> None:
    c = await registry.open()
    with pytest.raises(NotFound, match="function 'x' not found"):
        await c.update_function("x", {"timeout": 3})
    with pytest.raises(NotFound, match="route 'x' not found"):
        await c.delete_trigger("x")
    with pytest.raises(NotFound, match="environment 'x' not found"):
        await c.update_environment("x", {"poolsize": 1})


async def test_a_restart_collects_code_no_function_uses(registry: Registry) -> None:
    c = await registry.open()
    fn = await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    code = registry.root / "code"
    (code / ".tmp-crashed").write_bytes(b"half a blob")
    (code / ("0" * 64)).write_bytes(b"an orphan")
    await registry.open()
    assert sorted(p.name for p in code.iterdir()) == [fn.code_sha256]
