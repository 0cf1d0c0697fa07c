"""The observability endpoints: /metrics, /v1/stats, /v1/usage and a function's instances.

GET /metrics                        Prometheus text (faasd/observe/metrics.py); the token
                                    unless --metrics-public
GET /v1/stats[?function=]           the last hour per minute (faasd/observe/series.py)
GET /v1/usage[?function=][&since=]  usage per function and hour from the registry, and totals
GET /v1/functions/{name}/instances  the function's instances now: busy or idle, calls served
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from faasd import __version__
from faasd.builds.builder import Builder
from faasd.control.controller import Controller
from faasd.control.events_api import parse_since
from faasd.core.errors import NotFound
from faasd.events.service import Events
from faasd.observe.metrics import CONTENT_TYPE_LATEST, MetricSources, MqView, QueueView, oldest, registry_for, render
from faasd.observe.series import MinuteSeries
from faasd.observe.service import Observer
from faasd.observe.usage import UsageMeter
from faasd.pool.manager import PoolManager
from faasd.store.usage import Usage, UsageStore

DEFAULT_USAGE_SINCE = 24 * 3600


def _hour(epoch: float) -> str:
    """RFC 3339 in UTC (isoformat, not strftime: %Y drops a small year's leading zeros)."""
    return datetime.fromtimestamp(int(epoch), UTC).isoformat().replace("+00:00", "Z")


def usage_json(rows: list[Usage], since: float) -> dict[str, Any]:
    totals = {
        "calls": sum(r.calls for r in rows),
        "billed_ms": sum(r.billed_ms for r in rows),
        "gb_seconds": round(sum(r.gb_seconds for r in rows), 6),
        "instance_seconds": round(sum(r.instance_seconds for r in rows), 3),
    }
    return {
        "since": _hour(since),
        "usage": [
            {
                "function": r.function,
                "hour": _hour(r.hour),
                "calls": r.calls,
                "billed_ms": r.billed_ms,
                "gb_seconds": round(r.gb_seconds, 6),
                "instance_seconds": round(r.instance_seconds, 3),
            }
            for r in rows
        ],
        "totals": totals,
    }


class ObserveApi:
    def __init__(
        self,
        controller: Controller,
        pool: PoolManager,
        series: MinuteSeries,
        usage: UsageStore,
        registry: CollectorRegistry,
        flush_usage: Any = None,
    ) -> None:
        self._controller = controller
        self._pool = pool
        self._series = series
        self._usage = usage
        self._registry = registry
        self._flush_usage = flush_usage  # an async callable: write what the meter holds before reading

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/metrics", self.metrics)
        router.add_get("/v1/stats", self.stats)
        router.add_get("/v1/usage", self.usage)
        router.add_get("/v1/functions/{name}/instances", self.instances)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = render(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _function(self, name: str) -> str:
        if name not in self._controller.catalog.functions:
            raise NotFound(f"function '{name}' not found")
        return name

    async def stats(self, request: web.Request) -> web.Response:
        name = request.query.get("function")
        if name is not None:
            self._function(name)
        return web.json_response(self._series.view(name))

    async def usage(self, request: web.Request) -> web.Response:
        name = request.query.get("function") or None
        since = parse_since(request.query.get("since"))
        if since is None:
            since = time.time() - DEFAULT_USAGE_SINCE
        if self._flush_usage is not None:
            await self._flush_usage()  # what the meter holds counts too: the answer is up to now
        hour_start = max(0, int(since // 3600 * 3600))  # usage began no earlier than 1970
        rows = await self._usage.query(hour_start, name)
        return web.json_response(usage_json(rows, hour_start))

    async def instances(self, request: web.Request) -> web.Response:
        name = self._function(request.match_info["name"])
        return web.json_response({"instances": self._pool.instances_of(name)})


def metric_sources(
    controller: Controller, pool: PoolManager, events: Events | None, builds: Builder | None
) -> MetricSources:
    """What /metrics reads, taken from the parts faasd runs."""

    def catalog() -> tuple[int, int]:
        cat = controller.catalog
        return len(cat.functions), cat.routes.size

    sources = MetricSources(
        calls=pool.calls,
        pool=pool,
        catalog=catalog,
        function_names=lambda: list(controller.catalog.functions),
        version=__version__,
    )
    if builds is not None:

        def built() -> dict[tuple[str, str], list[float]]:
            # Every environment that can build has both series, from 0 (rate() misses a first sample).
            finished = {
                (env.name, result): [0, 0.0]
                for env in controller.catalog.environments.values()
                if env.builder
                for result in ("succeeded", "failed")
            }
            finished.update(builds.finished)
            return finished

        sources.builds = built
    if events is not None:
        ev = events

        def queue() -> QueueView:
            now = time.time()
            waiting = [e.due for e in ev.queue.entries.values() if not e.running]
            running = len(ev.queue.entries) - len(waiting)
            due = [d for d in waiting if d <= now]
            return QueueView(
                queued=len(waiting),
                running=running,
                limit=ev.queue.max_queued,
                oldest_due_seconds=oldest(due, now),
                in_flight=ev.dispatcher.inflight,
            )

        def mq() -> list[MqView]:
            now = time.time()
            return [
                MqView(
                    trigger=name,
                    function=st.trigger.function,
                    connected=st.connected,
                    delivered=st.delivered,
                    failed=st.failed,
                    inflight=len(st.inflight),
                    oldest_inflight_seconds=oldest(st.inflight.values(), now),
                )
                for name, st in sorted(ev.mq.states.items())
            ]

        def ticks() -> dict[str, list[float]]:
            counted: dict[str, list[float]] = {name: [0, 0, 0.0] for name in ev.triggers.timers}
            counted.update(ev.timers.ticks)
            return counted

        sources.queue = queue
        sources.mq = mq
        sources.timers = ticks
    return sources


def start_observability(
    controller: Controller,
    pool: PoolManager,
    usage: UsageStore,
    events: Events | None,
    builds: Builder | None,
    *,
    interval: float,
) -> tuple[Observer, ObserveApi]:
    """The series, the usage meter (both running) and the API over them and the metrics."""

    def memory_of(name: str) -> int | None:
        fn = controller.catalog.functions.get(name)
        return fn.memory_mb if fn is not None else None

    series = MinuteSeries(pool.calls)
    meter = UsageMeter(pool.calls, pool, usage, memory_of, interval=interval)
    observer = Observer(series, meter)
    observer.start()
    registry = registry_for(metric_sources(controller, pool, events, builds))
    return observer, ObserveApi(controller, pool, series, usage, registry, meter.flush)
