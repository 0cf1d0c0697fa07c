"""Canaries: a new function takes a route's calls from an old one step by step, or is rolled back.

As Fission's canary: the route is split [old 100-step, new step]; at the end of
every interval the new function's failure rate over that interval (5xx
answers / its calls) decides. Above the threshold: the route goes back to old
100 / new 0 and the canary is aborted. Otherwise the new function's weight
grows by the step; at 100 the route names the new function alone and the
canary has succeeded. An interval in which the new function had no call
holds the weight where it is (there is nothing to judge it by).

The values and the decision are here (no I/O); faasd/control/canary.py
keeps canaries in the registry and runs their intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from faasd.core.errors import BadRequest

# Fission's defaults: a step of 20 % every 2 minutes, rolled back above 10 % failures.
DEFAULT_INCREMENT_STEP = 20
DEFAULT_INCREMENT_INTERVAL = 120
DEFAULT_FAILURE_THRESHOLD = 10
MAX_INCREMENT_INTERVAL = 86400
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class CanaryStatus(StrEnum):
    """Where a canary is."""

    running = "running"  # the weights move at every interval
    succeeded = "succeeded"  # the new function takes every call: the route names it alone
    aborted = "aborted"  # rolled back (the route sends every call to the old function), or stopped: see reason


class Action(StrEnum):
    """What an interval's verdict does to the new function's weight."""

    hold = "hold"  # no call to judge by: the weight stays
    step = "step"  # healthy: the weight grows by the step
    succeed = "succeed"  # healthy, and the weight reaches 100
    abort = "abort"  # failing: back to 0


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Verdict:
    action: Action
    weight: int  # the new function's weight after it
    failure_rate: float | None  # percent of the interval's calls answered 5xx; None without calls


def decide(weight: int, step: int, threshold: int, calls: int, failures: int) -> Verdict:
    """One interval's verdict: the new function had ``calls`` calls, ``failures`` of them answered 5xx."""
    if calls <= 0:
        return Verdict(Action.hold, weight, None)
    rate = 100.0 * failures / calls
    if rate > threshold:
        return Verdict(Action.abort, 0, rate)
    reached = min(100, weight + step)
    return Verdict(Action.succeed if reached >= 100 else Action.step, reached, rate)


@dataclass(frozen=True)
class CanaryStep:
    """A change of the new function's weight, with the interval's figures that made it (none at the start)."""

    at: float  # unix seconds
    weight: int
    calls: int = 0
    failures: int = 0
    failure_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        rate = None if self.failure_rate is None else round(self.failure_rate, 2)
        return {
            "time": iso(self.at),
            "weight": self.weight,
            "calls": self.calls,
            "failures": self.failures,
            "failure_rate": rate,
        }


@dataclass(frozen=True)
class Canary:
    name: str
    newfunction: str
    oldfunction: str
    httptrigger: str  # the route whose calls move
    created_at: datetime
    updated_at: datetime
    increment_step: int = DEFAULT_INCREMENT_STEP  # percent
    increment_interval: int = DEFAULT_INCREMENT_INTERVAL  # seconds
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD  # percent of the new function's calls answered 5xx
    status: CanaryStatus = CanaryStatus.running
    weight: int = 0  # the new function's weight now
    history: tuple[CanaryStep, ...] = field(default_factory=tuple)
    reason: str = ""  # why it ended

    @property
    def functions(self) -> tuple[str, str]:
        return (self.oldfunction, self.newfunction)

    def route_weights(self) -> tuple[tuple[str, int], ...]:
        """What the route splits as the canary stands: the new function alone once it has succeeded,
        the old one alone once it was aborted."""
        if self.status is CanaryStatus.succeeded:
            return ((self.newfunction, 100),)
        if self.status is CanaryStatus.aborted:
            # The old function alone: a weight-0 mention of the new one would keep it "in use" (a forced
            # delete of it would take the route) and would stand in the way of the next canary.
            return ((self.oldfunction, 100),)
        return ((self.oldfunction, 100 - self.weight), (self.newfunction, self.weight))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "newfunction": self.newfunction,
            "oldfunction": self.oldfunction,
            "httptrigger": self.httptrigger,
            "increment_step": self.increment_step,
            "increment_interval": self.increment_interval,
            "failure_threshold": self.failure_threshold,
            "status": self.status.value,
            "weight": self.weight,
            "reason": self.reason,
            "history": [step.to_json() for step in self.history],
            "created_at": self.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "updated_at": self.updated_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }


def interval(value: Any, field: str = "increment_interval") -> int:
    """Whole seconds: a number, or a duration such as 30s, 1m, 2m or 1m30s (Fission's spelling)."""
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION_RE.fullmatch(text)
        if text.isascii() and text.isdigit():
            seconds = int(text)
        elif text and match:
            hours, minutes, secs = (int(part or 0) for part in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None:
        raise BadRequest(f"{field} must be whole seconds or a duration such as 30s, 1m or 1m30s, got {value!r}")
    if not 1 <= seconds <= MAX_INCREMENT_INTERVAL:
        raise BadRequest(f"{field} must be between 1 s and {MAX_INCREMENT_INTERVAL} s (a day), got {seconds} s")
    return seconds
