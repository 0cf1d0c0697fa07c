"""Usage metering: what each function used, per hour, written to the registry.

Every ``interval`` seconds (and on the hour, and at shutdown) the meter takes
what happened since its last flush and adds it to the hour's row
(faasd/store/usage.py):

- calls: every call that ended (synchronous, asynchronous deliveries, message
  and timer deliveries), whatever its status;
- billed_ms: the sum of their durations on an instance (from the request
  sent to it to the end of its answer, as faasd measures it), each rounded up
  to the millisecond as Lambda bills; waiting for an instance (a queue, a cold
  start) is not billed, and a call that never reached one bills nothing;
- gb_seconds: billed seconds x the function's memory limit in GiB (a deleted
  function's as it was at the delete);
- instance_seconds: how long the function's instances lived, idle or busy.

Figures in memory when faasd is killed (at most ``interval`` seconds' worth)
are lost; a stop (SIGTERM, Ctrl-C) flushes them first. A call counts in the
hour its figures are taken in: those of the last ~0.1 s of an hour may land
in the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from faasd.observe.calls import TOMB_SECONDS, CallStats, FunctionCalls

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
HOUR_MARGIN = 0.1  # seconds: the flush at the end of an hour comes this much before it


@dataclass(frozen=True)
class UsageDelta:
    function: str
    hour: int
    calls: int
    billed_ms: int
    gb_seconds: float
    instance_seconds: float


class UsageSink(Protocol):
    async def add(self, rows: Sequence[UsageDelta]) -> None: ...


class InstanceClock(Protocol):
    def take_instance_seconds(self) -> dict[str, float]: ...


class UsageMeter:
    def __init__(
        self,
        stats: CallStats,
        instances: InstanceClock,
        sink: UsageSink,
        memory_mb: Callable[[str], int | None],
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stats = stats
        self._instances = instances
        self._sink = sink
        self._memory_mb = memory_mb  # a function's memory limit now (None: deleted)
        self.interval = interval
        self._clock = clock
        # Per counters object (a live function's, or a deleted one's): (calls, billed_ms) last taken.
        self._seen: dict[FunctionCalls, tuple[int, int]] = {}
        self._memory_seen: dict[str, int] = {}  # each live function's memory, as last known
        self._unsaved: dict[tuple[str, int], UsageDelta] = {}  # taken, not yet on disk (retried)
        self.flushes = 0
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    def take(self) -> list[UsageDelta]:
        """What was used since the last take, as rows of the current hour."""
        stats = self._stats
        hour = int(self._clock() // 3600 * 3600)
        seconds = self._instances.take_instance_seconds()
        gone, stats.gone = stats.gone, []
        by_name: dict[str, list[FunctionCalls]] = {}
        for name, fc in [*gone, *stats.deleted.items(), *stats.functions.items()]:
            by_name.setdefault(name, []).append(fc)
        rows: list[UsageDelta] = []
        for name in sorted(by_name.keys() | seconds.keys()):
            calls = billed = 0
            gb_seconds = 0.0
            for fc in by_name.get(name, ()):
                base_calls, base_billed = self._seen.get(fc, (0, 0))
                delta_calls, delta_billed = fc.calls - base_calls, fc.billed_ms - base_billed
                self._seen[fc] = (fc.calls, fc.billed_ms)
                if not delta_calls and fc.deleted_at is not None and stats.deleted.get(name) is fc:
                    if stats.quiet_since(fc) > TOMB_SECONDS:
                        stats.bury(name, fc)  # calls in flight at its delete have long ended
                    continue
                memory = fc.memory_mb if fc.deleted_at is not None else self._memory_of(name)
                calls += delta_calls
                billed += delta_billed
                gb_seconds += delta_billed / 1000 * memory / 1024
            lived = seconds.get(name, 0.0)
            if calls or lived > 0:
                rows.append(UsageDelta(name, hour, calls, billed, gb_seconds, lived))
        # Forget what was read of counters that are gone for good.
        live = {id(fc) for fc in (*stats.functions.values(), *stats.deleted.values())}
        self._seen = {fc: seen for fc, seen in self._seen.items() if id(fc) in live}
        self._memory_seen = {n: m for n, m in self._memory_seen.items() if n in stats.functions}
        return rows

    def _memory_of(self, name: str) -> int:
        memory = self._memory_mb(name)
        if memory is None:
            return self._memory_seen.get(name, 0)
        self._memory_seen[name] = memory
        return memory

    async def flush(self) -> None:
        """Take and write; rows a failed write could not save are merged and tried again next time."""
        async with self._lock:  # the API flushes too (GET /v1/usage): one write at a time
            for row in self.take():
                key = (row.function, row.hour)
                held = self._unsaved.get(key)
                self._unsaved[key] = row if held is None else _sum(held, row)
            if not self._unsaved:
                return
            await self._sink.add(list(self._unsaved.values()))
            self._unsaved = {}
            self.flushes += 1

    def _wait(self) -> float:
        """Seconds to the next flush: ``interval``, or just before the hour ends (its figures are its
        own), then just after (the next hour's first)."""
        to_hour = 3600 - self._clock() % 3600
        if to_hour <= HOUR_MARGIN:
            return min(self.interval, to_hour + HOUR_MARGIN)
        return min(self.interval, to_hour - HOUR_MARGIN / 2)

    async def run(self) -> None:
        """Flush every ``interval`` seconds and around the hour until :meth:`stop`, then once more."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait()):
                    await self._stop.wait()
            try:
                await self.flush()
            except Exception:
                log.exception("could not write usage; it is kept and tried again")

    def stop(self) -> None:
        """End :meth:`run` after one last flush (never cancelled halfway through a write)."""
        self._stop.set()


def _sum(a: UsageDelta, b: UsageDelta) -> UsageDelta:
    return UsageDelta(
        a.function,
        a.hour,
        a.calls + b.calls,
        a.billed_ms + b.billed_ms,
        a.gb_seconds + b.gb_seconds,
        a.instance_seconds + b.instance_seconds,
    )
