"""The change feed and the follower, on a real registry (SQLite, then PostgreSQL): two nodes in one process.

Each node is a controller of its own on the same database, as two faasd processes would be; node B's
follower is driven a pass at a time (``catch_up``) to pin its bookkeeping, and once as the task faasd runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from faasd.cluster.apply import Applier
from faasd.cluster.changes import KEEP_SECONDS, ROW_TRIES, Change, ChangeFeed, Follower
from faasd.cluster.journal import MIGRATION_LOCK, WRITE_LOCK, ChangeKind, Journal, recorded, recording
from faasd.cluster.reader import RegistryReader
from faasd.control.catalog import Catalog
from faasd.control.controller import Controller
from faasd.core.database import database_url
from faasd.core.errors import Conflict, NotFound
from faasd.events.triggers import TriggerControl
from faasd.pool.manager import PoolManager
from faasd.store.codestore import CodeStore
from faasd.store.database import migrate, open_engine
from faasd.store.events import TriggerStore
from faasd.store.labels import LabelStore
from faasd.store.models import ChangeRow
from faasd.store.registry import Store
from tests.fakes import FakeBackend

HELLO = 'module.exports = function(context, callback) { callback(200, "Hello, world!\\n"); }'
BYE = 'module.exports = function(context, callback) { callback(200, "Bye\\n"); }'
STOCK = {"nodejs": "faasd/runtime-nodejs:latest", "python": "faasd/runtime-python:latest"}


@dataclass
class Node:
    name: str
    store: Store
    journal: Journal
    controller: Controller
    pool: PoolManager
    follower: Follower
    labels: LabelStore
    applier: Applier


class Clock:
    """The followers' clock: ``time.time`` that a test moves on (nodes cut off for minutes)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


class Cluster:
    def __init__(self, root: Path, database: str) -> None:
        self.root = root
        self.database = database
        self.nodes: list[Node] = []
        self.clock = Clock()

    async def node(
        self,
        name: str,
        marker: str = "initialized",
        opened: asyncio.Event | None = None,
        go: asyncio.Event | None = None,
    ) -> Node:
        """``marker``: the first-start marker file (one each: both register the stock environments);
        ``opened`` is set once the registry is open (and migrated), then the controller's start waits for ``go``."""
        store = await Store.open(self.database)
        journal = Journal(store.engine, name)
        applied = await ChangeFeed(store.engine).last_id()
        codes = CodeStore(self.root / "code")  # the code blobs every node reads
        pool = PoolManager(FakeBackend(), lambda fn: codes.get(fn.code_sha256), idle_timeout=120)
        controller = Controller(store, codes, pool, default_poolsize=0, max_code_bytes=10000)
        labels = LabelStore(store.engine)
        applier = Applier(controller, store, RegistryReader(store.engine), labels=labels)
        follower = Follower(ChangeFeed(store.engine), applier, name, applied, poll=0.05, clock=self.clock)
        node = Node(name, store, journal, controller, pool, follower, labels, applier)
        self.nodes.append(node)
        if opened is not None and go is not None:
            opened.set()
            await go.wait()
        await controller.start(STOCK, self.root / marker)
        await labels.load()
        return node

    async def close(self) -> None:
        for node in self.nodes:
            await node.follower.close()
            node.journal.close()
            await node.pool.shutdown()
            await node.store.close()


@pytest.fixture
async def cluster(tmp_path: Path, database: str) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, database)
    yield c
    await c.close()


def routed(catalog: Catalog, method: str, path: str) -> str | None:
    """The function a call of ``method path`` goes to (None: no route)."""
    try:
        return catalog.routes.match(method, path).function
    except NotFound:
        return None


async def rows(node: Node) -> list[tuple[str, str, str]]:
    async with node.store.engine.connect() as connection:
        result = await connection.execute(select(ChangeRow.kind, ChangeRow.name, ChangeRow.node).order_by(ChangeRow.id))
        return [tuple(r) for r in result]  # type: ignore[misc]


async def test_every_write_leaves_one_row_in_its_transaction(cluster: Cluster) -> None:
    a = await cluster.node("a")
    before = await rows(a)
    assert before == [("environment", "nodejs", "a"), ("environment", "python", "a")]  # the stock ones
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await a.controller.create_trigger({"name": "r", "url": "/hello", "function": "hello"})
    await a.controller.update_function("hello", {"env": {"GREETING": "hi"}})
    await a.controller.delete_function("hello", force=True)
    assert (await rows(a))[len(before) :] == [
        ("function", "hello", "a"),
        ("route", "r", "a"),
        ("function", "hello", "a"),
        ("function", "hello", "a"),
    ]
    # A write that fails in the database leaves no row: the row was in its transaction.
    count = len(await rows(a))
    with pytest.raises(Conflict), recording(ChangeKind.environment, "nodejs"):
        await a.store.add_environment(a.controller.catalog.environments["nodejs"])
    assert len(await rows(a)) == count
    # Reads and writes outside a recording leave none either.
    await a.store.load()
    assert len(await rows(a)) == count


async def test_a_follower_applies_the_other_nodes_writes_and_skips_its_own(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")
    await a.controller.create_environment({"name": "custom", "image": "me/img:1", "poolsize": 0})
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO, "timeout": 5})
    await a.controller.create_trigger({"name": "r", "method": "GET", "url": "/users/{id}", "function": "hello"})
    await b.controller.create_function({"name": "own", "environment": "python", "code": "def main(): pass"})
    applied = await b.follower.catch_up()
    assert applied == 3  # a's three writes; b's own row is skipped
    assert b.follower.applied == await ChangeFeed(b.store.engine).last_id()
    cat = b.controller.catalog
    assert cat.environments["custom"] == a.controller.catalog.environments["custom"]
    assert cat.functions["hello"] == a.controller.catalog.functions["hello"]
    assert routed(cat, "GET", "/users/7") == "hello"
    assert b.controller.current_version("hello") == 1

    # An update: B's catalog and version index follow, and B's pool gets the new revision.
    updated = await a.controller.update_function("hello", {"code": BYE})
    await a.controller.update_trigger("r", {"url": "/people/{id}"})
    await a.controller.update_environment("custom", {"image": "me/img:2"})
    assert await b.follower.catch_up() == 3
    assert cat.functions["hello"] == updated and cat.functions["hello"].revision == 2
    assert b.controller.current_version("hello") == 2
    assert routed(cat, "GET", "/users/7") is None
    assert routed(cat, "GET", "/people/7") == "hello"
    assert cat.environments["custom"].image == "me/img:2"
    assert b.pool.function_status("hello") is not None

    # A rollback made on B is version 3 everywhere (B's index knew version 1 and 2).
    await b.controller.rollback_function("hello", 1)
    await a.follower.catch_up()
    assert a.controller.catalog.functions["hello"].code_sha256 == cat.functions["hello"].code_sha256
    assert a.controller.current_version("hello") == 3

    # A forced delete drops the routes with the function, on B too.
    await a.controller.delete_function("hello", force=True)
    await b.follower.catch_up()
    assert "hello" not in cat.functions and "r" not in cat.triggers
    assert routed(cat, "GET", "/people/7") is None
    assert b.controller.current_version("hello") == 0
    # Nothing left to apply: a pass applies nothing.
    assert await b.follower.catch_up() == 0


async def test_labels_follow(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")
    with recording(ChangeKind.labels, "environment/nodejs"):
        await a.labels.set("environment", "nodejs", {"team": "web"})
    await b.follower.catch_up()
    assert b.labels.get("environment", "nodejs") == {"team": "web"}


async def test_a_follower_behind_the_trimmed_rows_reloads_everything(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")
    await a.controller.create_function({"name": "gone", "environment": "nodejs", "code": HELLO})
    await b.follower.catch_up()
    assert "gone" in b.controller.catalog.functions
    await a.controller.delete_function("gone")
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await a.controller.create_trigger({"name": "r", "url": "/hello", "function": "hello"})
    feed = ChangeFeed(a.store.engine)
    assert await feed.trim(time.time() + 1) > 0  # every row but the newest: B never read the last three
    await a.controller.update_environment("python", {"poolsize": 1})
    assert await feed.kept_since(b.follower.applied) is False
    cluster.clock.ahead = KEEP_SECONDS  # B read everything last 10 minutes ago: cut off since
    await b.follower.catch_up()
    assert b.follower.reloads == 1
    cat = b.controller.catalog
    assert "gone" not in cat.functions
    assert cat.functions["hello"] == a.controller.catalog.functions["hello"]
    assert "r" in cat.triggers and cat.environments["python"].poolsize == 1
    assert b.follower.applied == await feed.last_id()
    # Caught up again: the next write is applied row by row.
    await a.controller.delete_trigger("r")
    await b.follower.catch_up()
    assert "r" not in cat.triggers and b.follower.reloads == 1


async def test_a_follower_that_started_on_an_empty_table_and_was_cut_off_reloads(cluster: Cluster) -> None:
    a = await cluster.node("a")
    async with a.store.engine.begin() as connection:  # every row gone (as an older faasd's trim left it)
        await connection.execute(delete(ChangeRow))
    b = await cluster.node("b")
    assert b.follower.applied == 0
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await a.controller.create_trigger({"name": "r", "url": "/hello", "function": "hello"})
    assert await ChangeFeed(a.store.engine).trim(time.time() + 1) == 1  # the function's row: B never read it
    cluster.clock.ahead = KEEP_SECONDS  # B was cut off for 10 minutes meanwhile
    await b.follower.catch_up()
    assert b.follower.reloads == 1
    assert "hello" in b.controller.catalog.functions and "r" in b.controller.catalog.triggers


async def test_a_gap_in_the_ids_soon_after_a_pass_is_the_sequence_not_a_reload(cluster: Cluster) -> None:
    """A follower that read everything a moment ago lost no row to a trim (rows are trimmed when 10
    minutes old): a gap after its row is an id a rolled-back write took. Long after, it is a reload."""
    a = await cluster.node("a")
    b = await cluster.node("b")
    await b.follower.catch_up()
    await a.controller.update_environment("python", {"poolsize": 1})
    await a.controller.create_environment({"name": "custom", "image": "me/img:1", "poolsize": 0})
    gap = (await ChangeFeed(a.store.engine).after(b.follower.applied))[0].id
    async with a.store.engine.begin() as connection:  # b's row and the next one gone: a gap after b's row
        await connection.execute(delete(ChangeRow).where(ChangeRow.id <= gap))
    assert await b.follower.catch_up() == 1
    assert b.follower.reloads == 0 and "custom" in b.controller.catalog.environments
    assert b.controller.catalog.environments["python"].poolsize != 1  # the row that is not there
    await a.controller.update_environment("python", {"poolsize": 2})
    await a.controller.update_environment("custom", {"poolsize": 1})
    gap = (await ChangeFeed(a.store.engine).after(b.follower.applied))[0].id
    async with a.store.engine.begin() as connection:
        await connection.execute(delete(ChangeRow).where(ChangeRow.id <= gap))
    cluster.clock.ahead = KEEP_SECONDS
    await b.follower.catch_up()
    assert b.follower.reloads == 1 and b.controller.catalog.environments["python"].poolsize == 2


class Poisoned(Applier):
    """The real applier, but a function named "poison" cannot be applied (a value from a newer faasd)."""

    async def apply(self, kind: str, name: str) -> None:
        if name == "poison":
            raise ValueError("'blue' is not a valid Isolation")
        await super().apply(kind, name)


async def test_a_row_that_always_fails_is_skipped_for_a_reload_and_the_follower_goes_on(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")
    applier = Poisoned(b.controller, b.store, RegistryReader(b.store.engine), labels=b.labels)
    follower = Follower(ChangeFeed(b.store.engine), applier, "b", b.follower.applied, poll=0.05)
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await a.controller.create_function({"name": "poison", "environment": "nodejs", "code": HELLO})
    await a.controller.create_function({"name": "after", "environment": "nodejs", "code": HELLO})
    for _ in range(ROW_TRIES - 1):  # tried again at every pass, as a database that does not answer
        with pytest.raises(ValueError):
            await follower.catch_up()
    assert "hello" in b.controller.catalog.functions and "poison" not in b.controller.catalog.functions
    with caplog.at_level(logging.ERROR, logger="faasd.cluster.changes"):
        await follower.catch_up()
    poison = (await ChangeFeed(b.store.engine).after(0, 10_000))[-2]
    assert poison.name == "poison"
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith(f"change {poison.id} (function 'poison' from node a) failed {ROW_TRIES} times (ValueError")
    assert follower.reloads == 1 and follower.applied == await ChangeFeed(b.store.engine).last_id()
    assert {"poison", "after"} <= set(b.controller.catalog.functions)  # the reload read them
    await a.controller.create_trigger({"name": "r", "url": "/hello", "function": "hello"})
    assert await follower.catch_up() == 1 and "r" in b.controller.catalog.triggers  # row by row again


async def test_the_writers_and_the_migration_take_different_locks(postgres_url: str) -> None:
    """An old node's write (a row, then the writers' lock) and a new node's migration (its lock, then that
    row) in a rolling upgrade: one key would make them wait for each other."""
    assert MIGRATION_LOCK != WRITE_LOCK
    await asyncio.to_thread(migrate, postgres_url)
    engine = open_engine(database_url(postgres_url))
    try:
        async with engine.connect() as writer:
            await writer.execute(text("SELECT pg_advisory_lock(:key)"), {"key": WRITE_LOCK})
            try:
                async with asyncio.timeout(30):
                    await asyncio.to_thread(migrate, postgres_url)  # at head already: it takes its lock only
            finally:
                await writer.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": WRITE_LOCK})
    finally:
        await engine.dispose()


async def test_trim_keeps_every_row_after_the_cut(cluster: Cluster) -> None:
    a = await cluster.node("a")
    feed = ChangeFeed(a.store.engine)
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    first = await feed.after(0)
    assert [c.name for c in first] == ["nodejs", "python", "hello"]
    # The oldest two are an hour old, the function's row is new.
    async with a.store.engine.begin() as connection:
        old = ChangeRow.id <= first[1].id
        await connection.execute(update(ChangeRow).where(old).values(at=time.time() - 3600))
    assert await feed.trim(time.time() - 7200) == 0  # younger than the cut: kept
    assert await feed.trim(time.time() - 600) == 2
    assert [c.name for c in await feed.after(0)] == ["hello"]
    assert await feed.kept_since(first[1].id) is False and await feed.kept_since(first[2].id) is True
    # Every row old: the newest stays, however old (the id a node that starts follows from).
    assert await feed.trim(time.time() + 1) == 0
    assert [c.name for c in await feed.after(0)] == ["hello"]
    assert await feed.last_id() == first[2].id
    # Ids go on growing (SQLite's AUTOINCREMENT, PostgreSQL's sequence).
    await a.controller.create_trigger({"name": "r", "url": "/hello", "function": "hello"})
    assert await feed.trim(time.time() + 1) == 1
    after = await feed.after(0)
    assert [c.name for c in after] == ["r"] and after[0].id > first[2].id
    async with a.store.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(ChangeRow)) == 1


async def test_the_follower_task_applies_a_change_within_a_bounded_poll(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")
    b.follower.start()
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    await passes_until(b.follower, lambda: "hello" in b.controller.catalog.functions)
    await a.controller.delete_function("hello")
    await passes_until(b.follower, lambda: "hello" not in b.controller.catalog.functions)


async def passes_until(follower: Follower, done: Callable[[], bool]) -> None:
    """Wait for the follower's passes (each sets caught_up) until ``done``; at most 10 s."""
    async with asyncio.timeout(10):
        while not done():
            follower.caught_up.clear()
            await follower.caught_up.wait()


async def test_two_nodes_started_at_once_on_a_new_registry_both_start(cluster: Cluster) -> None:
    go = asyncio.Event()
    starts = []
    for name in ("a", "b"):  # opened (and migrated) one after the other
        opened = asyncio.Event()
        starts.append(asyncio.ensure_future(cluster.node(name, f"{name}-initialized", opened, go)))
        async with asyncio.timeout(30):
            await opened.wait()
    go.set()  # both load the empty registry and register the stock environments at once
    for start in starts:
        node = await start
        await node.follower.catch_up()
        assert sorted(node.controller.catalog.environments) == ["nodejs", "python"]


async def test_concurrent_writers_never_leave_a_row_behind_a_follower(cluster: Cluster) -> None:
    """Two nodes writing at once while a third follows: it ends with every one of their writes."""
    a = await cluster.node("a")
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    b = await cluster.node("b")
    c = await cluster.node("c")
    c.follower.start()

    async def routes(node: Node) -> None:
        for i in range(15):
            await node.controller.create_trigger(
                {"name": f"{node.name}{i}", "url": f"/{node.name}/{i}", "function": "hello"}
            )

    await asyncio.gather(routes(a), routes(b))
    expected = {f"{n}{i}" for n in "ab" for i in range(15)}
    await passes_until(c.follower, lambda: expected <= set(c.controller.catalog.triggers))


class CountingFeed(ChangeFeed):
    """The real feed, counting its reads."""

    reads = 0

    async def after(self, last: int, limit: int = 500) -> list[Change]:
        self.reads += 1
        return await super().after(last, limit)


async def test_a_poll_on_sqlite_reads_only_when_the_files_changed(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        a = await cluster.node("a")
        b = await cluster.node("b")
        feed = CountingFeed(b.store.engine)
        follower = Follower(feed, b.applier, "b", b.follower.applied, poll=0.05)
        await follower.catch_up()
        reads = feed.reads
        assert await follower.catch_up(lazy=True) == 0
        assert feed.reads == reads  # nothing committed since: two stat calls, no query
        await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
        assert await follower.catch_up(lazy=True) == 1
        assert "hello" in b.controller.catalog.functions
        assert await follower.catch_up() == 0 and feed.reads > reads + 1  # not lazy: always reads
    finally:
        await cluster.close()


class Told:
    """A scheduler's ear: the names it was told changed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def changed(self, name: str) -> None:
        self.names.append(name)


async def test_timers_watches_and_mq_triggers_follow(cluster: Cluster) -> None:
    a = await cluster.node("a")
    await a.controller.create_function({"name": "hello", "environment": "nodejs", "code": HELLO})
    b = await cluster.node("b")
    ta, tb = (TriggerControl(n.controller, TriggerStore(n.store.engine)) for n in (a, b))
    timers, watches, mq = Told(), Told(), Told()
    tb.timer_listener, tb.watch_listener, tb.mq_listener = timers, watches, mq
    b.applier.triggers = tb

    body = {"name": "nightly", "function": "hello", "cron": "@every 1h"}
    await recorded(ChangeKind.timer, "nightly", ta.create_timer(body))
    await recorded(ChangeKind.watch, "w", ta.create_watch({"name": "w", "function": "hello"}))
    mq_body = {"name": "q", "function": "hello", "mqtype": "redis", "topic": "in", "connection": "redis://h:6379"}
    await recorded(ChangeKind.mqtrigger, "q", ta.create_mq(mq_body))
    await b.follower.catch_up()
    assert tb.timers["nightly"] == ta.timers["nightly"] and timers.names == ["nightly"]
    assert tb.watches["w"] == ta.watches["w"] and watches.names == ["w"]
    assert tb.mq["q"] == ta.mq["q"] and mq.names == ["q"]

    # A new tick is the scheduler's own business, not a change; a new schedule is.
    await TriggerStore(a.store.engine).set_last_tick("nightly", 123.0)
    await recorded(ChangeKind.timer, "nightly", ta.update_timer("nightly", {"cron": "@every 2h"}))
    await b.follower.catch_up()
    assert tb.timers["nightly"].cron == "@every 2h" and timers.names == ["nightly", "nightly"]

    # A forced delete of the function takes them along on b too (b's dependents forget it).
    b.controller.dependents.append(tb)
    await a.controller.delete_function("hello", force=True)
    await b.follower.catch_up()
    assert not tb.timers and not tb.watches and not tb.mq
