"""Watch triggers: every engine event on a matching object becomes an asynchronous call.

Each watch has a task that follows the engine's event stream for its object
type and labels. The function gets a POST whose body is the object as the
engine's inspect JSON (for a removal, the last one seen) and, in faasd's
headers (the request's context in the runtimes): the event type (added,
removed, updated), the engine's action, the object type and id, and the
engine's event time.

Nothing lost, nothing twice. A watch keeps a cursor (the engine time of the
last event it handled) and a snapshot of the matching objects, both stored.
After a broken stream, an engine restart or a faasd restart it:

1. replays the engine's events from the cursor up to now;
2. lists the matching objects and compares them with the snapshot: an object
   that appeared or went without an event (the engine's event buffer does not
   survive its restart) is delivered as ``added`` or ``removed`` (action
   ``sync``);
3. follows the live stream from where the replay stopped.

Every delivery carries an idempotency key made of (watch, object, action,
event time), so an event replayed twice is queued once. A new watch starts
from now: objects that exist already are not delivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from faasd.core.entities import Function
from faasd.core.errors import EngineUnavailable, FaasdError
from faasd.core.events import CallRequest, Watch
from faasd.events.queue import CallQueue
from faasd.events.tasks import stop_tasks
from faasd.store.events import TriggerStore

log = logging.getLogger(__name__)

OWNER_LABEL = "faasd.owner"
MANAGED_LABEL = "faasd.managed"
RETRY_FIRST, RETRY_MAX = 0.5, 5.0

# The engine's actions and the event type each is delivered as; others are not delivered.
ACTIONS: dict[str, dict[str, str]] = {
    "container": {
        "create": "added",
        "start": "added",
        "die": "removed",
        "destroy": "removed",
        "rename": "updated",
        "update": "updated",
        "health_status": "updated",
        "pause": "updated",
        "unpause": "updated",
    },
    "network": {"create": "added", "destroy": "removed", "connect": "updated", "disconnect": "updated"},
    "volume": {"create": "added", "destroy": "removed", "mount": "updated", "unmount": "updated"},
    "image": {
        "pull": "added",
        "import": "added",
        "load": "added",
        "delete": "removed",
        "tag": "updated",
        "untag": "updated",
    },
}


def event_type(kind: str, action: str) -> str | None:
    """``health_status: healthy`` is ``health_status``; exec_start: ... and the like are not delivered."""
    return ACTIONS.get(kind, {}).get(action.split(":", 1)[0].strip())


def event_time(nanos: int) -> str:
    whole = datetime.fromtimestamp(nanos // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{nanos % 1_000_000_000:09d}Z"


class EventSource(Protocol):
    """The engine as a watch sees it (faasd/engines/docker_events.py)."""

    async def now(self) -> int: ...
    async def inspect(self, kind: str, object_id: str) -> dict[str, Any] | None: ...
    async def list(self, kind: str, labels: Mapping[str, str]) -> dict[str, dict[str, Any]]: ...
    def stream(
        self, kind: str, labels: Mapping[str, str], since: int, until: int | None = None
    ) -> AsyncIterator[dict[str, Any]]: ...


def _created(obj: Mapping[str, Any]) -> str:
    """When the object was made, as the engine says: with its id, it names one life of a reused id."""
    return str(obj.get("Created") or obj.get("CreatedAt") or "")


def _labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    config = obj.get("Config")
    labels = config.get("Labels") if isinstance(config, dict) else obj.get("Labels")
    return labels if isinstance(labels, dict) else {}


@dataclass
class WatchState:
    watch: Watch
    cursor: int = 0  # engine time (ns) of the last event handled; 0: not started yet
    snapshot: dict[str, dict[str, Any]] = field(default_factory=dict)
    connected: bool = False
    delivered: int = 0
    task: asyncio.Task[None] | None = None


class Watcher:
    def __init__(
        self,
        watches: Callable[[], Mapping[str, Watch]],
        functions: Callable[[], Mapping[str, Function]],
        source: EventSource,
        queue: CallQueue,
        store: TriggerStore,
    ) -> None:
        self._watches = watches
        self._functions = functions
        self._source = source
        self._queue = queue
        self._store = store
        self.states: dict[str, WatchState] = {}

    def start(self, saved: Mapping[str, tuple[int, dict[str, Any]]]) -> None:
        """Follow every watch, from its stored cursor and snapshot."""
        for name, watch in self._watches().items():
            cursor, snapshot = saved.get(name, (0, {}))
            self._follow(WatchState(watch, cursor, dict(snapshot)))

    async def close(self) -> None:
        await stop_tasks(s.task for s in self.states.values())

    def changed(self, name: str) -> None:
        """A watch was created, updated or deleted: its task starts again (from scratch when new)."""
        old = self.states.pop(name, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        watch = self._watches().get(name)
        if watch is None:
            return
        same = (watch.type, dict(watch.labels), watch.include_faasd)
        if old is not None and (old.watch.type, dict(old.watch.labels), old.watch.include_faasd) == same:
            self._follow(WatchState(watch, old.cursor, old.snapshot))
        else:
            self._follow(WatchState(watch))

    def _follow(self, state: WatchState) -> None:
        self.states[state.watch.name] = state
        state.task = asyncio.get_running_loop().create_task(self._run(state), name=f"faasd-watch-{state.watch.name}")

    # -- one watch -------------------------------------------------------------

    def _matches(self, state: WatchState, obj: Mapping[str, Any]) -> bool:
        """faasd's own objects (its containers, its network) are left out unless the watch asks for them."""
        labels = _labels_of(obj)
        return state.watch.include_faasd or (OWNER_LABEL not in labels and MANAGED_LABEL not in labels)

    async def _run(self, state: WatchState) -> None:
        watch = state.watch
        wait = RETRY_FIRST
        while True:
            try:
                if state.cursor == 0:
                    start = await self._source.now()
                    listed = await self._source.list(watch.type, watch.labels)
                    state.snapshot = {k: v for k, v in listed.items() if self._matches(state, v)}
                    state.cursor = start
                    await self._save(state)
                else:
                    await self._catch_up(state)
                state.connected = True
                wait = RETRY_FIRST
                async for event in self._source.stream(watch.type, watch.labels, since=state.cursor):
                    await self._handle(state, event)
                log.info("watch %s: the engine closed its event stream; following it again", watch.name)
            except EngineUnavailable as exc:
                if state.connected:
                    log.warning("watch %s: %s; retrying", watch.name, exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch %s failed; retrying", watch.name)
            state.connected = False
            await asyncio.sleep(wait)
            wait = min(RETRY_MAX, wait * 2)

    async def _catch_up(self, state: WatchState) -> None:
        """Replay from the cursor, then deliver what changed without an event (an engine restart)."""
        watch = state.watch
        # The listing first, then the time: whatever changes after the listing is in the replay
        # or the live stream, and an object with an event in the replay is not reconciled.
        listed = await self._source.list(watch.type, watch.labels)
        current = {k: v for k, v in listed.items() if self._matches(state, v)}
        until = await self._source.now()
        before = dict(state.snapshot)
        touched: set[str] = set()
        async for event in self._source.stream(watch.type, watch.labels, since=state.cursor, until=until):
            object_id = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
            touched.add(object_id)
            await self._handle(state, event)
        for object_id in sorted(current.keys() - before.keys() - touched):
            obj = current[object_id]
            await self._deliver(state, "added", "sync", object_id, obj, until, key_time=_created(obj))
            state.snapshot[object_id] = obj
        for object_id in sorted(before.keys() - current.keys() - touched):
            obj = before[object_id]
            await self._deliver(state, "removed", "sync", object_id, obj, until, key_time=_created(obj))
            state.snapshot.pop(object_id, None)
        state.cursor = max(state.cursor, until)
        await self._save(state)

    async def _handle(self, state: WatchState, event: Mapping[str, Any]) -> None:
        actor = event.get("Actor") or {}
        object_id = str(actor.get("ID") or event.get("id") or "")
        action = str(event.get("Action") or event.get("status") or "")
        nanos = int(event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000)
        attributes = actor.get("Attributes") or {}
        if not object_id or (not state.watch.include_faasd and OWNER_LABEL in attributes):
            return
        kind = state.watch.type
        etype = event_type(kind, action)
        if etype is None:  # exec_start, kill, attach...: nothing to deliver, nothing to look up
            state.cursor = max(state.cursor, nanos)
            await self._store.set_watch_cursor(state.watch.name, state.cursor)
            return
        if etype == "removed" and not action.startswith("die"):
            obj = state.snapshot.pop(object_id, None) or {"Id": object_id, "Attributes": attributes}
        else:
            found = await self._source.inspect(kind, object_id) or state.snapshot.get(object_id)
            obj = {"Id": object_id, "Attributes": attributes} if found is None else found
            if found is not None and not self._matches(state, found):
                state.cursor = max(state.cursor, nanos)
                await self._store.set_watch_cursor(state.watch.name, state.cursor)
                return  # faasd's own (its network's events carry no labels)
            if found is not None and (etype != "removed" or kind == "container"):
                state.snapshot[object_id] = obj
        await self._deliver(state, etype, action, object_id, obj, nanos, key_time=str(nanos))
        state.cursor = max(state.cursor, nanos)
        await self._save(state)

    async def _deliver(
        self, state: WatchState, etype: str, action: str, object_id: str, obj: Any, nanos: int, *, key_time: str
    ) -> None:
        watch = state.watch
        if etype not in watch.events:
            return
        fn = self._functions().get(watch.function)
        if fn is None:
            log.error("watch %s: function '%s' does not exist; event dropped", watch.name, watch.function)
            return
        request = CallRequest(
            function=fn.name,
            method="POST",
            target=f"/function/{fn.name}",
            headers=(
                ("Content-Type", "application/json"),
                ("X-Faasd-Watch-Name", watch.name),
                ("X-Faasd-Event-Type", etype),
                ("X-Faasd-Event-Action", action),
                ("X-Faasd-Object-Type", watch.type),
                ("X-Faasd-Object-Id", object_id),
                ("X-Faasd-Event-Time", event_time(nanos)),
            ),
            body=json.dumps(obj).encode(),
            trigger="watch",
            trigger_name=watch.name,
            idempotency_key=f"watch:{watch.name}:{object_id}:{etype}:{action}:{key_time}",
        )
        while True:
            try:
                _id, repeated = await self._queue.submit(request, max_attempts=fn.retries + 1, max_age=fn.retry_max_age)
                break
            except FaasdError as exc:
                # The queue is full: the stream waits here (backpressure) and tries again.
                log.warning("watch %s: %s; waiting", watch.name, exc)
                await asyncio.sleep(1.0)
        if not repeated:
            state.delivered += 1

    async def _save(self, state: WatchState) -> None:
        await self._store.set_watch_state(state.watch.name, state.cursor, state.snapshot)
