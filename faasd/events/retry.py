"""When an asynchronous call is tried again: pure policy, no I/O.

An attempt ends in an :class:`Outcome`; :func:`next_step` turns it into the
call's next state. Retried: no answer (connection refused or broken, a
timeout, no instance to be had) and the statuses 408, 429 and 5xx. Not
retried: 1xx-3xx (succeeded) and every other 4xx (failed: sending the same
request again would get the same answer). The wait doubles from 1 s to at most
60 s, with "equal jitter" (half fixed, half random) so that calls failed
together do not come back together, and never shorter than the function's
``Retry-After``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from faasd.core.events import BACKOFF_BASE, BACKOFF_CAP, CallStatus

RETRIED_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the function's HTTP status; None: no answer
    error: str = ""  # why there was no answer, or what faasd said instead
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRIED_STATUSES or self.status >= 500

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        return f"status {self.status}" + (f" ({self.error})" if self.error else "")


@dataclass(frozen=True)
class Step:
    status: CallStatus
    next_at: float = 0.0  # for queued: when to try again
    reason: str = ""


def backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt number ``attempt`` (1-based)."""
    full = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(attempt - 1, 30))
    return full / 2 + rand() * full / 2


def next_step(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    created_at: float,
    max_age: int,
    now: float,
    rand: Callable[[], float] = random.random,
) -> Step:
    if outcome.status is not None and outcome.status < 400:
        return Step(CallStatus.succeeded)
    if not outcome.retryable:
        return Step(CallStatus.failed, reason=f"the function answered {outcome.status} (not retried)")
    if attempt >= max_attempts:
        return Step(CallStatus.dead, reason=f"{attempt} attempt(s) failed; the last: {outcome.describe()}")
    wait = backoff(attempt, rand)
    if outcome.retry_after is not None:
        wait = max(wait, min(outcome.retry_after, MAX_RETRY_AFTER))
    if now + wait > created_at + max_age:
        return Step(
            CallStatus.dead,
            reason=f"past its maximum age of {max_age} s after {attempt} attempt(s); the last: {outcome.describe()}",
        )
    return Step(CallStatus.queued, next_at=now + wait)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # the asctime form: HTTP dates are always GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)
