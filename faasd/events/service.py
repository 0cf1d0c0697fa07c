"""The events part, assembled: queue, dispatcher, timers, watches; started and stopped in order.

Start: queue (loads the unfinished calls) -> dispatcher -> timers (a catch-up
run for a timer that missed ticks) -> watches (each replays from its cursor).
Stop: the other way round, so nothing submits to a queue that is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from faasd.control.controller import Controller
from faasd.core.settings import Settings
from faasd.events.delivery import Dispatcher
from faasd.events.leases import LeasePolicy
from faasd.events.mq.runner import MqRunner
from faasd.events.queue import CallQueue
from faasd.events.timers import TimerScheduler
from faasd.events.triggers import TriggerControl
from faasd.events.watches import EventSource, Watcher
from faasd.pool.manager import PoolManager
from faasd.store.events import InvocationStore, TriggerStore
from faasd.store.registry import Store

log = logging.getLogger(__name__)


@dataclass
class Events:
    queue: CallQueue
    dispatcher: Dispatcher
    triggers: TriggerControl
    timers: TimerScheduler
    watcher: Watcher | None
    mq: MqRunner

    async def close(self) -> None:
        await self.mq.close()
        if self.watcher is not None:
            await self.watcher.close()
        await self.timers.close()
        await self.dispatcher.close()
        await self.queue.close()


async def start_events(
    settings: Settings,
    store: Store,
    controller: Controller,
    pool: PoolManager,
    session: aiohttp.ClientSession,
    source: EventSource | None,
) -> Events:
    """``source`` None: no engine to watch (watches are stored but not followed)."""
    leases = LeasePolicy(node=settings.owner, lease=settings.async_lease)
    queue = CallQueue(InvocationStore(store.engine), max_queued=settings.max_async_queue, leases=leases)
    await queue.start()

    def functions():  # type: ignore[no-untyped-def]
        return controller.catalog.functions

    dispatcher = Dispatcher(queue, functions, pool, session, concurrency=settings.async_concurrency)
    dispatcher.start()
    trigger_store = TriggerStore(store.engine, node=settings.owner)  # watch positions are per node
    timers, watches = await trigger_store.load()
    triggers = TriggerControl(controller, trigger_store)
    triggers.load(timers, [w for w, _cursor, _snapshot in watches], await trigger_store.load_mq())
    controller.dependents.append(triggers)
    scheduler = TimerScheduler(lambda: triggers.timers, functions, queue, trigger_store, triggers.ticked)
    scheduler.start()
    triggers.timer_listener = scheduler
    watcher = None
    if source is not None:
        watcher = Watcher(lambda: triggers.watches, functions, source, queue, trigger_store)
        watcher.start({w.name: (cursor, snapshot) for w, cursor, snapshot in watches})
        triggers.watch_listener = watcher
    mq = MqRunner(lambda: triggers.mq, functions, pool, session, settings.owner)
    mq.start()
    triggers.mq_listener = mq
    triggers.mq_probe = mq.probe
    return Events(queue, dispatcher, triggers, scheduler, watcher, mq)
