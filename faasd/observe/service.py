"""The observability tasks: the minute roll of the series and the usage meter, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faasd.observe.series import MinuteSeries
from faasd.observe.usage import UsageMeter

log = logging.getLogger(__name__)


class Observer:
    def __init__(self, series: MinuteSeries, meter: UsageMeter) -> None:
        self.series = series
        self.meter = meter
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._roll(), name="faasd-series"),
            loop.create_task(self.meter.run(), name="faasd-usage"),
        ]

    async def _roll(self) -> None:
        while True:
            await asyncio.sleep(self.series.seconds_to_next_minute() + 0.01)
            self.series.roll()

    async def close(self) -> None:
        """Stop; the meter writes what it holds first (faasd/observe/usage.py), never cut off mid-write."""
        roll, meter = self._tasks or (None, None)
        self._tasks = []
        if roll is not None:
            roll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await roll
        if meter is not None:
            self.meter.stop()
            await meter
