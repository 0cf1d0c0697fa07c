"""Usage metering: what each function used, per hour, written to the registry.

Every ``interval`` seconds (and on the hour, and at shutdown) the meter takes
what happened since its last flush and adds it to the hour's row
(faasd/store/usage.py):

- calls: every call that ended (synchronous, asynchronous deliveries, message
  and timer deliveries), whatever its status;
- billed_ms: the sum of their durations, each rounded up to the millisecond
  (as Lambda bills), measured by faasd from request to the end of the answer;
- gb_seconds: billed seconds x the function's memory limit in GiB;
- instance_seconds: how long the function's instances lived, idle or busy.

Figures in memory when faasd is killed (at most ``interval`` seconds' worth)
are lost; a stop (SIGTERM, Ctrl-C) flushes them first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from faasd.observe.calls import CallStats, FunctionCalls

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0


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
        # Per function: the counters last read and (calls, billed_ms) they held then.
        self._seen: dict[str, tuple[FunctionCalls, int, int]] = {}
        self._memory_seen: dict[str, int] = {}  # the memory of functions since deleted, as last known
        self._unsaved: list[UsageDelta] = []  # taken, not yet on disk (a failed write is retried)
        self.flushes = 0
        self._lock = asyncio.Lock()

    def take(self) -> list[UsageDelta]:
        """What was used since the last take, as rows of the current hour."""
        hour = int(self._clock() // 3600 * 3600)
        rows: list[UsageDelta] = []
        seconds = self._instances.take_instance_seconds()
        gone, self._stats.gone = self._stats.gone, []
        counters = [*gone, *self._stats.functions.items()]
        names = {name for name, _ in counters} | seconds.keys()
        for name in sorted(names):
            calls = billed = 0
            for counted_name, fc in counters:
                if counted_name != name:
                    continue
                seen = self._seen.get(name)
                base_calls, base_billed = (seen[1], seen[2]) if seen is not None and seen[0] is fc else (0, 0)
                calls += fc.calls - base_calls
                billed += fc.billed_ms - base_billed
                self._seen[name] = (fc, fc.calls, fc.billed_ms)
            if name not in self._stats.functions:
                self._seen.pop(name, None)
            lived = seconds.get(name, 0.0)
            if not calls and lived <= 0:
                continue
            memory = self._memory_mb(name)
            if memory is None:
                memory = self._memory_seen.get(name, 0)
            else:
                self._memory_seen[name] = memory
            rows.append(UsageDelta(name, hour, calls, billed, billed / 1000 * memory / 1024, lived))
        return rows

    async def flush(self) -> None:
        """Take and write; rows a failed write could not save are tried again next time."""
        async with self._lock:  # the API flushes too (GET /v1/usage): one write at a time
            rows = self._unsaved + self.take()
            if not rows:
                return
            self._unsaved = rows
            await self._sink.add(rows)
            self._unsaved = []
            self.flushes += 1

    async def run(self) -> None:
        """Flush every ``interval`` seconds and on the hour, until cancelled (then flush once more)."""
        try:
            while True:
                now = self._clock()
                to_hour = 3600 - now % 3600
                await asyncio.sleep(min(self.interval, to_hour + 0.01))
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not write usage; it is kept and tried again")
        finally:
            try:
                await asyncio.shield(self.flush())
            except Exception:
                log.exception("could not write usage at shutdown")
