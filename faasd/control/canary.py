"""Canaries in the control plane: their writes, and the intervals that move their routes' weights.

::

    POST /v1/canaries ─▶ CanaryControl.create: route split [old 100-step, new step]
                         (the route and the canary in one transaction), status running
    every increment_interval, per running canary (CanaryRunner, one task each):
      pool.calls[new]: its calls and 5xx since the last interval (cumulative counters, differenced)
        ─▶ decide() (faasd/core/canary.py)
        ─▶ CanaryControl.advance, under the controller's lock:
             hold (no calls) | step (route split anew) | succeed (route: new alone) | abort (old 100 / new 0)

State is in the registry (faasd/store/canaries.py): after a restart a running
canary starts a fresh interval, counted from then. Nodes sharing the registry
each run every canary's intervals on their own calls; a step is written only
if the registry still has the canary where the node read it, so the first node
to end an interval takes the step and the others find it taken (StepTaken) and
judge nothing: one step per interval across the cluster, decided on the calls
of the node that took it (a sample of all, behind a load balancer). Deleting a canary leaves its
route's weights as they are. A running canary's functions are in use (409 to
delete them unless forced); deleting a function deletes the canaries that name
it, and a route that no longer splits between the two functions stops its
canary (aborted, with the reason, the route left as it is).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from faasd.cluster.journal import ChangeKind, recording
from faasd.control.api import Resource
from faasd.control.controller import Controller
from faasd.core import validation as check
from faasd.core.canary import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INCREMENT_INTERVAL,
    DEFAULT_INCREMENT_STEP,
    Action,
    Canary,
    CanaryStatus,
    CanaryStep,
    decide,
    interval,
)
from faasd.core.entities import HttpTrigger
from faasd.core.errors import BadRequest, Conflict, NotFound
from faasd.store.canaries import CanaryStore
from faasd.store.registry import utcnow

log = logging.getLogger(__name__)

CANARY_FIELDS = {
    "name",
    "newfunction",
    "oldfunction",
    "httptrigger",
    "increment_step",
    "increment_interval",
    "failure_threshold",
}
CHANGEABLE = {"increment_step", "increment_interval", "failure_threshold"}
# A function's calls and 5xx answers since faasd started (the pool's CallStats).
Counts = Callable[[str], tuple[int, int]]


class StepTaken(Exception):
    """A canary's step was taken by another node since this node read the canary."""


class CanaryListener(Protocol):
    def changed(self, name: str) -> None:
        """The canary ``name`` was made, changed, ended or deleted."""
        ...


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "increment_step" in body:
        fields["increment_step"] = check.integer(body["increment_step"], "increment_step", 1, 100)
    if "increment_interval" in body:
        fields["increment_interval"] = interval(body["increment_interval"])
    if "failure_threshold" in body:
        fields["failure_threshold"] = check.integer(body["failure_threshold"], "failure_threshold", 0, 100)
    return fields


class CanaryControl:
    """The canaries: kept in memory, written under the controller's lock (a route is the controller's)."""

    def __init__(self, controller: Controller, store: CanaryStore, clock: Callable[[], float] = time.time) -> None:
        self._controller = controller
        self._store = store
        self._clock = clock
        self.canaries: dict[str, Canary] = {}
        self.listener: CanaryListener | None = None

    def load(self, canaries: list[Canary]) -> None:
        self.canaries = {c.name: c for c in canaries}

    def _tell(self, name: str) -> None:
        if self.listener is not None:
            self.listener.changed(name)

    # -- the controller's questions (faasd/control/controller.py, Dependents) ----------------

    def users_of(self, function: str) -> list[str]:
        return [
            f"canary '{n}'"
            for n, c in sorted(self.canaries.items())
            if c.status is CanaryStatus.running and function in c.functions
        ]

    def forget_function(self, function: str) -> None:
        """The function was deleted, and with it (in the same transaction) the canaries that name it."""
        for name in [n for n, c in self.canaries.items() if function in c.functions]:
            del self.canaries[name]
            self._tell(name)

    # -- writes ---------------------------------------------------------------------------------

    async def _apply(self, route: HttpTrigger, canary: Canary, was: Canary | None = None) -> None:
        """Split the route as the canary stands; the canary is written in the same transaction (a step from
        ``was``: only if the registry still has the canary there, else :class:`StepTaken`)."""
        weights = canary.route_weights()
        changed = dataclasses.replace(
            route,
            function=check.heaviest(weights),
            functions=weights if len(weights) > 1 else (),
            updated_at=utcnow(),
        )

        async def save(session: Any) -> None:
            if was is not None and not await self._store.still_at(session, was):
                raise StepTaken(canary.name)  # rolls the route's write back too
            await self._store.save_in(session, canary)

        with recording(ChangeKind.canary, canary.name):  # and the route (replace_trigger records it)
            await self._controller.replace_trigger(changed, then=save)

    def _route_problem(self, canary: Canary, route: HttpTrigger | None) -> str:
        """Why the route cannot be moved by ``canary`` ("" when it can)."""
        if route is None:
            return f"route '{canary.httptrigger}' does not exist"
        if canary.oldfunction not in route.names or not set(route.names) <= set(canary.functions):
            return (
                f"route '{route.name}' names {', '.join(repr(n) for n in route.names)}, not "
                f"'{canary.oldfunction}' (and '{canary.newfunction}') alone"
            )
        return ""

    async def create(self, body: dict[str, Any]) -> Canary:
        check.known_fields(body, CANARY_FIELDS)
        name = check.name(body.get("name"))
        new = check.name(body.get("newfunction"), "newfunction")
        old = check.name(body.get("oldfunction"), "oldfunction")
        route_name = check.name(body.get("httptrigger"), "httptrigger")
        settings = {
            "increment_step": DEFAULT_INCREMENT_STEP,
            "increment_interval": DEFAULT_INCREMENT_INTERVAL,
            "failure_threshold": DEFAULT_FAILURE_THRESHOLD,
            **_settings(body),
        }
        if new == old:
            raise BadRequest("newfunction and oldfunction must be two different functions")
        async with self._controller.lock:
            if name in self.canaries:
                raise Conflict(f"canary '{name}' exists already")
            catalog = self._controller.catalog
            for field, fn in (("newfunction", new), ("oldfunction", old)):
                if fn not in catalog.functions:
                    raise BadRequest(f"{field} '{fn}' does not exist")
            now = utcnow()
            step = settings["increment_step"]
            first = CanaryStep(self._clock(), step)
            canary = Canary(name, new, old, route_name, now, now, **settings, weight=step, history=(first,))
            route = catalog.triggers.get(route_name)
            if route is None:
                raise BadRequest(f"httptrigger '{route_name}' does not exist (see GET /v1/triggers/http)")
            problem = self._route_problem(canary, route)
            if problem:
                raise BadRequest(f"httptrigger: {problem}; a canary moves the calls of a route of oldfunction")
            for other in self.canaries.values():
                if other.httptrigger == route_name and other.status is CanaryStatus.running:
                    raise Conflict(f"route '{route_name}' is being moved by canary '{other.name}' already")
            await self._apply(route, canary)
            self.canaries[name] = canary
        log.info("canary %s: route %s splits %s", name, route_name, canary.route_weights())
        self._tell(name)
        return canary

    async def update(self, name: str, body: dict[str, Any]) -> Canary:
        """Only the step, the interval and the threshold change; they apply from the next interval on."""
        check.known_fields(body, CANARY_FIELDS)
        async with self._controller.lock:
            canary = self.canaries.get(name)
            if canary is None:
                raise NotFound(f"canary '{name}' not found")
            for field in sorted(CANARY_FIELDS - CHANGEABLE):
                if field in body and body[field] != getattr(canary, field):
                    raise BadRequest(f"{field} cannot be changed; create a new canary instead")
            if canary.status is not CanaryStatus.running:
                raise Conflict(f"canary '{name}' has ended ({canary.status.value}); create a new one")
            changed = dataclasses.replace(canary, **_settings(body), updated_at=utcnow())
            with recording(ChangeKind.canary, name):
                await self._store.save(changed)
            self.canaries[name] = changed
        self._tell(name)
        return changed

    async def delete(self, name: str) -> None:
        """The canary goes; its route keeps the weights it has now."""
        async with self._controller.lock:
            if name not in self.canaries:
                raise NotFound(f"canary '{name}' not found")
            with recording(ChangeKind.canary, name):
                await self._store.delete(name)
            del self.canaries[name]
        self._tell(name)

    async def advance(self, name: str, calls: int, failures: int) -> bool:
        """One interval ended: the new function had ``calls`` calls, ``failures`` answered 5xx.
        Apply the verdict; whether the canary still runs."""
        async with self._controller.lock:
            canary = self.canaries.get(name)
            if canary is None or canary.status is not CanaryStatus.running:
                return False
            route = self._controller.catalog.triggers.get(canary.httptrigger)
            problem = self._route_problem(canary, route)
            if problem or route is None:
                stopped = dataclasses.replace(
                    canary, status=CanaryStatus.aborted, reason=f"stopped: {problem}", updated_at=utcnow()
                )
                with recording(ChangeKind.canary, name):
                    await self._store.save(stopped)
                self.canaries[name] = stopped
                log.warning("canary %s stopped: %s", name, problem)
                return False
            verdict = decide(canary.weight, canary.increment_step, canary.failure_threshold, calls, failures)
            if verdict.action is Action.hold:
                return True
            status, reason = CanaryStatus.running, ""
            if verdict.action is Action.abort:
                status = CanaryStatus.aborted
                reason = (
                    f"rolled back: '{canary.newfunction}' answered {failures} of {calls} calls with 5xx "
                    f"({verdict.failure_rate:.1f} %), above the threshold of {canary.failure_threshold} %; "
                    f"route '{route.name}' sends every call to '{canary.oldfunction}'"
                )
            elif verdict.action is Action.succeed:
                status = CanaryStatus.succeeded
                reason = (
                    f"'{canary.newfunction}' takes every call of route '{route.name}': its failure rate stayed "
                    f"at or below {canary.failure_threshold} % at every step"
                )
            step = CanaryStep(self._clock(), verdict.weight, calls, failures, verdict.failure_rate)
            changed = dataclasses.replace(
                canary,
                status=status,
                weight=verdict.weight,
                history=(*canary.history, step),
                reason=reason,
                updated_at=utcnow(),
            )
            try:
                await self._apply(route, changed, was=canary)
            except StepTaken:
                # Another node sharing the registry ended this interval first: its step comes through the
                # change feed (which also starts this node's next interval); nothing is judged twice.
                log.info("canary %s: another node took this step", name)
                return True
            self.canaries[name] = changed
        log.info("canary %s: %s to weight %d (%s)", name, verdict.action.value, verdict.weight, reason or "running")
        return status is CanaryStatus.running

    # -- reads ----------------------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        """For GET /v1/status."""
        return [
            {
                "name": c.name,
                "status": c.status.value,
                "weight": c.weight,
                "newfunction": c.newfunction,
                "oldfunction": c.oldfunction,
                "httptrigger": c.httptrigger,
            }
            for c in sorted(self.canaries.values(), key=lambda c: c.name)
        ]

    def resource(self) -> Resource:
        """/v1/canaries in the admin API (faasd/control/api.py)."""
        return Resource(
            "canary",
            "/v1/canaries",
            lambda _catalog: self.canaries,
            self.create,
            self.update,
            lambda _request, name: self.delete(name),
        )


class CanaryRunner:
    """One task per running canary: every interval, the new function's calls and 5xx since the last one."""

    def __init__(
        self,
        control: CanaryControl,
        counts: Counts,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._control = control
        self._counts = counts
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._intervals: dict[str, int] = {}  # what each task sleeps
        control.listener = self

    def start(self) -> None:
        """After a (re)start: every running canary starts a fresh interval."""
        for name in list(self._control.canaries):
            self.changed(name)

    def changed(self, name: str) -> None:
        """Follow a canary that runs, stop following one that does not; a new increment_interval starts a
        new interval at once (the calls of the one cut short are not judged)."""
        canary = self._control.canaries.get(name)
        running = canary is not None and canary.status is CanaryStatus.running
        task = self._tasks.get(name)
        sleeping = self._intervals.get(name)
        if task is not None and (not running or (canary and sleeping not in (None, canary.increment_interval))):
            del self._tasks[name]
            task.cancel()
            task = None
        if running and task is None:
            task = self._tasks[name] = asyncio.get_running_loop().create_task(self._run(name))
            task.add_done_callback(lambda done: self._tasks.pop(name, None) if self._tasks.get(name) is done else None)

    async def _run(self, name: str) -> None:
        canary = self._control.canaries.get(name)
        if canary is None:
            return
        calls, failures = self._counts(canary.newfunction)
        while True:
            canary = self._control.canaries.get(name)
            if canary is None or canary.status is not CanaryStatus.running:
                return
            self._intervals[name] = canary.increment_interval
            await self._sleep(canary.increment_interval)
            canary = self._control.canaries.get(name)
            if canary is None:
                return
            now_calls, now_failures = self._counts(canary.newfunction)
            try:
                going = await self._control.advance(
                    name, max(0, now_calls - calls), max(0, min(now_failures - failures, now_calls - calls))
                )
            except Exception:
                # The interval's calls are judged with the next one's.
                log.exception("canary %s: the interval's verdict could not be applied; trying again", name)
                continue
            calls, failures = now_calls, now_failures
            if not going:
                return

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclasses.dataclass
class Canaries:
    control: CanaryControl
    runner: CanaryRunner

    async def close(self) -> None:
        await self.runner.close()


async def start_canaries(controller: Controller, store: CanaryStore, counts: Counts) -> Canaries:
    """Load the canaries, make them the controller's dependents, and run the running ones."""
    control = CanaryControl(controller, store)
    control.load(await store.load())
    controller.dependents.append(control)
    runner = CanaryRunner(control, counts)
    runner.start()
    return Canaries(control, runner)
