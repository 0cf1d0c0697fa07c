"""Timer triggers: each tick of a cron schedule becomes an asynchronous call.

One task sleeps until the earliest next tick of all timers, then submits a
call for every timer due (so a tick gets the retries and dead letters of any
asynchronous call) with ``X-Faasd-Timer-Name`` and ``X-Faasd-Scheduled-Time``
(the request's context in the runtimes), and stores the tick's time.

- overlap ``forbid`` (default): a tick while the timer's previous call is still
  queued or running is skipped, and logged; ``allow`` submits it anyway.
- missed ticks (faasd was down): ``catch_up once`` (default) makes one call at
  start, for the latest missed tick; ``none`` makes none. Never one per missed
  tick.

Once per tick, cluster-wide: every node sharing the database runs this
scheduler, and the node whose conditional UPDATE moves the timer's
``last_tick`` up to the tick makes it (the overlap check and the call's insert
are in the same transaction); the others find the tick made and skip it. A
node that cannot make the call (it does not know the function yet, its queue
is full) leaves the tick to the others: it claims nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from faasd.core.entities import Function
from faasd.core.errors import FaasdError
from faasd.core.events import CallRequest, Timer
from faasd.events import cron
from faasd.events.queue import CallQueue
from faasd.events.tasks import stop_tasks
from faasd.store.events import TriggerStore

log = logging.getLogger(__name__)

# At most this many missed ticks are walked to find the latest one (a 1 s timer
# down for a day has 86,400); past it the catch-up run is for the first missed.
MAX_CATCH_UP_WALK = 10_000


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def call_for(timer: Timer, scheduled: float) -> CallRequest:
    return CallRequest(
        function=timer.function,
        method=timer.method,
        target=f"/function/{timer.function}{timer.subpath}",
        headers=(("X-Faasd-Timer-Name", timer.name), ("X-Faasd-Scheduled-Time", iso(scheduled))),
        body=b"",
        trigger="timer",
        trigger_name=timer.name,
        # One call per tick, even when a crash between the call and the tick's record makes the
        # catch-up at the next start find the same tick again.
        idempotency_key=f"timer:{timer.name}:{scheduled:.3f}",
    )


class TimerScheduler:
    def __init__(
        self,
        timers: Callable[[], Mapping[str, Timer]],
        functions: Callable[[], Mapping[str, Function]],
        queue: CallQueue,
        store: TriggerStore,
        on_tick: Callable[[str, float], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._timers = timers
        self._functions = functions
        self._queue = queue
        self._store = store
        self._on_tick = on_tick
        self._clock = clock
        self._next: dict[str, float] = {}  # timer -> its next tick (Unix seconds)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.skipped = 0  # ticks skipped by overlap forbid since start
        # Per timer, since start: ticks queued as calls, ticks skipped, and the last tick's lateness (s).
        self.ticks: dict[str, list[float]] = {}

    def start(self) -> None:
        now = self._clock()
        for timer in list(self._timers().values()):
            self._catch_up(timer, now)
            self._plan(timer, now)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="faasd-timers")

    async def close(self) -> None:
        await stop_tasks([self._task])

    def changed(self, name: str) -> None:
        """A timer was created, updated or deleted."""
        timer = self._timers().get(name)
        if timer is None:
            self._next.pop(name, None)
        else:
            self._plan(timer, self._clock())
        self._wake.set()

    def next_runs(self) -> dict[str, float]:
        return dict(self._next)

    def _schedule(self, timer: Timer) -> cron.Schedule | None:
        try:
            return cron.parse(timer.cron, timer.timezone)
        except cron.CronError as exc:  # validated when written; a zone database could change under it
            log.error("timer %s: %s; it does not run", timer.name, exc)
            return None

    def _plan(self, timer: Timer, after: float) -> None:
        schedule = self._schedule(timer)
        if schedule is None:
            self._next.pop(timer.name, None)
            return
        self._next[timer.name] = schedule.next_after(datetime.fromtimestamp(after, UTC)).timestamp()

    def _catch_up(self, timer: Timer, now: float) -> None:
        schedule = self._schedule(timer)
        if schedule is None or timer.last_tick is None:
            return
        missed = schedule.next_after(datetime.fromtimestamp(timer.last_tick, UTC))
        if missed.timestamp() > now:
            return
        if timer.catch_up == "none":
            log.info("timer %s missed ticks while faasd was down; catch-up none: no run", timer.name)
            return
        latest = missed
        for _ in range(MAX_CATCH_UP_WALK):
            following = schedule.next_after(latest)
            if following.timestamp() > now:
                break
            latest = following
        log.info("timer %s missed ticks while faasd was down; one run for %s", timer.name, latest.isoformat())
        self._spawn_fire(timer, latest.timestamp())

    def _spawn_fire(self, timer: Timer, scheduled: float) -> None:
        task = asyncio.get_running_loop().create_task(self._fire(timer, scheduled))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            for name, due in sorted(self._next.items(), key=lambda item: item[1]):
                if due > now:
                    break
                timer = self._timers().get(name)
                if timer is None:
                    self._next.pop(name, None)
                    continue
                self._plan(timer, due)
                if self._next.get(name, due + 1) <= now:  # fell behind (a stall): skip to the future
                    self._plan(timer, now)
                try:
                    await self._fire(timer, due)
                except Exception:  # the store failed: this tick is lost, the timers go on
                    log.exception("timer %s: the tick of %s failed", name, iso(due))
            wait = None if not self._next else max(0.0, min(self._next.values()) - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _fire(self, timer: Timer, scheduled: float) -> None:
        self._on_tick(timer.name, scheduled)
        fn = self._functions().get(timer.function)
        counted = self.ticks.setdefault(timer.name, [0, 0, 0.0])
        counted[2] = max(0.0, self._clock() - scheduled)
        if fn is None:
            # Not claimed: a node whose catalog is ahead (the function just made) may still make this tick.
            counted[1] += 1
            log.error("timer %s: function '%s' does not exist here; tick skipped", timer.name, timer.function)
            return
        overlapped = False

        async def guard(session: AsyncSession) -> bool:
            nonlocal overlapped
            if not await self._store.claim_tick(session, timer.name, scheduled):
                return False  # another node made this tick (or a later one)
            if timer.overlap == "forbid" and await self._queue.store.has_unfinished(session, "timer", timer.name):
                overlapped = True
                return False
            return True

        try:
            call_id, _repeated = await self._queue.submit(
                call_for(timer, scheduled), max_attempts=fn.retries + 1, max_age=fn.retry_max_age, guard=guard
            )
        except FaasdError as exc:
            # This node's queue is full, or the database did not answer: not claimed, another node may make it.
            log.warning("timer %s: tick of %s not queued here: %s", timer.name, iso(scheduled), exc)
            return
        except Exception:
            await self._claim_alone(timer, scheduled)  # the tick is lost, not made again later
            raise
        if overlapped:
            counted[1] += 1
            self.skipped += 1
            log.info(
                "timer %s: tick of %s skipped: the previous call is still unfinished (overlap forbid)",
                timer.name,
                iso(scheduled),
            )
        elif call_id:
            counted[0] += 1

    async def _claim_alone(self, timer: Timer, scheduled: float) -> bool:
        """Make the tick without a call (its submit failed for a fault of faasd's): True when this node made it."""
        try:
            return bool(await self._queue.write(lambda s: self._store.claim_tick(s, timer.name, scheduled)))
        except Exception:
            log.exception("timer %s: storing the tick of %s failed", timer.name, iso(scheduled))
            return False
