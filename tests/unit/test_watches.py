"""faasd/events/watches.py: engine events become asynchronous calls, nothing lost and nothing twice.

The engine is a fake EventSource: objects in memory and an event log with
timeNano; ``stream(since, until)`` yields the logged events from ``since``
(to ``until``), then, live, what happens next, until a test breaks it. The
queue and the watches' rows are the real ones on a SQLite file.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from faasd.core.entities import Environment, Function
from faasd.core.errors import EngineUnavailable
from faasd.core.events import Invocation, Watch
from faasd.events import watches
from faasd.events.queue import CallQueue
from faasd.events.watches import OWNER_LABEL, Watcher, event_time
from faasd.store.events import CallFilter, InvocationStore, TriggerStore
from faasd.store.registry import Store

NS = 1_000_000_000
CREATED = datetime(2025, 12, 1, tzinfo=UTC)
BROKEN = object()


def iso(nanos: int) -> str:
    return event_time(nanos)


class FakeEngine:
    """An EventSource (faasd/engines/docker_events.py's interface) over in-memory objects and an event log."""

    def __init__(self) -> None:
        self.ns = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in watches.ACTIONS}
        self.log: list[dict[str, Any]] = []
        self.down = False
        self.slack = 0  # replays reach back this far before ``since`` (an engine with a coarse since)
        self.fail_list = 0  # the next n lists fail
        self.on_list: Callable[[], None] | None = None  # runs once, at the next list, before it is taken
        self.streams: list[tuple[int, int | None]] = []  # (since, until) of every stream opened
        self.live_streams = 0
        self._live: list[asyncio.Queue[Any]] = []

    # -- time and failures ---------------------------------------------------------------------------

    def tick(self) -> int:
        self.ns += 1_000_000  # 1 ms passes between any two things the engine does
        return self.ns

    def _reachable(self) -> None:
        if self.down:
            raise EngineUnavailable("Docker engine unreachable: fake")

    def break_streams(self) -> None:
        for queue in self._live:
            queue.put_nowait(BROKEN)

    def go_down(self) -> None:
        self.down = True
        self.break_streams()

    def come_back(self, *, lost_buffer: bool) -> None:
        """The engine is reachable again; after a restart its event buffer is empty."""
        if lost_buffer:
            self.log.clear()
        self.down = False

    # -- what happens in the engine ------------------------------------------------------------------

    def emit(
        self, kind: str, action: str, object_id: str, attributes: Mapping[str, str], *, marker: bool = False
    ) -> int:
        nanos = self.tick()
        event = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": object_id, "Attributes": dict(attributes)},
            "scope": "local",
            "time": nanos // NS,
            "timeNano": nanos,
            "marker": marker,
        }
        self.log.append(event)
        for queue in self._live:
            queue.put_nowait(event)
        return nanos

    def marker(self, kind: str = "container") -> int:
        """An event no watch delivers: once a watch's cursor reaches it, it has handled everything before."""
        return self.emit(kind, "marker", "marker", {}, marker=True)

    def _attributes(self, obj: Mapping[str, Any]) -> dict[str, str]:
        return {**_labels(obj), "name": str(obj.get("Name", "")).lstrip("/")}

    def create(self, cid: str, labels: Mapping[str, str] | None = None, *, silent: bool = False) -> dict[str, Any]:
        nanos = self.tick()
        obj = {
            "Id": cid,
            "Name": f"/{cid}-name",
            "Created": iso(nanos),
            "Config": {"Labels": dict(labels or {}), "Image": "alpine"},
            "State": {"Status": "created", "Running": False},
        }
        self.objects["container"][cid] = obj
        if not silent:
            self.emit("container", "create", cid, self._attributes(obj))
        return obj

    def start(self, cid: str) -> None:
        obj = self.objects["container"][cid]
        obj["State"] = {"Status": "running", "Running": True}
        self.emit("container", "start", cid, self._attributes(obj))

    def die(self, cid: str, code: int = 0) -> None:
        obj = self.objects["container"][cid]
        obj["State"] = {"Status": "exited", "Running": False, "ExitCode": code}
        self.emit("container", "die", cid, {**self._attributes(obj), "exitCode": str(code)})

    def rename(self, cid: str, name: str) -> None:
        obj = self.objects["container"][cid]
        old = obj["Name"]
        obj["Name"] = f"/{name}"
        self.emit("container", "rename", cid, {**self._attributes(obj), "oldName": old})

    def destroy(self, cid: str, *, silent: bool = False) -> None:
        obj = self.objects["container"].pop(cid)
        if not silent:
            self.emit("container", "destroy", cid, self._attributes(obj))

    def create_volume(self, name: str, *, silent: bool = False) -> None:
        obj = {"Name": name, "Driver": "local", "CreatedAt": iso(self.tick()), "Labels": {}, "Scope": "local"}
        self.objects["volume"][name] = obj
        if not silent:
            self.emit("volume", "create", name, {"driver": "local"})

    def remove_volume(self, name: str, *, silent: bool = False) -> None:
        del self.objects["volume"][name]
        if not silent:
            self.emit("volume", "destroy", name, {"driver": "local"})

    # -- EventSource ---------------------------------------------------------------------------------

    async def now(self) -> int:
        self._reachable()
        return self.tick()

    async def inspect(self, kind: str, object_id: str) -> dict[str, Any] | None:
        self._reachable()
        return copy.deepcopy(self.objects[kind].get(object_id))

    async def list(self, kind: str, labels: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        self._reachable()
        if self.fail_list:
            self.fail_list -= 1
            raise EngineUnavailable("Docker engine error on /containers/json: 500 fake")
        if self.on_list is not None:
            hook, self.on_list = self.on_list, None
            hook()
        return {k: copy.deepcopy(v) for k, v in self.objects[kind].items() if _fits(_labels(v), labels)}

    async def stream(
        self, kind: str, labels: Mapping[str, str], since: int, until: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self._reachable()
        self.streams.append((since, until))
        queue: asyncio.Queue[Any] = asyncio.Queue()
        past = list(self.log)
        if until is None:
            self._live.append(queue)
            self.live_streams += 1
        try:
            for event in past:
                nanos = event["timeNano"]
                if nanos >= since - self.slack and (until is None or nanos <= until) and _wanted(event, kind, labels):
                    yield copy.deepcopy(event)
            if until is not None:
                return
            while True:
                event = await queue.get()
                if event is BROKEN:
                    raise EngineUnavailable("the engine's event stream broke: fake")
                if event["timeNano"] >= since and _wanted(event, kind, labels):
                    yield copy.deepcopy(event)
        finally:
            if queue in self._live:
                self._live.remove(queue)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    config = obj.get("Config")
    found = config.get("Labels") if isinstance(config, dict) else obj.get("Labels")
    return dict(found or {})


def _fits(have: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(key in have and (not value or have[key] == value) for key, value in wanted.items())


def _wanted(event: Mapping[str, Any], kind: str, labels: Mapping[str, str]) -> bool:
    if event["marker"]:
        return event["Type"] == kind
    return event["Type"] == kind and _fits(event["Actor"]["Attributes"], labels)


# -- the harness ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    etype: str
    action: str
    object_id: str
    body: Any
    headers: dict[str, str]
    key: str
    inv: Invocation

    @property
    def what(self) -> tuple[str, str, str]:
        return (self.etype, self.action, self.object_id)


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.engine = FakeEngine()
        self.watches: dict[str, Watch] = {}
        self.functions: dict[str, Function] = {}
        self.watchers: list[Watcher] = []
        self._clock = itertools.count(1_800_000_000)
        self.store: Store
        self.triggers: TriggerStore
        self.queue: CallQueue

    async def open(self) -> None:
        self.store = await Store.open(self.root / "faasd.db")
        await self.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
        fn = Function(
            name="hello",
            environment="python",
            filename="hello.py",
            entrypoint="main",
            timeout=5,
            code_sha256="0" * 64,
            code_size=1,
            revision=1,
            created_at=CREATED,
            updated_at=CREATED,
            retries=1,
            retry_max_age=300,
        )
        await self.store.add_function(fn)
        self.functions[fn.name] = fn
        self.triggers = TriggerStore(self.store.engine)
        # A clock that moves on at every reading: the calls' created_at gives their order.
        self.queue = CallQueue(
            InvocationStore(self.store.engine), max_queued=1000, clock=lambda: float(next(self._clock))
        )
        await self.queue.start()

    async def close(self) -> None:
        for watcher in self.watchers:
            await watcher.close()
        await self.queue.close()
        await self.store.close()

    async def add_watch(self, name: str = "w", **fields: Any) -> Watch:
        watch = Watch(name=name, function="hello", type=fields.pop("type", "container"), **fields)
        await self.triggers.put_watch(watch, new=True)
        self.watches[name] = watch
        return watch

    def start(self, saved: Mapping[str, tuple[int, dict[str, Any]]] | None = None) -> Watcher:
        watcher = Watcher(lambda: self.watches, lambda: self.functions, self.engine, self.queue, self.triggers)
        self.watchers.append(watcher)
        watcher.start(saved or {})
        return watcher

    async def saved(self) -> dict[str, tuple[int, dict[str, Any]]]:
        _timers, found = await self.triggers.load()
        return {w.name: (cursor, snapshot) for w, cursor, snapshot in found}

    async def restart(self, watcher: Watcher) -> Watcher:
        """faasd stops and starts again: a new watcher from the stored cursors and snapshots."""
        await watcher.close()
        self.watchers.remove(watcher)
        return self.start(await self.saved())

    async def live(self, count: int) -> None:
        """Wait until ``count`` live streams were opened in all (a watch opens one once it has caught up)."""
        await until(lambda: self.engine.live_streams >= count)

    async def flush(self, watcher: Watcher, kind: str = "container") -> None:
        """Wait until every watch of ``watcher`` has handled every event so far."""
        mark = self.engine.marker(kind)
        await until(lambda: all(s.cursor >= mark for s in watcher.states.values() if s.watch.type == kind))
        await until(lambda: _stored_up_to(self, watcher, kind, mark))

    async def delivered(self) -> list[Delivery]:
        found = sorted(await self.queue.find(CallFilter(limit=1000)), key=lambda inv: inv.created_at)
        out = []
        for inv in found:
            headers = dict(inv.request.headers)
            out.append(
                Delivery(
                    headers["X-Faasd-Event-Type"],
                    headers["X-Faasd-Event-Action"],
                    headers["X-Faasd-Object-Id"],
                    json.loads(inv.request.body),
                    headers,
                    inv.request.idempotency_key,
                    inv,
                )
            )
        return out

    async def what(self) -> list[tuple[str, str, str]]:
        return [d.what for d in await self.delivered()]


async def _stored_up_to(h: Harness, watcher: Watcher, kind: str, mark: int) -> bool:
    saved = await h.saved()
    return all(saved[name][0] >= mark for name, s in watcher.states.items() if s.watch.type == kind)


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watches, "RETRY_FIRST", 0.005)
    monkeypatch.setattr(watches, "RETRY_MAX", 0.02)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    await harness.open()
    yield harness
    await harness.close()


OWNED = {OWNER_LABEL: "faasd"}


# -- a new watch -------------------------------------------------------------------------------------------


async def test_a_new_watch_delivers_nothing_for_what_exists(h: Harness) -> None:
    h.engine.create("a")
    h.engine.start("a")
    h.engine.create("b", {"app": "web"})
    h.engine.create("f", OWNED)
    last_before = h.engine.log[-1]["timeNano"]
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    await h.flush(watcher)
    assert await h.delivered() == []
    state = watcher.states["w"]
    assert set(state.snapshot) == {"a", "b"}  # faasd's own containers are not watched
    assert state.snapshot["a"]["State"]["Running"] is True
    # It follows the stream from the engine's now: no replay of what came before.
    assert len(h.engine.streams) == 1
    since, until_ = h.engine.streams[0]
    assert until_ is None and since > last_before
    _cursor, snapshot = (await h.saved())["w"]
    assert set(snapshot) == {"a", "b"}


async def test_container_actions_become_added_removed_and_updated(h: Harness) -> None:
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    e = h.engine
    # One at a time, so that each is inspected before the next (the watch inspects as it handles an event).
    steps: list[Callable[[], object]] = [
        lambda: e.create("c1", {"app": "web"}),
        lambda: e.start("c1"),
        lambda: e.emit("container", "exec_start: sh -c true", "c1", {}),  # not delivered
        lambda: e.emit("container", "health_status: healthy", "c1", {}),
        lambda: e.rename("c1", "renamed"),
        lambda: e.die("c1", code=3),
        lambda: e.destroy("c1"),
    ]
    for step in steps:
        step()
        await h.flush(watcher)
    delivered = await h.delivered()
    assert [d.what for d in delivered] == [
        ("added", "create", "c1"),
        ("added", "start", "c1"),
        ("updated", "health_status: healthy", "c1"),
        ("updated", "rename", "c1"),
        ("removed", "die", "c1"),
        ("removed", "destroy", "c1"),
    ]
    create, start, _health, rename, die, destroy = delivered
    # The object is the engine's inspect JSON at the event...
    assert create.body["State"]["Status"] == "created"
    assert start.body["State"]["Status"] == "running"
    assert rename.body["Name"] == "/renamed"
    assert die.body["State"] == {"Status": "exited", "Running": False, "ExitCode": 3}
    # ...and for a destroy, the last one seen (the container is gone).
    assert destroy.body == die.body
    # What the function is told.
    log = {(ev["Action"], ev["Actor"]["ID"]): ev["timeNano"] for ev in e.log}
    nanos = log[("create", "c1")]
    assert create.headers == {
        "Content-Type": "application/json",
        "X-Faasd-Watch-Name": "w",
        "X-Faasd-Event-Type": "added",
        "X-Faasd-Event-Action": "create",
        "X-Faasd-Object-Type": "container",
        "X-Faasd-Object-Id": "c1",
        "X-Faasd-Event-Time": event_time(nanos),
    }
    assert create.headers["X-Faasd-Event-Time"].startswith("2026-01-01T00:00:00.")
    assert create.key == f"watch:w:c1:added:create:{nanos}"
    req = create.inv.request
    assert (req.function, req.method, req.target, req.trigger, req.trigger_name) == (
        "hello",
        "POST",
        "/function/hello",
        "watch",
        "w",
    )
    assert (create.inv.max_attempts, create.inv.max_age) == (2, 300)  # the function's retries + 1, retry_max_age
    assert watcher.states["w"].delivered == 6
    assert "c1" not in watcher.states["w"].snapshot


def test_event_time_keeps_nanoseconds() -> None:
    assert event_time(1_767_225_600 * NS + 5) == "2026-01-01T00:00:00.000000005Z"
    assert event_time(1_767_225_661 * NS + 123_456_789) == "2026-01-01T00:01:01.123456789Z"


async def test_the_watch_events_list_filters(h: Harness) -> None:
    await h.add_watch("gone", events=("removed",))
    await h.add_watch("changes", events=("added", "updated"))
    watcher = h.start()
    await h.live(2)
    h.engine.create("c1")
    h.engine.rename("c1", "other")
    h.engine.destroy("c1")
    await h.flush(watcher)
    by_watch: dict[str, list[tuple[str, str, str]]] = {}
    for d in await h.delivered():
        by_watch.setdefault(d.headers["X-Faasd-Watch-Name"], []).append(d.what)
    assert by_watch == {
        "gone": [("removed", "destroy", "c1")],
        "changes": [("added", "create", "c1"), ("updated", "rename", "c1")],
    }


async def test_labels_choose_the_objects(h: Harness) -> None:
    await h.add_watch(labels={"app": "web"})
    watcher = h.start()
    await h.live(1)
    h.engine.create("web1", {"app": "web"})
    h.engine.create("db1", {"app": "db"})
    h.engine.destroy("db1")
    h.engine.destroy("web1")
    await h.flush(watcher)
    assert await h.what() == [("added", "create", "web1"), ("removed", "destroy", "web1")]


async def test_faasds_own_objects_only_with_include_faasd(h: Harness) -> None:
    await h.add_watch("users")
    await h.add_watch("all", include_faasd=True)
    watcher = h.start()
    await h.live(2)
    h.engine.create("pool1", OWNED)
    h.engine.create("mine")
    h.engine.destroy("pool1")
    await h.flush(watcher)
    by_watch: dict[str, list[tuple[str, str, str]]] = {}
    for d in await h.delivered():
        by_watch.setdefault(d.headers["X-Faasd-Watch-Name"], []).append(d.what)
    assert by_watch == {
        "users": [("added", "create", "mine")],
        "all": [("added", "create", "pool1"), ("added", "create", "mine"), ("removed", "destroy", "pool1")],
    }
    assert set(watcher.states["users"].snapshot) == {"mine"}
    assert set(watcher.states["all"].snapshot) == {"mine"}


# -- nothing twice, nothing lost ---------------------------------------------------------------------------


async def test_a_broken_stream_replays_without_delivering_twice(h: Harness) -> None:
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    e = h.engine
    e.create("c1")
    e.start("c1")
    await h.flush(watcher)
    assert await h.what() == [("added", "create", "c1"), ("added", "start", "c1")]
    # The stream breaks; while the watch is away c1 dies and c2 comes. The engine's
    # replay reaches back over everything (as one with a coarse ``since`` would).
    e.slack = 10**18
    e.go_down()
    e.die("c1")
    e.create("c2")
    e.come_back(lost_buffer=False)
    await h.live(2)
    await h.flush(watcher)
    e.destroy("c1")
    e.break_streams()  # and once more, live
    await h.live(3)
    await h.flush(watcher)
    assert await h.what() == [
        ("added", "create", "c1"),
        ("added", "start", "c1"),
        ("removed", "die", "c1"),
        ("added", "create", "c2"),
        ("removed", "destroy", "c1"),
    ]
    assert watcher.states["w"].delivered == 5
    assert set(watcher.states["w"].snapshot) == {"c2"}
    # The replays started where the watch had got to.
    replays = [since for since, until_ in e.streams if until_ is not None]
    assert len(replays) == 2
    assert replays == sorted(replays)


async def test_an_engine_restart_that_lost_its_events_is_reconciled_once(h: Harness) -> None:
    e = h.engine
    e.create("a")
    e.create("b")
    e.create("f", OWNED)
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    await h.flush(watcher)
    before = await h.saved()
    # The engine restarts; meanwhile b went, c and g (faasd's) came: their events are lost with its buffer.
    e.go_down()
    b = copy.deepcopy(e.objects["container"]["b"])
    e.destroy("b", silent=True)
    c = e.create("c", silent=True)
    e.create("g", OWNED, silent=True)
    e.come_back(lost_buffer=True)
    await h.live(2)
    await h.flush(watcher)
    delivered = await h.delivered()
    assert [d.what for d in delivered] == [("added", "sync", "c"), ("removed", "sync", "b")]
    added, removed = delivered
    assert added.body == c  # the object as listed now
    assert removed.body == b  # the object as last seen
    assert added.key == f"watch:w:c:added:sync:{c['Created']}"
    assert set(watcher.states["w"].snapshot) == {"a", "c"}

    # faasd restarts: the stored state already has the reconciliation; nothing again.
    watcher = await h.restart(watcher)
    await h.live(3)
    await h.flush(watcher)
    assert await h.what() == [("added", "sync", "c"), ("removed", "sync", "b")]
    assert watcher.states["w"].delivered == 0

    # Even from the state stored before the engine restart (faasd stopped before storing its
    # own): the same objects are found again, and their idempotency keys keep them from the queue.
    await watcher.close()
    h.watchers.remove(watcher)
    watcher = h.start(before)
    await h.live(4)
    await h.flush(watcher)
    assert await h.what() == [("added", "sync", "c"), ("removed", "sync", "b")]
    assert watcher.states["w"].delivered == 0
    assert set(watcher.states["w"].snapshot) == {"a", "c"}


async def test_the_cursor_and_snapshot_are_stored_and_resumed(h: Harness) -> None:
    e = h.engine
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    e.create("x")
    e.start("x")
    await h.flush(watcher)
    assert await h.what() == [("added", "create", "x"), ("added", "start", "x")]
    cursor, snapshot = (await h.saved())["w"]
    assert cursor == watcher.states["w"].cursor
    assert snapshot["x"]["State"]["Running"] is True

    # faasd stops; the engine goes on.
    await watcher.close()
    h.watchers.remove(watcher)
    e.create("y")
    e.destroy("x")
    # faasd starts again from the stored rows.
    _timers, rows = await h.triggers.load()
    ((watch, stored_cursor, stored_snapshot),) = rows
    assert (watch.name, watch.type, watch.function, watch.events) == ("w", "container", "hello", h.watches["w"].events)
    assert (stored_cursor, stored_snapshot) == (cursor, snapshot)
    watcher = h.start({watch.name: (stored_cursor, stored_snapshot)})
    await h.live(2)
    await h.flush(watcher)
    delivered = await h.delivered()
    assert [d.what for d in delivered] == [
        ("added", "create", "x"),
        ("added", "start", "x"),
        ("added", "create", "y"),
        ("removed", "destroy", "x"),
    ]
    assert delivered[-1].body["State"]["Running"] is True  # x as last seen before faasd stopped
    assert watcher.states["w"].delivered == 2
    since, until_ = e.streams[1]  # the replay began at the stored cursor
    assert since == stored_cursor and until_ is not None


async def test_a_stream_the_engine_closes_is_followed_again(h: Harness) -> None:
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    h.engine.create("c1")
    await h.flush(watcher)
    h.engine.break_streams()
    await h.live(2)
    h.engine.destroy("c1")
    await h.flush(watcher)
    assert await h.what() == [("added", "create", "c1"), ("removed", "destroy", "c1")]


# -- bugs ------------------------------------------------------------------------------------------------


async def test_a_new_watch_whose_first_listing_fails_still_delivers_nothing_for_what_exists(h: Harness) -> None:
    h.engine.create("a")
    h.engine.create("b")
    h.engine.fail_list = 1
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    await h.flush(watcher)
    assert await h.delivered() == []
    assert set(watcher.states["w"].snapshot) == {"a", "b"}


async def test_a_change_during_the_catch_up_is_delivered_once(h: Harness) -> None:
    e = h.engine
    e.create("old")
    await h.add_watch()
    watcher = h.start()
    await h.live(1)
    await h.flush(watcher)

    def meanwhile() -> None:
        e.create("new")
        e.destroy("old")

    e.on_list = meanwhile
    e.break_streams()
    await h.live(2)
    await h.flush(watcher)
    what = await h.what()
    assert len([w for w in what if w[0] == "added" and w[2] == "new"]) == 1, what
    assert len([w for w in what if w[0] == "removed" and w[2] == "old"]) == 1, what


async def test_a_volume_removed_twice_while_away_is_delivered_twice(h: Harness) -> None:
    e = h.engine
    e.create_volume("data")
    await h.add_watch("v", type="volume")
    watcher = h.start()
    await h.live(1)
    await h.flush(watcher, "volume")

    async def engine_restart_removing_data(streams: int) -> None:
        e.go_down()
        e.remove_volume("data", silent=True)
        e.come_back(lost_buffer=True)
        await h.live(streams)
        await h.flush(watcher, "volume")

    await engine_restart_removing_data(2)
    assert await h.what() == [("removed", "sync", "data")]
    e.create_volume("data")  # made again, with an event this time
    await h.flush(watcher, "volume")
    assert await h.what() == [("removed", "sync", "data"), ("added", "create", "data")]
    await engine_restart_removing_data(3)
    assert await h.what() == [("removed", "sync", "data"), ("added", "create", "data"), ("removed", "sync", "data")]
