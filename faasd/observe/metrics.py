"""``GET /metrics``: faasd's state in the Prometheus text format, read when scraped.

Nothing here runs on the call path. At a scrape the collector reads the
counters faasd keeps anyway (faasd.observe.calls, the pool, the queues, the
builder) and turns them into metric families; prometheus-client does the
format. Its process and Python collectors add ``process_*`` and ``python_*``.

Names, and what Fission calls the same thing (the README's "Metrics" table):

- ``faasd_function_calls_total{function,code}`` (code: 2xx..5xx; 499 = the client left)
  ~ ``fission_function_calls_total``; ``{code="5xx"}`` ~ ``fission_function_errors_total``
- ``faasd_function_duration_seconds`` (histogram) ~ ``fission_function_duration_seconds``
- ``faasd_function_overhead_seconds`` (histogram: route, lease and connect, before the
  request reaches the instance) ~ ``fission_function_overhead_seconds``
- ``faasd_function_cold_starts_total{function,kind}`` ~ ``fission_function_cold_starts_total``
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from faasd.observe.calls import COLD_KINDS, CallStats, FunctionCalls, Histogram

__all__ = ["CONTENT_TYPE_LATEST", "FaasdCollector", "MetricSources", "registry_for"]

_CLASSES = ("499", "1xx", "2xx", "3xx", "4xx", "5xx")  # FunctionCalls.by_class, by index
# Written even at 0: a series that appears only at its first event is missed by rate() and increase().
_ALWAYS = (2, 3, 4, 5, 0)


class PoolView(Protocol):
    def instance_states(self) -> dict[str, dict[str, int]]: ...
    def pool_sizes(self) -> dict[str, tuple[int, int, int]]: ...
    def container_starts(self) -> dict[str, list[int]]: ...


@dataclass
class QueueView:
    """The asynchronous call queue now: calls waiting, running, and how late the oldest due one is."""

    queued: int
    running: int
    limit: int
    oldest_due_seconds: float
    in_flight: int


@dataclass
class MqView:
    trigger: str
    function: str
    connected: bool
    delivered: int
    failed: int
    inflight: int
    oldest_inflight_seconds: float


@dataclass
class MetricSources:
    """What the collector reads; faasd/app.py fills it in."""

    calls: CallStats
    pool: PoolView
    catalog: Callable[[], tuple[int, int]]  # (functions, routes)
    function_names: Callable[[], Iterable[str]] = tuple  # functions in the registry (their series start at 0)
    queue: Callable[[], QueueView] | None = None
    mq: Callable[[], Iterable[MqView]] | None = None
    timers: Callable[[], Mapping[str, list[float]]] | None = None  # name -> [queued, skipped, last lateness]
    builds: Callable[[], Mapping[tuple[str, str], list[float]]] | None = None  # (env, result) -> [n, seconds]
    version: str = ""


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add(family: HistogramMetricFamily, values: list[str], hist: Histogram) -> None:
    buckets = [(_bound(b), float(n)) for b, n in hist.cumulative()]
    family.add_metric(values, buckets, hist.total)


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(value)


class FaasdCollector:
    def __init__(self, sources: MetricSources) -> None:
        self._s = sources

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only (names vary with functions)

    def collect(self) -> Iterable[Metric]:
        s = self._s
        yield from self._functions(s.calls, s.function_names())
        yield from self._pool(s.pool)
        functions, routes = s.catalog()
        yield GaugeMetricFamily("faasd_functions", "Functions in the registry.", value=functions)
        yield GaugeMetricFamily("faasd_routes", "HTTP routes in the registry.", value=routes)
        info = GaugeMetricFamily("faasd_info", "faasd's version.", labels=["version"])
        info.add_metric([s.version], 1)
        yield info
        if s.queue is not None:
            yield from self._queue(s.queue())
        if s.mq is not None:
            yield from self._mq(list(s.mq()))
        if s.timers is not None:
            yield from self._timers(s.timers())
        if s.builds is not None:
            yield from self._builds(s.builds())

    def _functions(self, stats: CallStats, registered: Iterable[str]) -> Iterable[Metric]:
        calls = CounterMetricFamily(
            "faasd_function_calls",
            "Calls that ended, by status class (499: the client left).",
            labels=["function", "code"],
        )
        duration = _histogram(
            "faasd_function_duration_seconds", "Call duration, request to the end of the answer.", ["function"]
        )
        overhead = _histogram(
            "faasd_function_overhead_seconds",
            "Time before the request reached an instance: route, lease (with any cold start) and connect.",
            ["function"],
        )
        cold = CounterMetricFamily(
            "faasd_function_cold_starts", "Instances made, by kind.", labels=["function", "kind"]
        )
        cold_seconds = _histogram(
            "faasd_function_cold_start_seconds", "Time to make an instance.", ["function", "kind"]
        )
        throttled = CounterMetricFamily(
            "faasd_function_throttled",
            "Calls answered 429: at max_instances past the queue timeout.",
            labels=["function"],
        )
        timeouts = CounterMetricFamily(
            "faasd_function_timeouts", "Calls cut off at the function's timeout (504).", labels=["function"]
        )
        billed = CounterMetricFamily(
            "faasd_function_billed_seconds",
            "Call durations rounded up to the millisecond, summed.",
            labels=["function"],
        )
        counted = stats.functions
        for name in sorted(counted.keys() | set(registered)):
            fc = counted.get(name) or FunctionCalls()
            for index in _ALWAYS:
                calls.add_metric([name, _CLASSES[index]], fc.by_class[index])
            # Histograms only once they have something: ~20 series each, per function.
            if fc.duration.count:
                _add(duration, [name], fc.duration)
            if fc.overhead.count:
                _add(overhead, [name], fc.overhead)
            for kind in COLD_KINDS:
                cold.add_metric([name, kind], fc.cold_kinds[kind])
                if fc.cold_seconds[kind].count:
                    _add(cold_seconds, [name, kind], fc.cold_seconds[kind])
            throttled.add_metric([name], fc.throttled)
            timeouts.add_metric([name], fc.timeouts)
            billed.add_metric([name], fc.billed_ms / 1000)
        yield from (calls, duration, overhead, cold, cold_seconds, throttled, timeouts, billed)

    def _pool(self, pool: PoolView) -> Iterable[Metric]:
        instances = GaugeMetricFamily(
            "faasd_function_instances", "Instances of a function by state.", labels=["function", "state"]
        )
        queued = GaugeMetricFamily(
            "faasd_function_queued_calls", "Calls waiting for an instance of the function.", labels=["function"]
        )
        for name, st in sorted(pool.instance_states().items()):
            for state in ("starting", "idle", "busy"):
                instances.add_metric([name, state], st[state])
            queued.add_metric([name], st["waiting"])
        size = GaugeMetricFamily(
            "faasd_pool_size", "Containers an environment's pool keeps ready.", labels=["environment"]
        )
        ready = GaugeMetricFamily("faasd_pool_ready", "Pooled containers ready now.", labels=["environment"])
        starting = GaugeMetricFamily("faasd_pool_starting", "Pooled containers starting now.", labels=["environment"])
        for env, (poolsize, n_ready, n_starting) in sorted(pool.pool_sizes().items()):
            size.add_metric([env], poolsize)
            ready.add_metric([env], n_ready)
            starting.add_metric([env], n_starting)
        starts = CounterMetricFamily(
            "faasd_container_starts", "Runtime containers started (pooled or on demand).", labels=["environment"]
        )
        failures = CounterMetricFamily(
            "faasd_container_start_failures", "Runtime container starts that failed.", labels=["environment"]
        )
        for env, (ok, failed) in sorted(pool.container_starts().items()):
            starts.add_metric([env], ok)
            failures.add_metric([env], failed)
        yield from (instances, queued, size, ready, starting, starts, failures)

    def _queue(self, q: QueueView) -> Iterable[Metric]:
        depth = GaugeMetricFamily("faasd_async_calls", "Unfinished asynchronous calls by state.", labels=["state"])
        depth.add_metric(["queued"], q.queued)
        depth.add_metric(["running"], q.running)
        yield depth
        yield GaugeMetricFamily("faasd_async_queue_limit", "The asynchronous queue's limit.", value=q.limit)
        yield GaugeMetricFamily(
            "faasd_async_oldest_due_seconds",
            "How long the oldest due asynchronous call has waited for delivery (0: none waits).",
            value=q.oldest_due_seconds,
        )
        yield GaugeMetricFamily("faasd_async_deliveries_in_flight", "Deliveries running now.", value=q.in_flight)

    def _mq(self, triggers: list[MqView]) -> Iterable[Metric]:
        messages = CounterMetricFamily(
            "faasd_mq_trigger_messages", "Messages finished: delivered (2xx) or failed.", labels=["trigger", "result"]
        )
        inflight = GaugeMetricFamily("faasd_mq_trigger_inflight", "Messages being delivered now.", labels=["trigger"])
        oldest = GaugeMetricFamily(
            "faasd_mq_trigger_oldest_inflight_seconds", "Age of the oldest message in delivery.", labels=["trigger"]
        )
        connected = GaugeMetricFamily(
            "faasd_mq_trigger_connected", "1 when connected to its broker.", labels=["trigger"]
        )
        for t in triggers:
            messages.add_metric([t.trigger, "delivered"], t.delivered)
            messages.add_metric([t.trigger, "failed"], t.failed)
            inflight.add_metric([t.trigger], t.inflight)
            oldest.add_metric([t.trigger], t.oldest_inflight_seconds)
            connected.add_metric([t.trigger], 1 if t.connected else 0)
        yield from (messages, inflight, oldest, connected)

    def _timers(self, timers: Mapping[str, list[float]]) -> Iterable[Metric]:
        ticks = CounterMetricFamily(
            "faasd_timer_ticks", "Timer ticks: queued as a call, or skipped.", labels=["timer", "result"]
        )
        late = GaugeMetricFamily("faasd_timer_lateness_seconds", "How late the last tick fired.", labels=["timer"])
        for name, (queued, skipped, lateness) in sorted(timers.items()):
            ticks.add_metric([name, "queued"], queued)
            ticks.add_metric([name, "skipped"], skipped)
            late.add_metric([name], lateness)
        yield from (ticks, late)

    def _builds(self, builds: Mapping[tuple[str, str], list[float]]) -> Iterable[Metric]:
        count = CounterMetricFamily(
            "faasd_builds", "Package builds that ended, by result.", labels=["environment", "result"]
        )
        seconds = CounterMetricFamily(
            "faasd_build_seconds", "Time spent in builds that ended, by result.", labels=["environment", "result"]
        )
        for (env, result), (n, secs) in sorted(builds.items()):
            count.add_metric([env, result], n)
            seconds.add_metric([env, result], secs)
        yield from (count, seconds)


def registry_for(sources: MetricSources) -> CollectorRegistry:
    """A registry of faasd's own (not prometheus-client's global one): faasd, process, Python."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FaasdCollector(sources))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def oldest(since: Iterable[float], now: float | None = None) -> float:
    """Seconds since the earliest of ``since`` (0 when empty)."""
    first = min(since, default=None)
    if first is None:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - first)
