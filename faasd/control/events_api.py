"""HTTP for events: taking asynchronous calls, reading them, dead letters, timers and watches.

Public (no token, like /function): ``/async-function/<name>[/...]``, and the
data plane's rewrite of a ``--async`` route (``/async-route/<name>/<path>``,
which no client can reach: it is not an admin path). Everything else is under
/v1 and needs the token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from faasd.cluster.journal import ChangeKind, recorded
from faasd.control.api import AdminApi, Resource, read_json
from faasd.control.controller import Controller
from faasd.core.errors import BadRequest, NotFound, PayloadTooLarge
from faasd.core.events import MAX_ASYNC_BODY, CallRequest, CallStatus, Invocation, MqTrigger, Timer
from faasd.events import cron
from faasd.events.delivery import Dispatcher
from faasd.events.mq.runner import MqRunner, TriggerState
from faasd.events.queue import CallQueue
from faasd.events.timers import TimerScheduler, iso
from faasd.events.triggers import TriggerControl
from faasd.events.watches import Watcher
from faasd.store.events import CallFilter

# Request headers that are about the hop or about faasd, not for the function.
DROPPED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "x-callback-url",
        "idempotency-key",
        "authorization",
    }
)
MAX_KEY = 255
MAX_WAIT = 60.0
MAX_LIST = 1000


def _callback_url(value: str | None) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2048:
        raise BadRequest(f"X-Callback-Url {value!r} is invalid: an absolute http:// or https:// URL")
    return value


def _key(function: str, value: str | None) -> str:
    """Keys are per function: the same key sent to two functions makes two calls."""
    if not value:
        return ""
    if len(value) > MAX_KEY or not value.isprintable():
        raise BadRequest(f"Idempotency-Key must be at most {MAX_KEY} printable characters")
    return f"call:{function}:{value}"


def parse_since(value: str | None) -> float | None:
    """``since``: an RFC 3339 time, or a duration back from now (90s, 15m, 2h, 7d)."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and _digits(value[:-1]) and len(value) < 12:
        return time.time() - int(value[:-1]) * units[value[-1]]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"since {value!r} is invalid: a time such as 2026-11-30T10:00:00Z or a duration such as 2h"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _digits(value: str) -> bool:
    """ASCII digits only (str.isdigit takes ² too, which int() refuses)."""
    return value.isascii() and value.isdigit()


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    if not _digits(value) or not 1 <= int(value) <= MAX_LIST:
        raise BadRequest(f"limit must be a number from 1 to {MAX_LIST}")
    return int(value)


class _TimerView:
    """A timer with its next run, as GET shows it."""

    def __init__(self, timer: Timer, next_run: float | None) -> None:
        self.timer = timer
        self.next_run = next_run

    def to_json(self) -> dict[str, Any]:
        return {**self.timer.to_json(), "next_run_at": iso(self.next_run) if self.next_run is not None else None}


class _MqView:
    """An mqtrigger with how it is doing (connected, counts), as GET shows it."""

    def __init__(self, trigger: MqTrigger, state: TriggerState | None) -> None:
        self.trigger = trigger
        self.state = state

    def to_json(self) -> dict[str, Any]:
        doc = self.trigger.to_json()
        state = self.state.to_json() if self.state is not None else {"status": "disconnected"}
        doc.update({k: state[k] for k in ("status", "delivered", "failed", "error") if k in state})
        return doc


class EventsApi:
    def __init__(
        self,
        controller: Controller,
        queue: CallQueue,
        dispatcher: Dispatcher,
        triggers: TriggerControl,
        timers: TimerScheduler,
        watcher: Watcher | None,
        mq: MqRunner,
    ) -> None:
        self._controller = controller
        self._queue = queue
        self._dispatcher = dispatcher
        self._triggers = triggers
        self._timers = timers
        self._watcher = watcher
        self._mq = mq

    def resources(self) -> tuple[Resource, ...]:
        t = self._triggers
        return (
            Resource(
                "timer",
                "/v1/timers",
                lambda _cat: {n: _TimerView(v, self._timers.next_runs().get(n)) for n, v in t.timers.items()},
                lambda body: recorded(ChangeKind.timer, body.get("name"), t.create_timer(body)),
                lambda name, body: recorded(ChangeKind.timer, name, t.update_timer(name, body)),
                lambda _req, name: recorded(ChangeKind.timer, name, t.delete_timer(name)),
            ),
            Resource(
                "watch",
                "/v1/watches",
                lambda _cat: t.watches,
                lambda body: recorded(ChangeKind.watch, body.get("name"), t.create_watch(body)),
                lambda name, body: recorded(ChangeKind.watch, name, t.update_watch(name, body)),
                lambda _req, name: recorded(ChangeKind.watch, name, t.delete_watch(name)),
                labels_field="resource_labels",  # a watch's "labels" select the containers it watches
            ),
            Resource(
                "mqtrigger",
                "/v1/triggers/mq",
                lambda _cat: {n: _MqView(v, self._mq.states.get(n)) for n, v in t.mq.items()},
                lambda body: recorded(ChangeKind.mqtrigger, body.get("name"), t.create_mq(body)),
                lambda name, body: recorded(ChangeKind.mqtrigger, name, t.update_mq(name, body)),
                lambda _req, name: recorded(ChangeKind.mqtrigger, name, t.delete_mq(name)),
            ),
        )

    def add_routes(self, app: web.Application, admin: AdminApi) -> None:
        router = app.router
        router.add_route("*", "/async-function/{name}", self.accept)
        router.add_route("*", "/async-function/{name}/{tail:.*}", self.accept)
        router.add_route("*", "/async-route/{name}/{tail:.*}", self.accept_route)
        router.add_get("/v1/invocations", self.list_calls)
        router.add_get("/v1/invocations/{id}", self.get_call)
        router.add_get("/v1/dlq", self.list_dead)
        router.add_delete("/v1/dlq", self.purge)
        router.add_post("/v1/dlq/redrive", self.redrive)
        router.add_get("/v1/dlq/{id}", self.get_dead)
        router.add_delete("/v1/dlq/{id}", self.purge_one)
        router.add_post("/v1/dlq/{id}/redrive", self.redrive_one)
        router.add_get("/v1/cron/schedule", self.schedule)
        admin.resources = (*admin.resources, *self.resources())

    # -- taking calls ------------------------------------------------------------

    async def accept(self, request: web.Request) -> web.Response:
        """The function sees the path of the same synchronous call: /function/<name>[/...][?...], as sent."""
        name = request.match_info["name"]
        return await self._accept(request, name, "/function" + request.raw_path[len("/async-function") :])

    async def accept_route(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = request.raw_path
        return await self._accept(request, name, raw[len("/async-route/") + len(name) :])

    async def _accept(self, request: web.Request, name: str, target: str) -> web.Response:
        fn = self._controller.catalog.functions.get(name)
        if fn is None:
            raise NotFound(f"function '{name}' not found")
        if request.content_length is not None and request.content_length > MAX_ASYNC_BODY:
            raise PayloadTooLarge(
                f"an asynchronous call's body is at most {MAX_ASYNC_BODY} bytes; this one is {request.content_length}"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > MAX_ASYNC_BODY:
                raise PayloadTooLarge(f"an asynchronous call's body is at most {MAX_ASYNC_BODY} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        headers = tuple(
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in DROPPED and not (k.lower().startswith("x-faasd-") and k.lower() != "x-faasd-params")
        )
        call = CallRequest(
            function=name,
            method=request.method,
            target=target,
            headers=headers,
            body=body,
            callback_url=_callback_url(request.headers.get("X-Callback-Url")),
            idempotency_key=_key(name, request.headers.get("Idempotency-Key")),
        )
        call_id, repeated = await self._queue.submit(call, max_attempts=fn.retries + 1, max_age=fn.retry_max_age)
        doc = {"call_id": call_id, "status": "accepted", "function": name, "repeated": repeated}
        # The call's request id: the caller's (the data plane kept it only if valid), else the call id.
        request_id = next((v for k, v in headers if k.lower() == "x-request-id"), call_id)
        headers_out = {"X-Call-Id": call_id, "Location": f"/v1/invocations/{call_id}", "X-Request-Id": request_id}
        return web.json_response(doc, status=202, headers=headers_out)

    # -- reading calls -------------------------------------------------------------

    def _filter(self, request: web.Request, status: str = "") -> CallFilter:
        status = status or request.query.get("status", "")
        if status and status not in CallStatus.__members__:
            raise BadRequest(f"status {status!r} is not one of {', '.join(CallStatus.__members__)}")
        return CallFilter(
            function=request.query.get("function", ""),
            status=status,
            since=parse_since(request.query.get("since")),
            limit=_limit(request.query.get("limit")),
        )

    async def list_calls(self, request: web.Request) -> web.Response:
        found = await self._queue.find(self._filter(request))
        return web.json_response({"items": [inv.to_json(with_body=False) for inv in found]})

    async def get_call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["id"]
        wait = request.query.get("wait")
        try:
            seconds = min(MAX_WAIT, float(wait)) if wait else 0.0
        except ValueError:
            raise BadRequest(f"wait {wait!r} is invalid: seconds, at most {MAX_WAIT:.0f}") from None
        inv = await self._queue.get(call_id)
        deadline = time.monotonic() + seconds
        while not inv.status.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            inv = await self._queue.get(call_id)
        return web.json_response(inv.to_json())

    # -- dead letters ----------------------------------------------------------------

    async def _dead(self, call_id: str) -> Invocation:
        inv = await self._queue.get(call_id)
        if inv.status != CallStatus.dead:
            raise NotFound(f"call '{call_id}' is not a dead letter (it is {inv.status.value})")
        return inv

    async def list_dead(self, request: web.Request) -> web.Response:
        found = await self._queue.find(self._filter(request, CallStatus.dead.value))
        return web.json_response({"items": [inv.to_json(with_body=False) for inv in found]})

    async def get_dead(self, request: web.Request) -> web.Response:
        return web.json_response((await self._dead(request.match_info["id"])).to_json())

    def _policy(self, function: str) -> tuple[int, int]:
        fn = self._controller.catalog.functions.get(function)
        if fn is None:
            raise BadRequest(f"function '{function}' does not exist any more; its dead letters cannot be redriven")
        return fn.retries + 1, fn.retry_max_age

    async def _selected(self, request: web.Request) -> list[Invocation]:
        """Dead letters named by ``ids`` in a JSON body, else by the function/since query."""
        if request.can_read_body:
            body = await read_json(request)
            ids = body.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
                raise BadRequest("ids must be a non-empty list of call ids")
            return [await self._dead(i) for i in dict.fromkeys(ids)]
        return await self._queue.find(self._filter(request, CallStatus.dead.value))

    async def redrive(self, request: web.Request) -> web.Response:
        chosen = await self._selected(request)
        for inv in chosen:
            self._policy(inv.function)
        ids = await self._queue.redrive(chosen, self._policy)
        return web.json_response({"redriven": len(ids), "ids": ids})

    async def redrive_one(self, request: web.Request) -> web.Response:
        inv = await self._dead(request.match_info["id"])
        ids = await self._queue.redrive([inv], self._policy)
        return web.json_response({"redriven": len(ids), "ids": ids})

    async def purge(self, request: web.Request) -> web.Response:
        chosen = await self._selected(request)
        purged = await self._queue.purge([inv.id for inv in chosen])
        return web.json_response({"purged": purged})

    async def purge_one(self, request: web.Request) -> web.Response:
        inv = await self._dead(request.match_info["id"])
        return web.json_response({"purged": await self._queue.purge([inv.id])})

    # -- timers' schedule, status ----------------------------------------------------

    async def schedule(self, request: web.Request) -> web.Response:
        expression = request.query.get("cron", "")
        zone = request.query.get("timezone", "UTC")
        count = request.query.get("round", "5")
        if not _digits(count) or not 1 <= int(count) <= 100:
            raise BadRequest("round must be a number from 1 to 100")
        try:
            runs = cron.parse(expression, zone).next_runs(datetime.now(UTC), int(count))
        except cron.CronError as exc:
            raise BadRequest(f"{exc.field}: {exc}") from None
        return web.json_response({"cron": expression, "timezone": zone, "next": [iso(r.timestamp()) for r in runs]})

    async def status(self) -> dict[str, Any]:
        counts = await self._queue.counts()
        nexts = self._timers.next_runs()
        watches: Mapping[str, Any] = self._watcher.states if self._watcher is not None else {}
        return {
            "queue": {
                "depth": self._queue.depth,
                "limit": self._queue.max_queued,
                "in_flight": self._dispatcher.inflight,
                **counts,
            },
            "timers": [
                {"name": n, "function": t.function, "next_run_at": iso(nexts[n]) if n in nexts else None}
                for n, t in sorted(self._triggers.timers.items())
            ],
            "watches": [
                {
                    "name": n,
                    "function": w.function,
                    "type": w.type,
                    "connected": bool(watches.get(n) and watches[n].connected),
                }
                for n, w in sorted(self._triggers.watches.items())
            ],
            "mqtriggers": [_MqView(m, self._mq.states.get(n)).to_json() for n, m in sorted(self._triggers.mq.items())],
        }
