"""Timers and watches in the registry: validated writes, the in-memory set, and who is told.

Writes take the controller's lock, so a trigger never names a function that a
concurrent delete removed. The timer scheduler and the watcher are told of
every change (faasd/events/timers.py, faasd/events/watches.py). The
controller asks :meth:`users_of` before it deletes a function (409 unless
forced; a forced delete removes the function's timers and watches in the same
transaction, then :meth:`forget_function`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from faasd.control.controller import Controller
from faasd.core import validation as check
from faasd.core.errors import BadRequest, Conflict, NotFound
from faasd.core.events import (
    MAX_MQ_CONCURRENCY,
    MQ_TYPES,
    TIMER_CATCH_UPS,
    TIMER_OVERLAPS,
    TOPIC_PATTERN,
    WATCH_EVENTS,
    WATCH_TYPES,
    MqTrigger,
    Timer,
    Watch,
    redact_url,
)
from faasd.events import cron
from faasd.events.mq.broker import SCHEMES, BrokerError
from faasd.store.events import TriggerStore
from faasd.store.registry import utcnow

MQ_FIELDS = {
    "name",
    "function",
    "mqtype",
    "topic",
    "resptopic",
    "errortopic",
    "maxretries",
    "maxconcurrency",
    "contenttype",
    "connection",
    "connection_secret",
    "method",
}
TOPIC_RE = re.compile(TOPIC_PATTERN)
CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[A-Za-z0-9_-]+=[A-Za-z0-9_.\"-]+)*$")
TIMER_FIELDS = {"name", "function", "cron", "timezone", "method", "subpath", "overlap", "catch_up"}
WATCH_FIELDS = {"name", "function", "type", "labels", "events", "include_faasd"}
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
MAX_LABELS = 20


class TriggerListener(Protocol):
    def changed(self, name: str) -> None: ...


def subpath(value: Any) -> str:
    if not isinstance(value, str) or not _utf8(value):
        raise BadRequest("subpath must be a string such as /report")
    if value and (not value.startswith("/") or len(value) > 1024 or any(c in " #\x7f" or ord(c) < 32 for c in value)):
        raise BadRequest(f"subpath {value!r} is invalid: a path starting with / (a query string may follow)")
    return value


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def labels(value: Any) -> dict[str, str]:
    """``{"k": "v"}`` or ``["k=v", "k"]`` (a key alone: any value)."""
    if isinstance(value, list):
        pairs: dict[str, str] = {}
        for item in value:
            if not isinstance(item, str):
                raise BadRequest("labels must be strings such as app=web")
            key, _, val = item.partition("=")
            pairs[key] = val
        value = pairs
    if not isinstance(value, dict):
        raise BadRequest("labels must be an object of label keys to values")
    if len(value) > MAX_LABELS:
        raise BadRequest(f"labels: at most {MAX_LABELS}")
    for key, val in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
            raise BadRequest(f"label key {key!r} is invalid: letters, digits and . _ / - (e.g. com.example.app)")
        if not isinstance(val, str) or len(val) > 1024 or any(c in val for c in "\r\n\0"):
            raise BadRequest(f"label {key}: the value must be a single-line string")
    return dict(value)


def topic(value: Any, field: str, required: bool = True) -> str:
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not TOPIC_RE.fullmatch(value):
        raise BadRequest(
            f"{field} {value!r} is invalid: letters, digits and _ . : / - (a Redis stream key or a NATS subject)"
        )
    return value


def event_kinds(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise BadRequest(f"events must be a non-empty list of {', '.join(WATCH_EVENTS)}")
    for kind in value:
        if kind not in WATCH_EVENTS:
            raise BadRequest(f"events: {kind!r} is not one of {', '.join(WATCH_EVENTS)}")
    return tuple(k for k in WATCH_EVENTS if k in value)


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{field} must be true or false")
    return value


class TriggerControl:
    def __init__(self, controller: Controller, store: TriggerStore) -> None:
        self._controller = controller
        self._store = store
        self.timers: dict[str, Timer] = {}
        self.watches: dict[str, Watch] = {}
        self.mq: dict[str, MqTrigger] = {}
        self.timer_listener: TriggerListener | None = None
        self.watch_listener: TriggerListener | None = None
        self.mq_listener: TriggerListener | None = None
        # Connects once to a new or changed trigger's broker (400 when it cannot): the runner's probe.
        self.mq_probe: Callable[[MqTrigger], Awaitable[None]] | None = None

    def load(self, timers: list[Timer], watches: list[Watch], mq: list[MqTrigger] | None = None) -> None:
        self.timers = {t.name: t for t in timers}
        self.watches = {w.name: w for w in watches}
        self.mq = {m.name: m for m in mq or []}

    # -- the controller's questions -------------------------------------------

    def users_of(self, function: str) -> list[str]:
        return (
            [f"timer '{n}'" for n, t in sorted(self.timers.items()) if t.function == function]
            + [f"watch '{n}'" for n, w in sorted(self.watches.items()) if w.function == function]
            + [f"mqtrigger '{n}'" for n, m in sorted(self.mq.items()) if m.function == function]
        )

    def forget_function(self, function: str) -> None:
        for name in [t.name for t in self.timers.values() if t.function == function]:
            del self.timers[name]
            self._tell(self.timer_listener, name)
        for name in [w.name for w in self.watches.values() if w.function == function]:
            del self.watches[name]
            self._tell(self.watch_listener, name)
        for name in [m.name for m in self.mq.values() if m.function == function]:
            del self.mq[name]
            self._tell(self.mq_listener, name)

    @staticmethod
    def _tell(listener: TriggerListener | None, name: str) -> None:
        if listener is not None:
            listener.changed(name)

    def _function(self, value: Any) -> str:
        name = check.name(value, "function")
        if name not in self._controller.catalog.functions:
            raise BadRequest(f"function '{name}' does not exist")
        return name

    # -- timers ----------------------------------------------------------------

    def _timer_fields(self, body: dict[str, Any], current: Timer | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "function" in body or current is None:
            fields["function"] = self._function(body.get("function"))
        if "cron" in body or current is None:
            if not isinstance(body.get("cron"), str) or not body.get("cron", "").strip():
                raise BadRequest("cron is required: an expression such as '*/5 * * * *' or '@every 30s'")
            fields["cron"] = body["cron"].strip()
        if "timezone" in body:
            if not isinstance(body["timezone"], str) or not body["timezone"]:
                raise BadRequest("timezone must be an IANA time zone name such as Europe/Berlin")
            fields["timezone"] = body["timezone"]
        if "method" in body:
            fields["method"] = check.method(body["method"])
        if "subpath" in body:
            fields["subpath"] = subpath(body["subpath"])
        if "overlap" in body:
            fields["overlap"] = check.choice(body["overlap"], "overlap", TIMER_OVERLAPS)
        if "catch_up" in body:
            fields["catch_up"] = check.choice(body["catch_up"], "catch_up", TIMER_CATCH_UPS)
        expression = fields.get("cron", current.cron if current else "")
        zone = fields.get("timezone", current.timezone if current else "UTC")
        try:
            cron.parse(expression, zone)
        except cron.CronError as exc:
            raise BadRequest(f"{exc.field}: {exc}") from None
        return fields

    async def create_timer(self, body: dict[str, Any]) -> Timer:
        check.known_fields(body, TIMER_FIELDS)
        name = check.name(body.get("name"))
        async with self._controller.lock:
            if name in self.timers:
                raise Conflict(f"timer '{name}' exists already")
            fields = self._timer_fields(body, None)
            now = utcnow()
            timer = Timer(
                **{
                    "timezone": "UTC",
                    "method": "POST",
                    "subpath": "",
                    "overlap": "forbid",
                    "catch_up": "once",
                    **fields,
                },
                name=name,
                created_at=now,
                updated_at=now,
                last_tick=now.timestamp(),
            )
            await self._store.put_timer(timer, new=True)
            self.timers[name] = timer
        self._tell(self.timer_listener, name)
        return timer

    async def update_timer(self, name: str, body: dict[str, Any]) -> Timer:
        check.known_fields(body, TIMER_FIELDS)
        async with self._controller.lock:
            timer: Timer = self._get(self.timers, "timer", name)
            if body.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new timer instead")
            changed = dataclasses.replace(timer, **self._timer_fields(body, timer), updated_at=utcnow())
            await self._store.put_timer(changed, new=False)
            self.timers[name] = changed
        self._tell(self.timer_listener, name)
        return changed

    async def delete_timer(self, name: str) -> None:
        async with self._controller.lock:
            self._get(self.timers, "timer", name)
            await self._store.delete_timer(name)
            del self.timers[name]
        self._tell(self.timer_listener, name)

    def ticked(self, name: str, tick: float) -> None:
        """The scheduler made a tick (it stores the time itself)."""
        timer = self.timers.get(name)
        if timer is not None:
            self.timers[name] = dataclasses.replace(timer, last_tick=tick)

    # -- watches ---------------------------------------------------------------

    def _watch_fields(self, body: dict[str, Any], current: Watch | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "function" in body or current is None:
            fields["function"] = self._function(body.get("function"))
        if "type" in body:
            fields["type"] = check.choice(body["type"], "type", WATCH_TYPES)
        if "labels" in body:
            fields["labels"] = labels(body["labels"])
        if "events" in body:
            fields["events"] = event_kinds(body["events"])
        if "include_faasd" in body:
            fields["include_faasd"] = boolean(body["include_faasd"], "include_faasd")
        return fields

    async def create_watch(self, body: dict[str, Any]) -> Watch:
        check.known_fields(body, WATCH_FIELDS)
        name = check.name(body.get("name"))
        async with self._controller.lock:
            if name in self.watches:
                raise Conflict(f"watch '{name}' exists already")
            fields = self._watch_fields(body, None)
            now = utcnow()
            watch = Watch(**{"type": "container", **fields}, name=name, created_at=now, updated_at=now)
            await self._store.put_watch(watch, new=True)
            self.watches[name] = watch
        self._tell(self.watch_listener, name)
        return watch

    async def update_watch(self, name: str, body: dict[str, Any]) -> Watch:
        check.known_fields(body, WATCH_FIELDS)
        async with self._controller.lock:
            watch: Watch = self._get(self.watches, "watch", name)
            if body.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new watch instead")
            changed = dataclasses.replace(watch, **self._watch_fields(body, watch), updated_at=utcnow())
            followed = (changed.type, dict(changed.labels), changed.include_faasd)
            restart = followed != (watch.type, dict(watch.labels), watch.include_faasd)
            await self._store.put_watch(changed, new=False, restart=restart)
            self.watches[name] = changed
        self._tell(self.watch_listener, name)
        return changed

    async def delete_watch(self, name: str) -> None:
        async with self._controller.lock:
            self._get(self.watches, "watch", name)
            await self._store.delete_watch(name)
            del self.watches[name]
        self._tell(self.watch_listener, name)

    @staticmethod
    def _get(items: Mapping[str, Any], kind: str, name: str) -> Any:
        found = items.get(name)
        if found is None:
            raise NotFound(f"{kind} '{name}' not found")
        return found

    # -- message-queue triggers ------------------------------------------------------

    def _mq_fields(self, body: dict[str, Any], current: MqTrigger | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "function" in body or current is None:
            fields["function"] = self._function(body.get("function"))
        if "mqtype" in body or current is None:
            fields["mqtype"] = check.choice(body.get("mqtype"), "mqtype", MQ_TYPES)
        if "topic" in body or current is None:
            fields["topic"] = topic(body.get("topic"), "topic")
        for name in ("resptopic", "errortopic"):
            if name in body:
                fields[name] = topic(body[name], name, required=False)
        if "maxretries" in body:
            fields["maxretries"] = check.integer(body["maxretries"], "maxretries", 0, 100)
        if "maxconcurrency" in body:
            fields["maxconcurrency"] = check.integer(body["maxconcurrency"], "maxconcurrency", 1, MAX_MQ_CONCURRENCY)
        if "contenttype" in body:
            value = body["contenttype"]
            if not isinstance(value, str) or not CONTENT_TYPE_RE.fullmatch(value):
                raise BadRequest(f"contenttype {value!r} is invalid: a media type such as application/json")
            fields["contenttype"] = value
        if "method" in body:
            fields["method"] = check.method(body["method"])
        for name in ("connection", "connection_secret"):
            if name in body:
                if not isinstance(body[name], str) or len(body[name]) > 2048:
                    raise BadRequest(f"{name} must be a string")
                fields[name] = body[name]
        source = fields.get("topic", current.topic if current else "")
        for name in ("resptopic", "errortopic"):
            if fields.get(name, getattr(current, name, "")) == source:
                raise BadRequest(f"{name} cannot be the trigger's own topic {source!r}: every message would come back")
        kind = fields.get("mqtype", current.mqtype if current else "")
        url = fields.get("connection", current.connection if current else "")
        secret = fields.get("connection_secret", current.connection_secret if current else "")
        if bool(url) == bool(secret):
            raise BadRequest("give either connection (the broker's URL) or connection_secret, not both or neither")
        if url and not url.startswith(SCHEMES[kind]):
            raise BadRequest(
                f"connection {redact_url(url)!r} is not a {kind} URL: it starts with {' or '.join(SCHEMES[kind])}"
            )
        if secret:
            fn = self._controller.catalog.functions[fields.get("function", current.function if current else "")]
            if secret not in fn.secrets:
                raise BadRequest(f"connection_secret: function '{fn.name}' has no secret '{secret}'")
        return fields

    async def _probe(self, trigger: MqTrigger) -> None:
        if self.mq_probe is None:
            return
        try:
            await self.mq_probe(trigger)
        except BrokerError as exc:
            raise BadRequest(f"connection: cannot use the {trigger.mqtype} broker: {exc}") from None

    async def create_mq(self, body: dict[str, Any]) -> MqTrigger:
        check.known_fields(body, MQ_FIELDS)
        name = check.name(body.get("name"))
        async with self._controller.lock:
            if name in self.mq:
                raise Conflict(f"mqtrigger '{name}' exists already")
            now = utcnow()
            trigger = MqTrigger(**self._mq_fields(body, None), name=name, created_at=now, updated_at=now)
        await self._probe(trigger)
        async with self._controller.lock:
            if name in self.mq:
                raise Conflict(f"mqtrigger '{name}' exists already")
            if trigger.function not in self._controller.catalog.functions:
                raise BadRequest(f"function '{trigger.function}' does not exist")
            await self._store.put_mq(trigger, new=True)
            self.mq[name] = trigger
        self._tell(self.mq_listener, name)
        return trigger

    async def update_mq(self, name: str, body: dict[str, Any]) -> MqTrigger:
        check.known_fields(body, MQ_FIELDS)
        async with self._controller.lock:
            current: MqTrigger = self._get(self.mq, "mqtrigger", name)
            if body.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new mqtrigger instead")
            changed = dataclasses.replace(current, **self._mq_fields(body, current), updated_at=utcnow())
        if {"mqtype", "topic", "connection", "connection_secret"} & body.keys():
            await self._probe(changed)
        async with self._controller.lock:
            latest: MqTrigger = self._get(self.mq, "mqtrigger", name)
            # Applied again to what is there now: a concurrent update is kept, not overwritten.
            changed = dataclasses.replace(latest, **self._mq_fields(body, latest), updated_at=utcnow())
            await self._store.put_mq(changed, new=False)
            self.mq[name] = changed
        self._tell(self.mq_listener, name)
        return changed

    async def delete_mq(self, name: str) -> None:
        async with self._controller.lock:
            self._get(self.mq, "mqtrigger", name)
            await self._store.delete_mq(name)
            del self.mq[name]
        self._tell(self.mq_listener, name)
