"""faasd/events/timers.py: cron ticks become asynchronous calls, with overlap and catch-up rules.

A fake clock drives the scheduler; the queue is the real one on a SQLite file.
The scheduler sleeps on the event loop's clock until its next tick or until
it is told of a change, so after moving the fake clock a test wakes it with
``changed()`` of a timer that does not exist (which changes no plan).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from faasd.core.entities import Environment, Function
from faasd.core.events import CallStatus, Invocation, Timer
from faasd.events.queue import CallQueue
from faasd.events.timers import TimerScheduler, call_for
from faasd.store.events import CallFilter, InvocationStore, TriggerStore
from faasd.store.registry import Store


def utc(hour: int, minute: int, second: float = 0.0, day: int = 1) -> float:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC).timestamp() + second


START = utc(0, 17, 30)  # 2026-01-01T00:17:30Z
CREATED = datetime(2025, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyCalls(InvocationStore):
    """An invocation store whose next insert fails as SQLite does when the disk is full or the file locked."""

    fail = 0

    async def insert(self, session, inv, *lease):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail -= 1
            raise OperationalError("INSERT INTO invocations", {}, Exception("database is locked"))
        await super().insert(session, inv, *lease)


def function(name: str = "hello") -> Function:
    return Function(
        name=name,
        environment="python",
        filename="hello.py",
        entrypoint="main",
        timeout=5,
        code_sha256="0" * 64,
        code_size=1,
        revision=1,
        created_at=CREATED,
        updated_at=CREATED,
        retries=2,
        retry_max_age=600,
    )


def timer(name: str = "t", **fields: object) -> Timer:
    values: dict[str, object] = {
        "function": "hello",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "method": "POST",
        "subpath": "/run",
        "overlap": "forbid",
        "catch_up": "once",
        "last_tick": None,
        **fields,
    }
    return Timer(name=name, created_at=CREATED, updated_at=CREATED, **values)  # type: ignore[arg-type]


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = Clock(START)
        self.timers: dict[str, Timer] = {}
        self.functions: dict[str, Function] = {}
        self.ticks: list[tuple[str, float]] = []
        self.store: Store
        self.triggers: TriggerStore
        self.calls: FlakyCalls
        self.queue: CallQueue
        self.scheduler: TimerScheduler | None = None

    async def open(self) -> None:
        self.store = await Store.open(self.root / "faasd.db")
        await self.store.add_environment(Environment("python", "img", 0, CREATED, CREATED))
        await self.store.add_function(function())
        self.functions["hello"] = function()
        self.triggers = TriggerStore(self.store.engine)
        self.calls = FlakyCalls(self.store.engine)
        self.queue = CallQueue(self.calls, max_queued=100, clock=self.clock)
        await self.queue.start()

    async def add(self, t: Timer) -> Timer:
        await self.triggers.put_timer(t, new=True)
        self.timers[t.name] = t
        return t

    def start(self) -> TimerScheduler:
        self.scheduler = TimerScheduler(
            lambda: self.timers,
            lambda: self.functions,
            self.queue,
            self.triggers,
            lambda name, tick: self.ticks.append((name, tick)),
            clock=self.clock,
        )
        self.scheduler.start()
        return self.scheduler

    def wake(self) -> None:
        assert self.scheduler is not None
        self.scheduler.changed("no-such-timer")

    async def last_tick(self, name: str = "t") -> float | None:
        timers, _ = await self.triggers.load()
        return {t.name: t.last_tick for t in timers}[name]

    async def calls_made(self) -> list[Invocation]:
        return sorted(await self.queue.find(CallFilter(limit=1000)), key=lambda inv: inv.created_at)

    async def finish_all(self) -> None:
        for call_id in list(self.queue.entries):
            await self.queue.record(replace(await self.queue.get(call_id), status=CallStatus.succeeded))

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        await self.queue.close()
        await self.store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    await e.open()
    yield e
    await e.close()


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let spawned tasks and the scheduler's loop run what they can without the clock moving."""
    for _ in range(20):
        await asyncio.sleep(0.001)


async def tick_to(env: Env, moment: float, ticks: int) -> None:
    """Move the clock to ``moment``, wake the scheduler and wait until it has made ``ticks`` ticks in all."""
    env.clock.now = moment
    env.wake()
    await until(lambda: len(env.ticks) >= ticks)
    scheduled = env.ticks[ticks - 1][1]
    await until(lambda: _equals(env.last_tick(env.ticks[ticks - 1][0]), scheduled))


async def _equals(value: Awaitable[float | None], expected: float) -> bool:
    return await value == expected


def header(inv: Invocation, name: str) -> str:
    return dict(inv.request.headers)[name]


# -- planning -----------------------------------------------------------------------------------------


async def test_the_next_tick_comes_from_the_cron(env: Env) -> None:
    await env.add(timer("five"))
    await env.add(timer("every", cron="@every 45s"))
    await env.add(timer("berlin", cron="0 9 * * *", timezone="Europe/Berlin"))
    await env.add(timer("seconds", cron="*/20 * * * * *"))
    scheduler = env.start()
    assert scheduler.next_runs() == {
        "five": utc(0, 20),
        "every": (START // 45 + 1) * 45,
        "berlin": utc(8, 0),  # 09:00 in Berlin is 08:00 UTC in winter
        "seconds": utc(0, 17, 40),
    }
    await settle()
    assert env.ticks == []
    assert await env.calls_made() == []


async def test_changes_replan_and_a_deleted_timer_stops(env: Env) -> None:
    await env.add(timer())
    scheduler = env.start()
    env.timers["t"] = replace(env.timers["t"], cron="0 * * * *")
    scheduler.changed("t")
    assert scheduler.next_runs() == {"t": utc(1, 0)}
    del env.timers["t"]
    scheduler.changed("t")
    assert scheduler.next_runs() == {}
    env.clock.now = utc(1, 0, 1)
    env.wake()
    await settle()
    assert env.ticks == []
    assert await env.calls_made() == []


# -- ticks ------------------------------------------------------------------------------------------


async def test_a_tick_becomes_a_call(env: Env) -> None:
    await env.add(timer())
    scheduler = env.start()
    await tick_to(env, utc(0, 20, 0.25), 1)
    assert env.ticks == [("t", utc(0, 20))]
    (made,) = await env.calls_made()
    assert made.request.function == "hello"
    assert (made.request.method, made.request.target) == ("POST", "/function/hello/run")
    assert (made.request.trigger, made.request.trigger_name) == ("timer", "t")
    assert header(made, "X-Faasd-Timer-Name") == "t"
    assert header(made, "X-Faasd-Scheduled-Time") == "2026-01-01T00:20:00.000Z"
    assert (made.max_attempts, made.max_age) == (3, 600)  # the function's retries + 1 and retry_max_age
    assert made.status == CallStatus.queued
    assert scheduler.next_runs() == {"t": utc(0, 25)}
    assert await env.last_tick() == utc(0, 20)


async def test_overlap_forbid_skips_a_tick_while_the_previous_call_is_unfinished(env: Env) -> None:
    await env.add(timer(overlap="forbid"))
    scheduler = env.start()
    await tick_to(env, utc(0, 20, 0.1), 1)
    assert env.queue.has_unfinished("timer", "t")
    await tick_to(env, utc(0, 25, 0.1), 2)
    assert scheduler.skipped == 1
    assert len(await env.calls_made()) == 1
    # Running counts as unfinished too.
    assert env.queue.pop_due(utc(0, 30)) is not None
    await tick_to(env, utc(0, 30, 0.1), 3)
    assert scheduler.skipped == 2
    assert len(await env.calls_made()) == 1
    # Once it is finished, the next tick makes a call again.
    await env.finish_all()
    await tick_to(env, utc(0, 35, 0.1), 4)
    assert scheduler.skipped == 2
    made = await env.calls_made()
    assert [header(inv, "X-Faasd-Scheduled-Time") for inv in made] == [
        "2026-01-01T00:20:00.000Z",
        "2026-01-01T00:35:00.000Z",
    ]
    assert await env.last_tick() == utc(0, 35)


async def test_overlap_forbid_looks_at_its_own_timer_only(env: Env) -> None:
    await env.add(timer("other", cron="0 0 1 1 *"))
    # An unfinished call of another timer.
    await env.queue.submit(call_for(timer("other"), utc(0, 0)), max_attempts=1, max_age=60)
    await env.add(timer())
    env.start()
    await tick_to(env, utc(0, 20, 0.1), 1)
    assert [inv.request.trigger_name for inv in await env.calls_made()] == ["other", "t"]


async def test_overlap_allow_submits_every_tick(env: Env) -> None:
    await env.add(timer(overlap="allow"))
    scheduler = env.start()
    await tick_to(env, utc(0, 20, 0.1), 1)
    await tick_to(env, utc(0, 25, 0.1), 2)
    await tick_to(env, utc(0, 30, 0.1), 3)
    assert scheduler.skipped == 0
    made = await env.calls_made()
    assert [header(inv, "X-Faasd-Scheduled-Time") for inv in made] == [
        "2026-01-01T00:20:00.000Z",
        "2026-01-01T00:25:00.000Z",
        "2026-01-01T00:30:00.000Z",
    ]


async def test_a_tick_of_a_deleted_function_is_skipped(env: Env) -> None:
    await env.add(timer())
    scheduler = env.start()
    del env.functions["hello"]
    env.clock.now = utc(0, 20, 0.1)
    env.wake()
    await until(lambda: scheduler.ticks.get("t", [0, 0])[1] == 1)
    assert await env.calls_made() == []
    assert scheduler.skipped == 0  # not an overlap
    assert await env.last_tick() is None  # not made: another node, whose catalog knows the function, may make it
    # The function back: the next tick calls it.
    env.functions["hello"] = function()
    await tick_to(env, utc(0, 25, 0.1), 2)
    assert len(await env.calls_made()) == 1


async def test_a_full_queue_skips_the_tick_and_the_timer_goes_on(env: Env) -> None:
    await env.add(timer(overlap="allow"))
    env.queue.max_queued = 0
    env.start()
    env.clock.now = utc(0, 20, 0.1)
    env.wake()
    await until(lambda: len(env.ticks) == 1)
    await settle()
    assert await env.calls_made() == []
    assert await env.last_tick() is None  # not made: another node, whose queue has room, may make it
    env.queue.max_queued = 100
    await tick_to(env, utc(0, 25, 0.1), 2)
    assert len(await env.calls_made()) == 1


async def test_after_a_stall_one_call_and_the_plan_skips_to_the_future(env: Env) -> None:
    await env.add(timer(overlap="allow"))
    scheduler = env.start()
    await tick_to(env, utc(0, 41), 1)  # the machine slept from 00:17:30 to 00:41
    await settle()
    assert len(env.ticks) == 1
    assert len(await env.calls_made()) == 1
    assert scheduler.next_runs() == {"t": utc(0, 45)}


async def test_a_failed_write_does_not_stop_the_timers(env: Env) -> None:
    await env.add(timer(overlap="allow"))
    scheduler = env.start()
    try:
        env.calls.fail = 1
        env.clock.now = utc(0, 20, 0.1)
        env.wake()
        await until(lambda: len(env.ticks) == 1)
        await settle()
        assert await env.calls_made() == []
        env.clock.now = utc(0, 25, 0.1)
        env.wake()
        await until(lambda: len(env.ticks) == 2, within=0.5)
        await until(lambda: _count(env.calls_made(), 1), within=0.5)
    finally:
        # As it is, close() re-raises the error that ended the task: keep it out of the teardown.
        env.scheduler = None
        with contextlib.suppress(Exception):
            await scheduler.close()


async def _count(calls: Awaitable[list[Invocation]], expected: int) -> bool:
    return len(await calls) == expected


# -- catch-up at start ----------------------------------------------------------------------------------


async def test_catch_up_once_makes_one_call_for_the_latest_missed_tick(env: Env) -> None:
    await env.add(timer(catch_up="once", last_tick=utc(0, 0)))  # missed 00:05, 00:10 and 00:15
    scheduler = env.start()
    await until(lambda: len(env.ticks) == 1)
    await until(lambda: _equals(env.last_tick(), utc(0, 15)))
    await settle()
    assert env.ticks == [("t", utc(0, 15))]
    (made,) = await env.calls_made()
    assert header(made, "X-Faasd-Scheduled-Time") == "2026-01-01T00:15:00.000Z"
    assert header(made, "X-Faasd-Timer-Name") == "t"
    assert scheduler.next_runs() == {"t": utc(0, 20)}


async def test_catch_up_once_after_a_long_absence(env: Env) -> None:
    # Down for more than a day: still one call, for the latest tick missed.
    await env.add(timer(catch_up="once", cron="*/1 * * * *", last_tick=utc(23, 0, day=1) - 86400))
    env.clock.now = utc(0, 17, 30, day=2)
    env.start()
    await until(lambda: len(env.ticks) == 1)
    await until(lambda: _count(env.calls_made(), 1))
    await settle()
    (made,) = await env.calls_made()
    assert header(made, "X-Faasd-Scheduled-Time") == "2026-01-02T00:17:00.000Z"
    assert len(env.ticks) == 1


async def test_catch_up_none_makes_no_call(env: Env) -> None:
    await env.add(timer(catch_up="none", last_tick=utc(0, 0)))
    scheduler = env.start()
    await settle()
    assert env.ticks == []
    assert await env.calls_made() == []
    assert await env.last_tick() == utc(0, 0)
    assert scheduler.next_runs() == {"t": utc(0, 20)}
    # The schedule goes on as usual.
    await tick_to(env, utc(0, 20, 0.1), 1)
    assert len(await env.calls_made()) == 1


async def test_no_catch_up_when_no_tick_was_missed(env: Env) -> None:
    await env.add(timer(catch_up="once", last_tick=utc(0, 15)))
    await env.add(timer("new", catch_up="once", last_tick=None))
    env.start()
    await settle()
    assert env.ticks == []
    assert await env.calls_made() == []


async def test_catch_up_of_a_deleted_function_makes_no_call(env: Env) -> None:
    await env.add(timer(catch_up="once", last_tick=utc(0, 0)))
    del env.functions["hello"]
    scheduler = env.start()
    await until(lambda: scheduler.ticks.get("t", [0, 0])[1] == 1)
    assert await env.calls_made() == []
    assert await env.last_tick() == utc(0, 0)  # left to a node that knows the function


async def test_catch_up_respects_overlap_forbid(env: Env) -> None:
    # The previous tick's call was still queued when faasd stopped.
    await env.queue.submit(call_for(timer(), utc(0, 0)), max_attempts=1, max_age=3600)
    await env.add(timer(catch_up="once", overlap="forbid", last_tick=utc(0, 0)))
    scheduler = env.start()
    await until(lambda: len(env.ticks) == 1)
    await until(lambda: _equals(env.last_tick(), utc(0, 15)))
    assert scheduler.skipped == 1
    assert len(await env.calls_made()) == 1
