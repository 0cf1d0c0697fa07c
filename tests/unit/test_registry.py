"""The controller and the registry, on a real SQLite file and on a real PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from faasd.control.controller import Controller
from faasd.core.database import database_url
from faasd.core.entities import DEFAULT_CPU_MILLIS, DEFAULT_NETWORK
from faasd.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from faasd.core.specialize import MAX_SPECIALIZE_BYTES, encode_specialization
from faasd.pool.manager import PoolManager
from faasd.store.codestore import CodeStore
from faasd.store.database import alembic_config, open_engine
from faasd.store.registry import Store
from tests.fakes import FakeBackend

HELLO = 'module.exports = function(context, callback) { callback(200, "Hello, world!\\n"); }'
STOCK = {"nodejs": "faasd/runtime-nodejs:latest", "python": "faasd/runtime-python:latest"}


class Registry:
    """Opens (and reopens) a controller on one state dir and database, as faasd does at start.

    ``database``: a URL (the ``database`` fixture: SQLite, then PostgreSQL); default the SQLite file in ``root``.
    """

    def __init__(self, root: Path, database: str = "") -> None:
        self.root = root
        self.database = database or f"sqlite:///{root / 'faasd.db'}"
        self.stores: list[Store] = []
        self.pools: list[PoolManager] = []

    async def open(self, max_code_bytes: int = 1000, keep_versions: int = 10) -> Controller:
        store = await Store.open(self.database)
        codes = CodeStore(self.root / "code", store.blobs)
        pool = PoolManager(FakeBackend(), lambda fn: codes.get(fn.code_sha256), idle_timeout=120)
        controller = Controller(
            store, codes, pool, default_poolsize=0, max_code_bytes=max_code_bytes, keep_versions=keep_versions
        )
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
async def registry(tmp_path: Path, database: str) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path, database)
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
    c = await registry.open(keep_versions=1)
    fn = await c.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    blob = registry.root / "code" / fn.code_sha256
    assert blob.read_text() == HELLO
    updated = await c.update_function("hello", {"code": HELLO + "\n// v2"})
    assert updated.revision == 2
    assert not blob.exists()  # no function and no kept version uses the old blob any more
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


# -- CPU limit and network ------------------------------------------------------


async def test_cpu_and_network_default_and_survive_a_restart(registry: Registry) -> None:
    c = await registry.open()
    plain = await c.create_function({"name": "plain", "environment": "nodejs", "code": HELLO})
    assert (plain.cpu_millis, plain.network) == (DEFAULT_CPU_MILLIS, DEFAULT_NETWORK) == (1000, "default")
    assert (plain.to_json()["cpu_millis"], plain.to_json()["network"]) == (1000, "default")
    await c.create_function(
        {"name": "boxed", "environment": "nodejs", "code": HELLO, "cpu_millis": 250, "network": "none"}
    )
    updated = await c.update_function("plain", {"cpu_millis": 2000, "network": "none"})
    assert (updated.cpu_millis, updated.network, updated.revision) == (2000, "none", 2)
    # An update that leaves them out keeps them.
    assert (await c.update_function("boxed", {"timeout": 5})).cpu_millis == 250
    reopened = await registry.open()
    boxed, plain = reopened.catalog.functions["boxed"], reopened.catalog.functions["plain"]
    assert (boxed.cpu_millis, boxed.network, boxed.timeout) == (250, "none", 5)
    assert (plain.cpu_millis, plain.network) == (2000, "none")
    reverted = await reopened.update_function("plain", {"network": "default"})
    assert (reverted.cpu_millis, reverted.network) == (2000, "default")


async def _downgrade(database: str, revision: str) -> None:
    # In a thread: on PostgreSQL alembic runs a loop of its own (migrations/env.py).
    await asyncio.to_thread(command.downgrade, alembic_config(database), revision)


async def _schema(database: str) -> dict[str, set[str]]:
    """Each table's columns."""
    engine = open_engine(database_url(database))
    try:
        async with engine.connect() as connection:

            def read(sync: object) -> dict[str, set[str]]:
                found = inspect(sync)
                return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def _function_columns(database: str) -> set[str]:
    return (await _schema(database))["functions"]


async def _columns(database: str, table: str) -> set[str]:
    return (await _schema(database))[table]


async def _tables(database: str) -> set[str]:
    return set(await _schema(database))


async def test_functions_stored_before_migration_0003_get_the_defaults(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "old", "environment": "nodejs", "code": HELLO, "memory_mb": 64})
    await registry.close()
    database = registry.database
    await _downgrade(database, "0002")
    assert not {"cpu_millis", "network"} & await _function_columns(database)

    reopened = await registry.open()  # migrates to the newest revision again
    assert {"cpu_millis", "network"} <= await _function_columns(database)
    old = reopened.catalog.functions["old"]
    assert (old.cpu_millis, old.network, old.memory_mb) == (1000, "default", 64)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu_millis", 49, "cpu_millis must be between 50 and 64000, got 49"),
        ("cpu_millis", 64001, "cpu_millis must be between 50 and 64000, got 64001"),
        ("cpu_millis", "1000", "cpu_millis must be a whole number"),
        ("cpu_millis", 1.5, "cpu_millis must be a whole number"),
        ("cpu_millis", True, "cpu_millis must be a whole number"),
        ("cpu_millis", None, "cpu_millis must be a whole number"),
        ("network", "host", "network must be one of default, none, got 'host'"),
        ("network", "", "network must be one of default, none"),
        ("network", None, "network must be one of default, none"),
        ("network", ["none"], "network must be one of default, none"),
    ],
)
async def test_bad_cpu_or_network_is_400_naming_the_field(
    registry: Registry, field: str, value: object, message: str
) -> None:
    c = await registry.open()
    with pytest.raises(BadRequest, match=re.escape(message)):
        await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO, field: value})
    await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    with pytest.raises(BadRequest, match=re.escape(message)):
        await c.update_function("f", {field: value})
    assert c.catalog.functions["f"].revision == 1


async def test_the_cpu_bounds_themselves_are_accepted(registry: Registry) -> None:
    c = await registry.open()
    low = await c.create_function({"name": "low", "environment": "nodejs", "code": HELLO, "cpu_millis": 50})
    high = await c.update_function("low", {"cpu_millis": 64000})
    assert (low.cpu_millis, high.cpu_millis) == (50, 64000)


async def test_text_with_a_lone_surrogate_is_400_not_a_crash(registry: Registry) -> None:
    c = await registry.open()
    with pytest.raises(BadRequest, match="code must be Unicode text"):
        await c.create_function({"name": "f", "environment": "nodejs", "code": "x = '\ud800'"})
    with pytest.raises(BadRequest, match="secrets value of 'K' must be Unicode text"):
        await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO, "secrets": {"K": "\udfff"}})


# -- the specialization limit: what faasd accepts, the runtimes accept -----------------


def _sent(filename: str, code: str, entrypoint: str = "", env: dict[str, str] | None = None) -> int:
    return len(encode_specialization(filename, code.encode(), entrypoint, env or {}))


def _code_of_size(total: int, filename: str, env: dict[str, str] | None = None) -> str:
    """Python source whose specialization request is exactly ``total`` bytes."""
    handler = "def main():\n    return 'ok'\n"
    padding = total - _sent(filename, "#\n" + handler, env=env)
    code = "#" + "x" * padding + "\n" + handler
    assert _sent(filename, code, env=env) == total
    return code


async def test_a_function_just_under_the_runtime_limit_is_accepted_one_byte_more_is_413(registry: Registry) -> None:
    c = await registry.open(max_code_bytes=MAX_SPECIALIZE_BYTES)
    code = _code_of_size(MAX_SPECIALIZE_BYTES, "big.py")
    fn = await c.create_function({"name": "big", "environment": "python", "code": code, "filename": "big.py"})
    assert fn.code_size == len(code) < MAX_SPECIALIZE_BYTES

    over = _code_of_size(MAX_SPECIALIZE_BYTES + 1, "big.py")
    with pytest.raises(PayloadTooLarge) as caught:
        await c.create_function({"name": "over", "environment": "python", "code": over, "filename": "big.py"})
    assert caught.value.status == 413
    assert caught.value.message == (
        "the function's code, variables and secrets come to 8,388,609 bytes as sent to the runtime; "
        "the limit is 8,388,608"
    )
    assert "over" not in c.catalog.functions
    assert sorted(p.name for p in (registry.root / "code").iterdir()) == [fn.code_sha256]


async def test_variables_and_secrets_count_towards_the_limit_on_create(registry: Registry) -> None:
    c = await registry.open(max_code_bytes=MAX_SPECIALIZE_BYTES)
    code = _code_of_size(MAX_SPECIALIZE_BYTES - 1000, "f.py")
    secrets = {"TOKEN": "s" * 2000}
    with pytest.raises(PayloadTooLarge, match=r"come to 8,389,6\d\d bytes as sent to the runtime"):
        await c.create_function({"name": "f", "environment": "python", "code": code, "secrets": secrets})
    # The code alone is within --max-code-bytes: only the whole request is too big.
    await c.create_function({"name": "f", "environment": "python", "code": code})


async def test_an_update_that_only_adds_secrets_or_variables_is_measured_with_the_code(registry: Registry) -> None:
    c = await registry.open(max_code_bytes=MAX_SPECIALIZE_BYTES)
    code = _code_of_size(MAX_SPECIALIZE_BYTES - 100, "f.py")
    created = await c.create_function({"name": "f", "environment": "python", "code": code})

    with pytest.raises(PayloadTooLarge, match="the limit is 8,388,608"):
        await c.update_function("f", {"secrets": {"API_KEY": "k" * 200}})
    with pytest.raises(PayloadTooLarge, match="the limit is 8,388,608"):
        await c.update_function("f", {"env": {"GREETING": "g" * 200}})
    with pytest.raises(PayloadTooLarge, match="the limit is 8,388,608"):
        await c.update_function("f", {"entrypoint": "m" * 120})
    assert c.catalog.functions["f"] == created

    fits = await c.update_function("f", {"secrets": {"API_KEY": "k" * 40}})
    assert fits.secrets == {"API_KEY": "k" * 40}
    assert _sent("f.py", code, env={"API_KEY": "k" * 40}) <= MAX_SPECIALIZE_BYTES
    # Smaller code makes room for what did not fit.
    small = await c.update_function("f", {"code": HELLO, "secrets": {"API_KEY": "k" * 200}})
    assert small.code_size == len(HELLO)
    reopened = await registry.open(max_code_bytes=MAX_SPECIALIZE_BYTES)
    assert reopened.catalog.functions["f"].secrets == {"API_KEY": "k" * 200}


async def test_the_code_limit_still_holds_on_its_own(registry: Registry) -> None:
    c = await registry.open(max_code_bytes=1000)
    with pytest.raises(PayloadTooLarge, match="code is 1001 bytes; the limit is 1000"):
        await c.create_function({"name": "f", "environment": "nodejs", "code": "x" * 1001})
    await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    with pytest.raises(PayloadTooLarge, match="code is 1001 bytes; the limit is 1000"):
        await c.update_function("f", {"code": "x" * 1001})


# -- packages: migration 0004 ---------------------------------------------------------------


async def test_an_install_from_before_packages_gets_the_stock_builders_once(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "old", "environment": "nodejs", "code": HELLO})
    await c.create_environment({"name": "custom", "image": "me/img:1"})
    await registry.close()
    database = registry.database
    await _downgrade(database, "0003")
    assert "builder" not in await _columns(database, "environments")
    assert "package" not in await _function_columns(database)
    assert "packages" not in await _tables(database)

    reopened = await registry.open()  # migrates to the newest revision again
    assert "packages" in await _tables(database)
    builders = {name: env.builder for name, env in reopened.catalog.environments.items()}
    assert builders == {
        "nodejs": "faasd/builder-nodejs:latest",
        "python": "faasd/builder-python:latest",
        "custom": "",
    }
    old = reopened.catalog.functions["old"]
    assert (old.package, old.code_sha256 != "", reopened.function_code("old").decode()) == ("", True, HELLO)
    assert reopened.catalog.packages == {}

    # A builder taken away afterwards stays away: the migration ran once.
    await reopened.update_environment("python", {"builder": ""})
    again = await registry.open()
    assert again.catalog.environments["python"].builder == ""


async def test_the_environment_api_fields_carry_the_builder(registry: Registry) -> None:
    c = await registry.open()
    env = await c.create_environment({"name": "py", "image": "me/py:1", "builder": "me/py-builder:1"})
    assert env.to_json()["builder"] == "me/py-builder:1"
    with pytest.raises(BadRequest, match="unknown field 'builders'"):
        await c.update_environment("py", {"builders": "x"})


async def test_a_node_cannot_overwrite_an_update_it_has_not_seen(registry: Registry) -> None:
    a = await registry.open()
    await a.create_function({"name": "f", "environment": "nodejs", "code": HELLO})
    b = await registry.open()  # another node on the same registry: it read revision 1 too
    await a.update_function("f", {"env": {"BY": "a"}})
    with pytest.raises(Conflict, match="function 'f' was changed or deleted meanwhile"):
        await b.update_function("f", {"env": {"BY": "b"}})
    assert b.catalog.functions["f"].revision == 1  # nothing changed on b either
    c = await registry.open()  # as the registry has it: a's update, and a's version alone
    assert (c.catalog.functions["f"].revision, dict(c.catalog.functions["f"].env)) == (2, {"BY": "a"})
    assert sorted(v.number for v in await registry.stores[-1].versions("f")) == [1, 2]
