"""The last hour of each function, minute by minute, for the dashboard and ``/v1/stats``.

Every minute (on the minute) the cumulative counters of faasd.observe.calls are
read and the difference from the previous reading becomes that minute's bucket:
calls, 5xx errors, cold starts and the duration histogram (from which p50 and
p99 are estimated). Recording a call costs nothing more. The current minute is
answered live (counters now minus the last reading), so a call shows at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faasd.observe.calls import DURATION_BUCKETS, CallStats, FunctionCalls, quantile

MINUTES = 60


@dataclass(frozen=True)
class _Reading:
    calls: int
    errors: int
    cold_starts: int
    durations: tuple[int, ...]

    @staticmethod
    def of(calls: FunctionCalls) -> _Reading:
        return _Reading(calls.calls, calls.errors, calls.cold_starts, calls.duration.snapshot())

    def minus(self, earlier: _Reading | None) -> _Reading:
        if earlier is None:
            return self
        return _Reading(
            self.calls - earlier.calls,
            self.errors - earlier.errors,
            self.cold_starts - earlier.cold_starts,
            tuple(a - b for a, b in zip(self.durations, earlier.durations, strict=True)),
        )


_EMPTY = _Reading(0, 0, 0, (0,) * (len(DURATION_BUCKETS) + 1))


class MinuteSeries:
    def __init__(self, stats: CallStats, clock: Callable[[], float] = time.time, minutes: int = MINUTES) -> None:
        self._stats = stats
        self._clock = clock
        self.minutes = minutes
        self._minute = int(clock() // 60)  # the minute the live bucket belongs to
        # Per function: the reading at the start of the live minute (and whose counters it read).
        self._last: dict[str, tuple[FunctionCalls, _Reading]] = {}
        self._ring: dict[str, deque[_Reading]] = {}  # finished minutes, oldest first, at most minutes - 1
        for name, calls in stats.functions.items():
            self._last[name] = (calls, _Reading.of(calls))

    def seconds_to_next_minute(self) -> float:
        now = self._clock()
        return 60.0 - now % 60.0

    def roll(self) -> None:
        """Close the minutes that have ended since the last roll (call it on the minute)."""
        minute = int(self._clock() // 60)
        elapsed = minute - self._minute
        if elapsed <= 0:
            return
        self._minute = minute
        live = self._stats.functions
        for name in list(self._ring.keys() | live.keys()):
            calls = live.get(name)
            ring = self._ring.setdefault(name, deque(maxlen=self.minutes - 1))
            if calls is None:  # deleted: its history goes with it
                del self._ring[name]
                self._last.pop(name, None)
                continue
            reading = self._since_last(name, calls)
            ring.append(reading if reading.calls or reading.cold_starts else _EMPTY)  # idle: shared
            for _ in range(min(elapsed - 1, self.minutes)):
                ring.append(_EMPTY)  # minutes without a roll (a paused process) had no reading
            self._last[name] = (calls, _Reading.of(calls))

    def _since_last(self, name: str, calls: FunctionCalls) -> _Reading:
        last = self._last.get(name)
        earlier = last[1] if last is not None and last[0] is calls else None
        return _Reading.of(calls).minus(earlier)

    def view(self, function: str | None = None) -> dict[str, Any]:
        """The contract of ``GET /v1/stats``: per function, ``minutes`` buckets, oldest first."""
        self.roll()
        names = [function] if function is not None else sorted(self._stats.functions)
        out: dict[str, Any] = {}
        for name in names:
            calls = self._stats.functions.get(name)
            past = list(self._ring.get(name, ()))
            buckets = [_EMPTY] * (self.minutes - 1 - len(past)) + past
            buckets.append(self._since_last(name, calls) if calls is not None else _EMPTY)
            out[name] = {
                "calls": [b.calls for b in buckets],
                "errors": [b.errors for b in buckets],
                "cold_starts": [b.cold_starts for b in buckets],
                "p50_ms": [_ms(quantile(DURATION_BUCKETS, b.durations, 0.5)) for b in buckets],
                "p99_ms": [_ms(quantile(DURATION_BUCKETS, b.durations, 0.99)) for b in buckets],
            }
        return {"step": 60, "start": (self._minute - self.minutes + 1) * 60, "functions": out}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
