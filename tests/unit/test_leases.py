"""faasd/events/leases.py: several nodes on one registry, each call delivered by the one node holding it.

Two nodes here are two queues on two engines of one real database (a SQLite
file, and a real PostgreSQL: tests/postgres.py), with different node ids; the dispatchers deliver to a real HTTP server
on loopback that records every request (the pool in front of it is a stand-in
that hands out that server's address). A node "killed" stops its tasks without
releasing anything, as kill -9 would. Watches run on the fake engine of
tests/unit/test_watches.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from faasd.core.entities import Environment, Function
from faasd.core.errors import RegistryUnavailable
from faasd.core.events import Attempt, CallRequest, CallStatus, Timer, Watch
from faasd.events.delivery import Dispatcher
from faasd.events.leases import LeasePolicy
from faasd.events.queue import CallQueue
from faasd.events.tasks import stop_tasks
from faasd.events.timers import TimerScheduler
from faasd.events.watches import Watcher
from faasd.pool.manager import PoolManager
from faasd.store.events import CallFilter, InvocationStore, TriggerStore
from faasd.store.models import WatchPositionRow
from faasd.store.registry import Store
from tests.unit.test_watches import FakeEngine

CREATED = datetime(2025, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def function(name: str = "hello") -> Function:
    return Function(
        name=name,
        environment="python",
        filename="hello.py",
        entrypoint="main",
        timeout=5,
        code_sha256="0" * 64,
        code_size=1,
        revision=1,
        created_at=CREATED,
        updated_at=CREATED,
        retries=4,
        retry_max_age=600,
        concurrency=50,
        max_instances=2,
    )


def call(body: bytes = b"hi") -> CallRequest:
    return CallRequest(
        function="hello", method="POST", target="/function/hello", headers=(), body=body, trigger="async"
    )


class Recorder:
    """An HTTP server that records (call id, attempt, node's mark, when) for every request it gets.
    ``hold`` (a set of bodies) keeps those requests waiting forever, as a function mid-call would;
    ``fail_first`` (a set of bodies) answers their first attempt 503."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, float]] = []
        self.hold: set[bytes] = set()
        self.fail_first: set[bytes] = set()
        self.held = 0
        self._let_go = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        attempt = int(request.headers["X-Faasd-Attempt"])
        self.seen.append((request.headers["X-Faasd-Call-Id"], attempt, time.time()))
        if body in self.hold:
            self.held += 1
            await self._let_go.wait()
        if body in self.fail_first and attempt == 1:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(text="ok")

    def deliveries(self, call_id: str) -> int:
        return sum(1 for seen, _attempt, _at in self.seen if seen == call_id)

    async def close(self) -> None:
        self._let_go.set()
        if self._runner is not None:
            await self._runner.cleanup()


class PoolLease:
    def __init__(self, url: str) -> None:
        self.url = url

    def release(self) -> None:
        pass

    def discard(self) -> None:
        pass


class RecorderPool:
    """The pool as delivery uses it: every lease is the recorder's address."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.calls = self

    async def lease(self, fn: Function) -> PoolLease:
        return PoolLease(self._recorder.url)

    def record(self, *args: Any) -> None:
        pass


class Node:
    def __init__(self, store: Store, queue: CallQueue) -> None:
        self.store = store
        self.queue = queue
        self.dispatcher: Dispatcher | None = None
        self.session: aiohttp.ClientSession | None = None
        self.dead = False

    async def deliver_to(self, recorder: Recorder, functions: dict[str, Function], concurrency: int = 8) -> Dispatcher:
        self.session = aiohttp.ClientSession()
        pool = cast(PoolManager, RecorderPool(recorder))
        self.dispatcher = Dispatcher(self.queue, lambda: functions, pool, self.session, concurrency=concurrency)
        self.dispatcher.start()
        return self.dispatcher

    async def kill(self) -> None:
        """Stop at once, as kill -9: nothing released, calls in flight cut off and not recorded."""
        self.dead = True
        if self.dispatcher is not None:
            await self.dispatcher.close()
        queue = self.queue
        await queue.keeper.close()
        await stop_tasks([queue._janitor, queue._writer])  # no release: that is what a kill -9 skips

    async def close(self) -> None:
        if not self.dead:
            if self.dispatcher is not None:
                await self.dispatcher.close()
            await self.queue.close()
        if self.session is not None:
            await self.session.close()
        await self.store.close()


class Cluster:
    def __init__(self, database: str) -> None:
        self.database = database
        self.nodes: list[Node] = []
        self.recorder = Recorder()
        self.functions = {"hello": function()}

    async def node(
        self, name: str, *, lease: float = 30.0, poll: float = 0.05, clock: Callable[[], float] = time.time
    ) -> Node:
        store = await Store.open(self.database)
        queue = CallQueue(
            InvocationStore(store.engine),
            max_queued=10_000,
            clock=clock,
            leases=LeasePolicy(node=name, lease=lease, poll_every=poll),
        )
        await queue.start()
        node = Node(store, queue)
        self.nodes.append(node)
        return node

    async def counts(self) -> dict[str, int]:
        return await self.nodes[-1].queue.counts()

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()
        await self.recorder.close()


@pytest.fixture
async def cluster(database: str) -> AsyncIterator[Cluster]:
    """Nodes on one registry: a SQLite file, and (a second run of each test) a PostgreSQL database."""
    c = Cluster(database)
    await c.recorder.start()
    yield c
    await c.close()


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def succeeded(c: Cluster, n: int) -> bool:
    return (await c.counts()).get("succeeded", 0) == n


async def submit(queue: CallQueue, body: bytes = b"hi") -> str:
    call_id, _ = await queue.submit(call(body), max_attempts=5, max_age=600)
    return call_id


async def lease_of(node: Node, call_id: str) -> tuple[str | None, float]:
    found = await node.queue.store.get_leased(call_id)
    assert found is not None
    return found[1], found[2]


# -- claims, renewals, expiry (a fake clock) ----------------------------------------------------------


async def test_a_submitted_call_is_held_by_its_node_and_nobody_else_claims_it(cluster: Cluster) -> None:
    clock = Clock(1_800_000_000.0)
    a = await cluster.node("a", lease=30, poll=3600, clock=clock)
    b = await cluster.node("b", lease=30, poll=3600, clock=clock)
    call_id = await submit(a.queue)
    assert await lease_of(a, call_id) == ("a", clock.now + 30)
    assert call_id in a.queue.entries and call_id not in b.queue.entries
    assert await b.queue.keeper.take_free() == 0
    assert not await b.queue.claim(call_id)
    # Past a's lease (a stopped renewing): b's claim wins, once; a's claim now fails.
    clock.now += 31
    assert await b.queue.keeper.take_free() == 1
    assert call_id in b.queue.entries
    assert await lease_of(b, call_id) == ("b", clock.now + 30)
    assert not await a.queue.claim(call_id)
    assert await b.queue.keeper.take_free() == 0


async def test_renewal_keeps_a_live_nodes_calls(cluster: Cluster) -> None:
    clock = Clock(1_800_000_000.0)
    a = await cluster.node("a", lease=3, poll=3600, clock=clock)
    b = await cluster.node("b", lease=3, poll=3600, clock=clock)
    ids = [await submit(a.queue) for _ in range(5)]
    renewed = a.queue.keeper.renewed_at
    clock.now += 2.5
    await until(lambda: a.queue.keeper.renewed_at > renewed)  # every lease / 3 = 1 s of the loop's time
    clock.now += 2.0  # past the first lease, within the renewed one
    assert await b.queue.keeper.take_free() == 0
    assert {(await lease_of(a, i))[0] for i in ids} == {"a"}


async def test_a_call_left_running_by_a_dead_node_is_queued_again_by_the_node_that_takes_it(cluster: Cluster) -> None:
    clock = Clock(1_800_000_000.0)
    a = await cluster.node("a", lease=30, poll=3600, clock=clock)
    b = await cluster.node("b", lease=30, poll=3600, clock=clock)
    call_id = await submit(a.queue)
    entry = a.queue.pop_due(clock.now)
    assert entry is not None
    inv = await a.queue.get(call_id)
    running = replace(inv, status=CallStatus.running, attempts=(Attempt(1, clock.now),))
    assert await a.queue.record(running)
    await a.kill()
    clock.now += 31
    assert await b.queue.keeper.take_free() == 1
    taken = await b.queue.get(call_id)
    assert taken.status == CallStatus.queued
    assert len(taken.attempts) == 1  # the cut-off attempt counts, as after a restart
    assert b.queue.pop_due(clock.now) is not None


async def test_a_node_that_stalled_past_its_lease_cannot_overwrite_the_new_holder(cluster: Cluster) -> None:
    clock = Clock(1_800_000_000.0)
    a = await cluster.node("a", lease=30, poll=3600, clock=clock)
    b = await cluster.node("b", lease=30, poll=3600, clock=clock)
    call_id = await submit(a.queue)
    assert a.queue.pop_due(clock.now) is not None
    stale = await a.queue.get(call_id)
    clock.now += 31  # a stalls (no renewal) while b takes the call and delivers it
    assert await b.queue.keeper.take_free() == 1
    assert b.queue.pop_due(clock.now) is not None
    done = replace(
        await b.queue.get(call_id), status=CallStatus.succeeded, attempts=(Attempt(1, clock.now, clock.now, 200),)
    )
    assert await b.queue.record(done)
    # a wakes up and reports its own attempt as failed, to be retried: not recorded, and forgotten.
    retry = replace(
        stale, status=CallStatus.queued, next_at=clock.now + 1, attempts=(Attempt(1, clock.now, clock.now, 500),)
    )
    assert not await a.queue.record(retry)
    assert call_id not in a.queue.entries
    assert (await b.queue.get(call_id)).status == CallStatus.succeeded


async def test_a_retry_is_released_and_a_stopping_node_releases_what_it_holds(cluster: Cluster) -> None:
    clock = Clock(1_800_000_000.0)
    a = await cluster.node("a", lease=30, poll=3600, clock=clock)
    b = await cluster.node("b", lease=30, poll=3600, clock=clock)
    retried, kept = await submit(a.queue), await submit(a.queue)
    assert a.queue.pop_due(clock.now) is not None
    inv = await a.queue.get(retried)
    failed = (Attempt(1, clock.now, clock.now, 503),)
    assert await a.queue.record(replace(inv, status=CallStatus.queued, next_at=clock.now + 5, attempts=failed))
    assert await lease_of(a, retried) == (None, 0.0)
    assert await b.queue.keeper.take_free() == 0  # not due yet
    clock.now += 5
    assert await b.queue.keeper.take_free() == 1  # due and free: any node may take it
    assert retried in b.queue.entries
    # a stops cleanly: the call it still holds is free at once, not after its lease.
    await a.queue.close()
    a.dead = True
    assert await lease_of(b, kept) == (None, 0.0)
    assert await b.queue.keeper.take_free() == 1
    assert set(b.queue.entries) == {retried, kept}


# -- delivery by two nodes (the real clock, a real HTTP server) ---------------------------------------


async def test_calls_submitted_through_two_nodes_are_each_delivered_once(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")
    cluster.recorder.fail_first = {b"retry-%d" % i for i in range(10)}  # these are released, then retried
    await a.deliver_to(cluster.recorder, cluster.functions)
    await b.deliver_to(cluster.recorder, cluster.functions)
    bodies = [b"retry-%d" % i if i < 10 else b"call-%d" % i for i in range(100)]
    ids = await asyncio.gather(*(submit(a.queue if i % 2 else b.queue, body) for i, body in enumerate(bodies)))
    await until(lambda: succeeded(cluster, 100), within=30)
    attempts = [(call_id, attempt) for call_id, attempt, _at in cluster.recorder.seen]
    assert len(attempts) == len(set(attempts)) == 110  # each attempt of each call once, from one node
    for i, call_id in enumerate(ids):
        assert cluster.recorder.deliveries(call_id) == (2 if i < 10 else 1)
    assert not a.queue.entries and not b.queue.entries


async def test_a_dead_nodes_calls_are_taken_over_after_its_lease_ran_out(cluster: Cluster) -> None:
    a = await cluster.node("a", lease=1.5)
    b = await cluster.node("b", lease=1.5)
    held = {b"held-%d" % i for i in range(4)}
    cluster.recorder.hold = held
    await a.deliver_to(cluster.recorder, cluster.functions, concurrency=4)
    ids = [await submit(a.queue, body) for body in sorted(held)]  # running at a when it dies
    await until(lambda: cluster.recorder.held == 4)
    ids += [await submit(a.queue, b"queued-%d" % i) for i in range(20)]  # waiting at a (all 4 slots taken)
    await asyncio.sleep(0.6)  # a renews its leases (every 0.5 s) at least once
    await a.kill()
    killed = time.time()
    leases = [await lease_of(b, call_id) for call_id in ids]
    assert {owner for owner, _ in leases} == {"a"}
    cluster.recorder.hold = set()
    await b.deliver_to(cluster.recorder, cluster.functions)
    await until(lambda: succeeded(cluster, 24), within=20)
    late = []
    for call_id, (_owner, expiry) in zip(ids, leases, strict=True):
        done = await b.queue.get(call_id)
        assert done.status == CallStatus.succeeded
        by_b = [at for seen, _attempt, at in cluster.recorder.seen if seen == call_id and at >= killed]
        assert len(by_b) == 1
        assert by_b[0] >= expiry - 0.01  # never while a's lease held (one clock)
        late.append(by_b[0] - expiry)
    print(f"takeover after the lease ran out: {min(late):.3f} s to {max(late):.3f} s")
    for call_id in ids[:4]:
        assert [attempt for seen, attempt, _at in cluster.recorder.seen if seen == call_id] == [1, 2]
    for call_id in ids[4:]:
        assert [attempt for seen, attempt, _at in cluster.recorder.seen if seen == call_id] == [1]


# -- timers: one tick, one call, whichever node makes it -----------------------------------------------


def utc(hour: int, minute: int, second: float = 0.0) -> float:
    return datetime(2026, 1, 1, hour, minute, tzinfo=UTC).timestamp() + second


async def test_a_tick_is_made_once_by_two_schedulers(cluster: Cluster) -> None:
    clock = Clock(utc(0, 17, 30))
    a = await cluster.node("a", poll=3600, clock=clock)
    b = await cluster.node("b", poll=3600, clock=clock)
    await a.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
    await a.store.add_function(cluster.functions["hello"])
    triggers = TriggerStore(a.store.engine)
    timer = Timer(
        name="t",
        function="hello",
        cron="*/5 * * * *",
        timezone="UTC",
        method="POST",
        subpath="",
        overlap="allow",
        catch_up="once",
        created_at=CREATED,
        updated_at=CREATED,
        last_tick=None,
    )
    await triggers.put_timer(timer, new=True)
    timers = {"t": timer}
    made: list[tuple[str, float]] = []
    schedulers = [
        TimerScheduler(
            lambda: timers,
            lambda: cluster.functions,
            node.queue,
            TriggerStore(node.store.engine),
            lambda name, tick: made.append((name, tick)),
            clock=clock,
        )
        for node in (a, b)
    ]
    for scheduler in schedulers:
        scheduler.start()
    try:
        for n, minute in enumerate((20, 25, 30), start=1):
            clock.now = utc(0, minute, 0.1)
            for scheduler in schedulers:
                scheduler.changed("no-such-timer")  # wake both at once
            await until(lambda n=n: len(made) == 2 * n)  # type: ignore[misc]
            await until(lambda n=n: _calls(cluster, n))  # type: ignore[misc]
        calls = await a.queue.find(CallFilter(limit=100))
        times = sorted(dict(inv.request.headers)["X-Faasd-Scheduled-Time"] for inv in calls)
        assert times == ["2026-01-01T00:20:00.000Z", "2026-01-01T00:25:00.000Z", "2026-01-01T00:30:00.000Z"]
        assert sum(s.ticks["t"][0] for s in schedulers) == 3  # made: once per tick, by one or the other
        stored, _watches = await triggers.load()
        assert stored[0].last_tick == utc(0, 30)
        # overlap forbid sees the other node's unfinished call: the next tick is skipped by both.
        timers["t"] = replace(timer, overlap="forbid")
        clock.now = utc(0, 35, 0.1)
        for scheduler in schedulers:
            scheduler.changed("no-such-timer")
        await until(lambda: len(made) == 8)
        await until(lambda: sum(s.skipped for s in schedulers) == 1)
        assert len(await a.queue.find(CallFilter(limit=100))) == 3
    finally:
        for scheduler in schedulers:
            with contextlib.suppress(Exception):
                await scheduler.close()


async def _calls(cluster: Cluster, n: int) -> bool:
    return len(await cluster.nodes[0].queue.find(CallFilter(limit=100))) == n


# -- watches: each node follows its own engine, from a position of its own ------------------------------


async def test_each_node_keeps_its_own_watch_position_and_an_old_one_goes_to_the_first_node(
    cluster: Cluster,
) -> None:
    a = await cluster.node("a", poll=3600)
    b = await cluster.node("b", poll=3600)
    await a.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
    await a.store.add_function(cluster.functions["hello"])
    at_a, at_b = TriggerStore(a.store.engine, node="a"), TriggerStore(b.store.engine, node="b")
    await at_a.put_watch(Watch(name="w", function="hello", type="container"), new=True)
    # A position from before nodes (migration 0015 keeps it under node ''): the first node to start takes it.
    async with a.queue.store.begin() as session:
        await session.execute(
            insert(WatchPositionRow).values(watch="w", node="", cursor=123, snapshot_json='{"x": {"Id": "x"}}')
        )
    assert await positions(at_a) == {"w": (123, {"x": {"Id": "x"}})}
    assert await positions(at_b) == {"w": (0, {})}  # b starts from now on its own engine
    await at_b.set_watch_state("w", 456, {"y": {"Id": "y"}})
    await at_a.set_watch_cursor("w", 124)
    assert await positions(at_a) == {"w": (124, {"x": {"Id": "x"}})}
    assert await positions(at_b) == {"w": (456, {"y": {"Id": "y"}})}
    # What the watch follows changed: every node starts again from now.
    await at_a.put_watch(
        Watch(name="w", function="hello", type="container", labels={"app": "web"}), new=False, restart=True
    )
    assert await positions(at_a) == {"w": (0, {})} and await positions(at_b) == {"w": (0, {})}
    # A position is never written for a watch that is gone.
    await at_a.delete_watch("w")
    await at_b.set_watch_cursor("w", 789)
    await at_b.put_watch(Watch(name="w", function="hello", type="container"), new=True)
    assert await positions(at_b) == {"w": (0, {})}


async def positions(triggers: TriggerStore) -> dict[str, tuple[int, dict[str, Any]]]:
    _timers, found = await triggers.load()
    return {w.name: (cursor, snapshot) for w, cursor, snapshot in found}


async def test_two_nodes_watching_one_engine_deliver_an_event_once(cluster: Cluster) -> None:
    a = await cluster.node("a", poll=3600)
    b = await cluster.node("b", poll=3600)
    await a.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
    await a.store.add_function(cluster.functions["hello"])
    engine = FakeEngine()  # nodes on one machine: one engine, the same events for both
    watch = Watch(name="w", function="hello", type="container")
    await TriggerStore(a.store.engine, node="a").put_watch(watch, new=True)
    watchers = [
        Watcher(
            lambda: {"w": watch},
            lambda: cluster.functions,
            engine,
            node.queue,
            TriggerStore(node.store.engine, node=name),
        )
        for name, node in (("a", a), ("b", b))
    ]
    for watcher in watchers:
        watcher.start({})
    try:
        await until(lambda: engine.live_streams >= 2)
        engine.create("x")
        engine.start("x")
        mark = engine.marker()
        await until(lambda: all(w.states["w"].cursor >= mark for w in watchers))
        calls = await a.queue.find(CallFilter(limit=100))
        events = sorted(dict(inv.request.headers)["X-Faasd-Event-Action"] for inv in calls)
        assert events == ["create", "start"]  # each event once, whichever node queued it
        assert sum(w.states["w"].delivered for w in watchers) == 2
    finally:
        for watcher in watchers:
            await watcher.close()


async def test_a_database_away_is_logged_once_and_its_return_once(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    a = await cluster.node("a", poll=0.01)
    store = a.queue.store
    real = store.claimable
    failures = 5

    async def away(now: float, limit: int) -> list[Any]:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("SELECT", {}, Exception("unable to open database file"))
        return await real(now, limit)

    store.claimable = away  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="faasd.events.leases"):
        await until(lambda: failures == 0 and "works again" in caplog.text)
    messages = [r.getMessage() for r in caplog.records if r.name == "faasd.events.leases"]
    assert messages == [
        "looking for asynchronous calls that no node holds failed; trying again (logged once until it works)",
        "looking for asynchronous calls that no node holds works again",
    ]


# -- the database away, a commit whose outcome a node did not see, a timer edited on another node ------------


@contextlib.contextmanager
def database_away(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[None]:
    """PostgreSQL stopped; a SQLite file locked by another process (held past the 5 s busy timeout)."""
    if cluster.database.startswith("sqlite"):
        locker = sqlite3.connect(cluster.database.removeprefix("sqlite:///"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    server = request.getfixturevalue("postgres")
    server.stop()
    try:
        yield
    finally:
        server.start()


async def test_a_batch_with_the_database_away_fails_every_waiter_at_once(
    cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    a = await cluster.node("a", poll=3600)
    await submit(a.queue)  # the connection is open (PostgreSQL: in the pool)
    with database_away(cluster, request):
        began = time.monotonic()
        results = await asyncio.gather(*(submit(a.queue, b"%d" % i) for i in range(50)), return_exceptions=True)
        took = time.monotonic() - began
    assert all(isinstance(r, RegistryUnavailable) for r in results), results
    assert took < 12, f"{took:.1f} s: one busy timeout (5 s) at most, not one per call"
    assert a.queue.depth == 1
    # The database back: submits work again.
    await submit(a.queue)
    assert a.queue.depth == 2 and len(await a.queue.find(CallFilter())) == 2


async def test_a_submit_waits_for_its_commit_a_bounded_time(cluster: Cluster) -> None:
    a = await cluster.node("a", poll=3600)
    a.queue.submit_timeout = 0.3
    store = a.queue.store
    real = store.begin
    answer = asyncio.Event()

    @contextlib.asynccontextmanager
    async def blackholed() -> AsyncIterator[Any]:  # a database that does not answer (until told to)
        await answer.wait()
        async with real() as session:
            yield session

    store.begin = blackholed  # type: ignore[method-assign]
    first = asyncio.ensure_future(submit(a.queue, b"first"))
    await asyncio.sleep(0.05)  # its batch is under way: the next one waits behind it
    began = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="not stored"):
        await submit(a.queue, b"behind")
    assert time.monotonic() - began < 1
    with pytest.raises(RegistryUnavailable, match="may be stored"):
        await first
    answer.set()  # the first commit goes through after all: that call is indexed and delivered; the other was withdrawn
    await until(lambda: len(a.queue.entries) == 1)
    (stored,) = await a.queue.find(CallFilter())
    assert stored.request.body == b"first" and stored.id in a.queue.entries
    assert a.queue.depth == 1


async def test_a_call_committed_though_its_node_saw_an_error_is_taken_up_by_it(cluster: Cluster) -> None:
    a = await cluster.node("a", poll=3600)
    b = await cluster.node("b", poll=3600)
    store = a.queue.store
    real = store.begin
    lost = 1

    @contextlib.asynccontextmanager
    async def commit_then_lose_the_answer() -> AsyncIterator[Any]:
        nonlocal lost
        async with real() as session:
            yield session
        if lost:
            lost -= 1
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset by peer"))

    store.begin = commit_then_lose_the_answer  # type: ignore[method-assign]
    with pytest.raises(RegistryUnavailable):
        await submit(a.queue)
    (orphan,) = await b.queue.find(CallFilter())
    owner, until_ = await lease_of(a, orphan.id)
    assert owner == "a" and until_ > time.time() + 20
    assert orphan.id not in a.queue.entries  # its renewals would keep it from every node
    assert await b.queue.keeper.take_free() == 0
    assert await a.queue.keeper.take_free() == 1
    assert orphan.id in a.queue.entries
    assert await a.queue.keeper.take_free() == 0


async def test_an_orphan_found_by_a_renewal_is_taken_up(cluster: Cluster) -> None:
    a = await cluster.node("a", lease=0.6, poll=0.05)
    b = await cluster.node("b", poll=3600)
    orphan = replace(await b.queue.get(await submit(b.queue)), id="orphan")
    async with b.queue.store.begin() as session:  # held by a, which does not know it (no failure a saw)
        await b.queue.store.insert(session, orphan, ("a", time.time() + 30))
    await until(lambda: "orphan" in a.queue.entries)


async def test_a_timer_update_does_not_move_its_last_tick(cluster: Cluster) -> None:
    a = await cluster.node("a", poll=3600)
    b = await cluster.node("b", poll=3600)
    await a.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
    await a.store.add_function(cluster.functions["hello"])
    at_a, at_b = TriggerStore(a.store.engine), TriggerStore(b.store.engine)
    timer = tick_timer(last_tick=utc(0, 15))
    await at_a.put_timer(timer, new=True)
    async with b.queue.store.begin() as session:
        assert await at_b.claim_tick(session, "t", utc(0, 20))  # b makes 00:20
    # a, which knows 00:15 as the last tick, changes the timer meanwhile.
    await at_a.put_timer(replace(timer, cron="*/10 * * * *", updated_at=datetime.now(UTC)), new=False)
    stored, _watches = await at_a.load()
    assert (stored[0].cron, stored[0].last_tick) == ("*/10 * * * *", utc(0, 20))
    async with a.queue.store.begin() as session:
        assert not await at_a.claim_tick(session, "t", utc(0, 20))  # made once, by b


async def test_a_node_that_does_not_know_the_function_leaves_the_tick_to_the_other(cluster: Cluster) -> None:
    clock = Clock(utc(0, 17, 30))
    a = await cluster.node("a", poll=3600, clock=clock)
    b = await cluster.node("b", poll=3600, clock=clock)
    await a.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
    await a.store.add_function(cluster.functions["hello"])
    triggers = TriggerStore(a.store.engine)
    timer = tick_timer()
    await triggers.put_timer(timer, new=True)
    lagging: dict[str, Function] = {}  # a's catalog has not caught up with the function yet
    schedulers = [
        TimerScheduler(
            lambda: {"t": timer},
            lambda functions=functions: functions,  # type: ignore[misc]
            node.queue,
            TriggerStore(node.store.engine),
            lambda *_: None,
            clock=clock,
        )
        for node, functions in ((a, lagging), (b, cluster.functions))
    ]
    for scheduler in schedulers:
        scheduler.start()
    at_a, at_b = schedulers
    await asyncio.sleep(0.05)  # both asleep until 00:20 (by the clock they read at start)
    try:
        clock.now = utc(0, 20, 0.1)
        at_a.changed("no-such-timer")  # a first
        await until(lambda: at_a.ticks.get("t", [0, 0])[1] == 1)
        stored, _watches = await triggers.load()
        assert stored[0].last_tick is None  # not taken
        at_b.changed("no-such-timer")
        await until(lambda: _calls(cluster, 1))
        (made,) = await a.queue.find(CallFilter())
        assert dict(made.request.headers)["X-Faasd-Scheduled-Time"] == "2026-01-01T00:20:00.000Z"
        assert at_b.ticks["t"][0] == 1
        stored, _watches = await triggers.load()
        assert stored[0].last_tick == utc(0, 20)
    finally:
        for scheduler in schedulers:
            with contextlib.suppress(Exception):
                await scheduler.close()


def tick_timer(**fields: Any) -> Timer:
    values: dict[str, Any] = {
        "function": "hello",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "method": "POST",
        "subpath": "",
        "overlap": "allow",
        "catch_up": "once",
        "created_at": CREATED,
        "updated_at": CREATED,
        "last_tick": None,
        **fields,
    }
    return Timer(name="t", **values)
