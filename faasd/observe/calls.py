"""What each function's calls did, counted in memory: cheap to record, read at a scrape.

The data plane records every synchronous call, the dispatcher and the
message-queue runner every delivery, the pool every cold start. Recording is a
dict lookup, a few integer additions and two bisections: no lock (one event
loop), no label lookup, no allocation. Everything is cumulative; readers take
differences (faasd.observe.series for the last hour, faasd.observe.usage for
the hourly meter, faasd.observe.metrics for Prometheus, which wants the totals).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

# Upper bounds (seconds) of the duration histograms; Prometheus' +Inf is implied.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
OVERHEAD_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0, 10.0)
COLD_START_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# How a call's instance came to be: a pooled container specialized for it, or one started for it.
POOL_WARM = "pool-warm"
NO_POOL = "no-pool"
COLD_KINDS = (POOL_WARM, NO_POOL)

# faasd's own error codes that are counted apart (faasd.core.errors).
THROTTLED = "too_many_requests"
TIMED_OUT = "timeout"
CLIENT_GONE = 499  # the status of a call whose client left before the answer (as Fission and nginx say)
# How long a deleted function's counters take the calls that were in flight at the delete.
TOMB_SECONDS = 3600.0 + 60.0


class Histogram:
    """Counts per bucket (not cumulative), their sum and count; ``quantile`` estimates from the buckets."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def snapshot(self) -> tuple[int, ...]:
        return tuple(self.counts)

    def cumulative(self) -> Iterator[tuple[float, int]]:
        """(upper bound, calls at or below it), ending with (+Inf, count): Prometheus' form."""
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            yield bound, running


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a histogram's (non-cumulative) ``counts``, interpolated within its bucket.

    None without observations. Past the last bound the last bound is answered (as Prometheus does).
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    running = 0
    for i, n in enumerate(counts):
        if n and running + n >= rank:
            if i >= len(bounds):
                return bounds[-1]
            low = bounds[i - 1] if i > 0 else 0.0
            return low + (bounds[i] - low) * ((rank - running) / n)
        running += n
    return bounds[-1]


class FunctionCalls:
    """One function's counters, all cumulative since faasd started."""

    __slots__ = (
        "billed_ms",
        "by_class",
        "cold_kinds",
        "cold_seconds",
        "deleted_at",
        "duration",
        "memory_mb",
        "overhead",
        "throttled",
        "timeouts",
    )

    def __init__(self) -> None:
        self.by_class = [0] * 6  # index: status // 100; 0 for 499, a client gone before the answer
        self.duration = Histogram(DURATION_BUCKETS)
        self.overhead = Histogram(OVERHEAD_BUCKETS)
        # Each call's time on its instance (request sent to answer ended), rounded up to the
        # millisecond as Lambda bills; a call that never reached an instance bills nothing.
        self.billed_ms = 0
        self.memory_mb = 0  # set when the function is deleted: the meter's GB-seconds need it then
        self.deleted_at: float | None = None  # when the function was deleted (the stats' clock)
        self.throttled = 0
        self.timeouts = 0
        self.cold_kinds = dict.fromkeys(COLD_KINDS, 0)
        self.cold_seconds = {kind: Histogram(COLD_START_BUCKETS) for kind in COLD_KINDS}

    @property
    def calls(self) -> int:
        return sum(self.by_class)

    @property
    def errors(self) -> int:
        """Calls answered 5xx (faasd's 502/503/504 included)."""
        return self.by_class[5]

    @property
    def cold_starts(self) -> int:
        return sum(self.cold_kinds.values())


class CallStats:
    """Every function's :class:`FunctionCalls`, by name; owned by the pool, written on the event loop.

    A deleted function's counters leave ``functions`` (its series end in /metrics and
    /v1/stats) for ``deleted``, where calls still in flight at the delete keep ending, for
    the usage meter; the meter buries them once quiet for :data:`TOMB_SECONDS`. When a
    function of that name is created again, they go to ``gone`` for the meter's last take.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.functions: dict[str, FunctionCalls] = {}
        self.deleted: dict[str, FunctionCalls] = {}
        self.gone: list[tuple[str, FunctionCalls]] = []
        self._clock = clock

    def of(self, function: str) -> FunctionCalls:
        calls = self.functions.get(function)
        if calls is None:
            calls = self.deleted.get(function)
            if calls is None:
                calls = self.functions[function] = FunctionCalls()
        return calls

    def record(self, function: str, status: int, duration: float, overhead: float | None, error: str = "") -> None:
        """One call ended: ``status`` answered (0: the client left first) after ``duration`` seconds,
        ``overhead`` of them before the request reached the instance (None if it never did);
        ``error`` is faasd's error code when faasd answered instead of the function."""
        calls = self.functions.get(function) or self.of(function)
        calls.by_class[status // 100 if 100 <= status < 600 and status != CLIENT_GONE else 0] += 1
        # Histogram.observe, inlined: this runs on every call.
        histogram = calls.duration
        histogram.counts[bisect_left(histogram.bounds, duration)] += 1
        histogram.count += 1
        histogram.total += duration
        if overhead is not None:
            histogram = calls.overhead
            histogram.counts[bisect_left(histogram.bounds, overhead)] += 1
            histogram.count += 1
            histogram.total += overhead
            calls.billed_ms += math.ceil((duration - overhead) * 1000)
        if error:
            if error == THROTTLED:
                calls.throttled += 1
            elif error == TIMED_OUT:
                calls.timeouts += 1

    def cold_start(self, function: str, kind: str, seconds: float) -> None:
        """An instance of ``function`` was made in ``seconds`` (``kind``: :data:`POOL_WARM` or :data:`NO_POOL`)."""
        calls = self.of(function)
        calls.cold_kinds[kind] += 1
        calls.cold_seconds[kind].observe(seconds)

    def forget(self, function: str, memory_mb: int = 0) -> None:
        """The function was deleted: its series end (a new function of that name starts from zero)."""
        calls = self.functions.pop(function, None) or FunctionCalls()
        calls.memory_mb = memory_mb
        calls.deleted_at = self._clock()
        older = self.deleted.get(function)
        if older is not None:
            self.gone.append((function, older))
        self.deleted[function] = calls

    def revive(self, function: str) -> None:
        """A function of this name exists (again): calls count for it, not for the deleted one."""
        calls = self.deleted.pop(function, None)
        if calls is not None:
            self.gone.append((function, calls))

    def bury(self, function: str, calls: FunctionCalls) -> None:
        """The meter has taken a deleted function's last figures: forget its counters."""
        if self.deleted.get(function) is calls:
            del self.deleted[function]

    def quiet_since(self, calls: FunctionCalls) -> float:
        """Seconds since a deleted function's counters were deleted."""
        return 0.0 if calls.deleted_at is None else self._clock() - calls.deleted_at
