"""Background upkeep: removes idle instances and keeps the pools topped up."""

from __future__ import annotations

import asyncio
import logging

from faasd.pool.manager import PoolManager

log = logging.getLogger(__name__)


def tick_for(idle_timeout: float) -> float:
    """Fission reaps every 5 s; a shorter idle timeout gets a proportionally shorter tick."""
    return max(0.05, min(5.0, idle_timeout / 4))


async def run_reaper(pool: PoolManager, tick: float) -> None:
    while True:
        await asyncio.sleep(tick)
        try:
            pool.reap_idle()
            pool.fill_all()
            await pool.check_health()
        except Exception:  # the reaper must outlive any one bad tick
            log.exception("reaper tick failed")
