"""Canaries: the verdict of an interval, the interval's spelling, and the canary's life on a real registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from faasd.control.canary import CanaryControl, CanaryRunner
from faasd.control.controller import Controller
from faasd.core.canary import Action, Canary, CanaryStatus, Verdict, decide, interval
from faasd.core.errors import BadRequest, Conflict, NotFound
from faasd.store.canaries import CanaryStore
from tests.unit.test_registry import HELLO, Registry

NOW = datetime(2026, 12, 1, tzinfo=UTC)


# -- the verdict ---------------------------------------------------------------------------------


def test_no_calls_hold_the_weight() -> None:
    assert decide(40, 20, 10, 0, 0) == Verdict(Action.hold, 40, None)


def test_a_healthy_interval_steps_and_reaching_100_succeeds() -> None:
    assert decide(20, 20, 10, 50, 0) == Verdict(Action.step, 40, 0.0)
    assert decide(80, 20, 10, 50, 5) == Verdict(Action.succeed, 100, 10.0)  # at the threshold: still healthy
    assert decide(90, 20, 10, 50, 0).weight == 100  # never past 100


def test_above_the_threshold_rolls_back_to_zero() -> None:
    assert decide(60, 20, 10, 50, 6) == Verdict(Action.abort, 0, 12.0)
    assert decide(20, 20, 0, 1000, 1).action is Action.abort  # a threshold of 0: any failure
    assert decide(20, 20, 100, 10, 10).action is Action.step  # of 100: never


def test_an_interval_is_seconds_or_a_duration() -> None:
    assert [interval(v) for v in (1, 90, 60.0, "90", "1m", "2m", "1m30s", "1h", " 30s ")] == [
        1, 90, 60, 90, 60, 120, 90, 3600, 30
    ]  # fmt: skip
    for bad in ("1.5s", "", "m", "abc", True, None, 1.5, [1]):
        with pytest.raises(BadRequest, match="increment_interval must be whole seconds or a duration"):
            interval(bad)
    for out in (0, "0s", 86401, "25h"):
        with pytest.raises(BadRequest, match="increment_interval must be between 1 s and 86400 s"):
            interval(out)


def test_the_route_splits_as_the_canary_stands() -> None:
    running = Canary("c", "new", "old", "r", NOW, NOW, weight=20)
    assert running.route_weights() == (("old", 80), ("new", 20))
    assert Canary("c", "new", "old", "r", NOW, NOW, status=CanaryStatus.aborted).route_weights() == (("old", 100),)
    done = Canary("c", "new", "old", "r", NOW, NOW, status=CanaryStatus.succeeded, weight=100)
    assert done.route_weights() == (("new", 100),)


# -- a canary's life, on a real registry ------------------------------------------------------------


class Bench:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.counts: dict[str, tuple[int, int]] = {}
        self.ticks: asyncio.Queue[None] = asyncio.Queue()
        self.slept: list[float] = []
        self.runners: list[CanaryRunner] = []
        self.judged = 0  # intervals the runners have judged

    async def open(self) -> tuple[Controller, CanaryControl]:
        controller = await self.registry.open()
        control = CanaryControl(controller, CanaryStore(self.registry.stores[-1].engine))
        control.load(await CanaryStore(self.registry.stores[-1].engine).load())
        controller.dependents.append(control)
        return controller, control

    async def run(self, control: CanaryControl) -> CanaryRunner:
        """Start the runner; its tasks take their baselines (the counts now) before this returns."""

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            await self.ticks.get()

        judge = control.advance

        async def advance(name: str, calls: int, failures: int) -> bool:
            try:
                return await judge(name, calls, failures)
            finally:
                self.judged += 1

        control.advance = advance  # type: ignore[method-assign]
        runner = CanaryRunner(control, lambda fn: self.counts.get(fn, (0, 0)), sleep)
        running = sum(1 for c in control.canaries.values() if c.status is CanaryStatus.running)
        asleep = len(self.slept) + running
        runner.start()
        self.runners.append(runner)
        await self.until(lambda: len(self.slept) >= asleep, "every running canary's first interval to begin")
        return runner

    @staticmethod
    async def until(condition: Any, what: str, seconds: float = 10.0) -> None:
        """Bounded polling on the loop."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.002)

    async def tick(self, control: CanaryControl, name: str) -> Canary:
        """One interval ends; wait (bounded) until the runner has judged it."""
        judged = self.judged
        self.ticks.put_nowait(None)
        await self.until(lambda: self.judged > judged, "the runner to judge the interval")
        return control.canaries[name]


@pytest.fixture
async def bench(tmp_path: Path, database: str) -> AsyncIterator[Bench]:
    b = Bench(Registry(tmp_path, database))
    yield b
    for runner in b.runners:
        await runner.close()
    await b.registry.close()


async def two_functions(c: Controller) -> None:
    for name in ("old", "new", "other"):
        await c.create_function({"name": name, "environment": "nodejs", "code": HELLO})
    await c.create_trigger({"url": "/x", "function": "old", "name": "r"})


def body(**extra: Any) -> dict[str, Any]:
    return {"name": "c", "newfunction": "new", "oldfunction": "old", "httptrigger": "r", **extra}


async def test_create_splits_the_route_and_checks_what_it_names(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    with pytest.raises(BadRequest, match="newfunction and oldfunction must be two different functions"):
        await canaries.create(body(newfunction="old"))
    with pytest.raises(BadRequest, match="newfunction 'ghost' does not exist"):
        await canaries.create(body(newfunction="ghost"))
    with pytest.raises(BadRequest, match="httptrigger 'nope' does not exist"):
        await canaries.create(body(httptrigger="nope"))
    with pytest.raises(BadRequest, match="httptrigger: route 'r' names 'old', not 'other'"):
        await canaries.create(body(oldfunction="other"))
    with pytest.raises(BadRequest, match="increment_step must be between 1 and 100"):
        await canaries.create(body(increment_step=0))
    canary = await canaries.create(body(increment_step=30, increment_interval="1m"))
    assert (canary.status, canary.weight, canary.increment_interval, canary.failure_threshold) == (
        CanaryStatus.running,
        30,
        60,
        10,
    )
    assert c.catalog.triggers["r"].functions == (("old", 70), ("new", 30))
    with pytest.raises(Conflict, match="route 'r' is being moved by canary 'c' already"):
        await canaries.create(body(name="d"))
    with pytest.raises(Conflict, match="canary 'c' exists already"):
        await canaries.create(body())
    # A running canary's functions are in use.
    await c.create_trigger({"url": "/y", "function": "other"})
    with pytest.raises(Conflict, match=r"route\(s\) GET /x"):
        await c.delete_function("new")


async def test_a_healthy_new_function_takes_the_route_step_by_step(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body(increment_step=40, increment_interval=2))
    await bench.run(canaries)
    assert (await bench.tick(canaries, "c")).weight == 40  # no calls: held
    bench.counts["new"] = (10, 1)  # 10 % failures: at the threshold, still healthy
    step = await bench.tick(canaries, "c")
    assert (step.weight, step.status) == (80, CanaryStatus.running)
    assert c.catalog.triggers["r"].functions == (("old", 20), ("new", 80))
    assert c.catalog.routes.match("GET", "/x").function in ("old", "new")
    bench.counts["new"] = (30, 1)  # the interval: 20 calls, none failed
    done = await bench.tick(canaries, "c")
    assert (done.weight, done.status) == (100, CanaryStatus.succeeded)
    assert "'new' takes every call of route 'r'" in done.reason
    route = c.catalog.triggers["r"]
    assert (route.function, route.functions) == ("new", ())  # the new function alone
    assert [(s.weight, s.calls, s.failures) for s in done.history] == [(40, 0, 0), (80, 10, 1), (100, 20, 0)]
    assert bench.slept == [2, 2, 2]
    assert done.to_json()["history"][1]["failure_rate"] == 10.0
    # Ended: no longer in use, and it survives a restart as it ended.
    assert canaries.users_of("old") == []
    c, canaries = await bench.open()
    assert canaries.canaries["c"].status is CanaryStatus.succeeded and c.catalog.triggers["r"].function == "new"


async def test_a_failing_new_function_is_rolled_back(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body(increment_step=20, failure_threshold=10))
    await bench.run(canaries)
    bench.counts["new"] = (20, 3)  # 15 %
    aborted = await bench.tick(canaries, "c")
    assert (aborted.status, aborted.weight) == (CanaryStatus.aborted, 0)
    assert "answered 3 of 20 calls with 5xx (15.0 %), above the threshold of 10 %" in aborted.reason
    route = c.catalog.triggers["r"]
    assert (route.function, route.functions) == ("old", ())  # a plain route again: the new one is off it
    assert {c.catalog.routes.match("GET", "/x").function for _ in range(100)} == {"old"}
    with pytest.raises(Conflict, match="canary 'c' has ended"):
        await canaries.update("c", {"increment_step": 50})


async def test_a_restart_resumes_at_the_next_interval(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body(increment_step=25))
    c, canaries = await bench.open()  # faasd restarted: its counters start again from zero
    assert canaries.canaries["c"].weight == 25 and c.catalog.triggers["r"].functions == (("old", 75), ("new", 25))
    bench.counts["new"] = (3, 3)  # before the runner started: not this interval's
    await bench.run(canaries)
    bench.counts["new"] = (10, 3)  # 7 calls, none failed, since
    resumed = await bench.tick(canaries, "c")
    assert (resumed.weight, resumed.history[-1].calls, resumed.history[-1].failures) == (50, 7, 0)


async def test_changes_apply_to_the_next_interval_and_the_rest_cannot_change(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body())
    changed = await canaries.update("c", {"increment_step": 50, "increment_interval": "5s", "failure_threshold": 0})
    assert (changed.increment_step, changed.increment_interval, changed.failure_threshold) == (50, 5, 0)
    with pytest.raises(BadRequest, match="newfunction cannot be changed"):
        await canaries.update("c", {"newfunction": "other"})
    with pytest.raises(NotFound, match="canary 'd' not found"):
        await canaries.update("d", {"increment_step": 5})
    await bench.run(canaries)
    bench.counts["new"] = (10, 0)
    assert (await bench.tick(canaries, "c")).weight == 70  # 20 + 50
    assert bench.slept == [5, 5]


async def test_deleting_the_canary_leaves_the_weights_and_a_function_delete_takes_it(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body())
    runner = await bench.run(canaries)
    await canaries.delete("c")
    await bench.until(lambda: not runner._tasks, "the runner to stop following the deleted canary")
    assert c.catalog.triggers["r"].functions == (("old", 80), ("new", 20))
    with pytest.raises(NotFound):
        await canaries.delete("c")
    await canaries.create(body(name="again"))
    await c.delete_function("new", force=True)  # with its route, and the canary
    assert canaries.canaries == {} and "r" not in c.catalog.triggers
    c, canaries = await bench.open()
    assert canaries.canaries == {}


async def test_a_route_changed_by_hand_stops_the_canary(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body())
    await c.update_trigger("r", {"function": "other"})
    await bench.run(canaries)
    bench.counts["new"] = (10, 0)
    stopped = await bench.tick(canaries, "c")
    assert stopped.status is CanaryStatus.aborted
    assert stopped.reason == "stopped: route 'r' names 'other', not 'old' (and 'new') alone"
    assert c.catalog.triggers["r"].function == "other"  # left as it is


async def test_a_new_interval_starts_at_once_when_the_interval_changes(bench: Bench) -> None:
    c, canaries = await bench.open()
    await two_functions(c)
    await canaries.create(body())
    await bench.run(canaries)  # sleeping the default 120 s
    bench.counts["new"] = (5, 0)  # calls in the interval cut short: not judged
    await canaries.update("c", {"increment_interval": 1})
    await bench.until(lambda: len(bench.slept) >= 2, "the new interval to begin")
    assert bench.slept == [120, 1]
    bench.counts["new"] = (9, 0)
    step = await bench.tick(canaries, "c")
    assert (step.weight, step.history[-1].calls) == (40, 4)


async def test_nodes_sharing_the_registry_take_each_step_once(bench: Bench) -> None:
    c1, first = await bench.open()
    await two_functions(c1)
    await first.create(body(increment_step=20))
    _c2, second = await bench.open()  # another node on the same registry: the canary as the registry has it
    assert second.canaries["c"].weight == 20
    # Both nodes' intervals end: the first to judge takes the step, the other finds it taken and judges nothing.
    assert await first.advance("c", 10, 0) is True
    assert await second.advance("c", 10, 0) is True
    stored = {x.name: x for x in await CanaryStore(bench.registry.stores[-1].engine).load()}["c"]
    assert stored.weight == 40
    assert [s.weight for s in stored.history] == [s.weight for s in first.canaries["c"].history]
    assert second.canaries["c"].weight == 20  # until the change feed brings the step
    # A node that has the registry's state steps from there.
    _c3, third = await bench.open()
    assert await third.advance("c", 10, 0) is True
    stored = {x.name: x for x in await CanaryStore(bench.registry.stores[-1].engine).load()}["c"]
    assert stored.weight == 60
