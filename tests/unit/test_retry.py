"""faasd/events/retry.py: what an attempt's outcome makes of an asynchronous call, and when it is tried again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from faasd.core.events import BACKOFF_CAP, CallStatus
from faasd.events.retry import MAX_RETRY_AFTER, Outcome, backoff, next_step, parse_retry_after

NOW = 1_800_000_000.0


def step(
    outcome: Outcome,
    *,
    attempt: int = 1,
    max_attempts: int = 5,
    created_at: float = NOW,
    max_age: int = 6 * 3600,
    now: float = NOW,
    rand: float = 0.0,
):  # type: ignore[no-untyped-def]
    return next_step(
        outcome,
        attempt=attempt,
        max_attempts=max_attempts,
        created_at=created_at,
        max_age=max_age,
        now=now,
        rand=lambda: rand,
    )


# -- what is retried -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 200, 201, 202, 204, 299, 301, 302, 304, 399])
def test_1xx_to_3xx_succeed(status: int) -> None:
    result = step(Outcome(status))
    assert result.status == CallStatus.succeeded
    assert result.reason == ""


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 413, 422, 499])
def test_other_4xx_fail_without_retry(status: int) -> None:
    outcome = Outcome(status)
    assert not outcome.retryable
    # Even with attempts to spare and a Retry-After: the same request would get the same answer.
    result = step(Outcome(status, retry_after=1.0), attempt=1, max_attempts=100)
    assert result.status == CallStatus.failed
    assert str(status) in result.reason
    assert "not retried" in result.reason


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retried(status: int) -> None:
    outcome = Outcome(status)
    assert outcome.retryable
    result = step(outcome, attempt=1, max_attempts=5, rand=0.0)
    assert result.status == CallStatus.queued
    assert result.next_at == NOW + 0.5  # the first wait: 1 s with equal jitter, rand 0 -> half
    assert result.reason == ""


def test_no_answer_is_retried() -> None:
    outcome = Outcome(None, "timeout: no answer within the function's timeout of 5 s")
    assert outcome.retryable
    assert outcome.describe() == "timeout: no answer within the function's timeout of 5 s"
    assert Outcome(None).describe() == "no answer"
    assert step(outcome).status == CallStatus.queued


def test_describe_names_the_status_and_the_error() -> None:
    assert Outcome(503).describe() == "status 503"
    assert Outcome(503, "busy").describe() == "status 503 (busy)"


# -- how long it waits -----------------------------------------------------------------------------


def test_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    full = [backoff(n, rand=lambda: 1.0) for n in range(1, 10)]
    assert full == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert BACKOFF_CAP == 60.0
    # Very late attempts neither overflow nor pass the cap.
    assert backoff(10_000, rand=lambda: 1.0) == 60.0
    assert backoff(10_000, rand=lambda: 0.0) == 30.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 8, 50])
def test_equal_jitter_keeps_half_the_wait_fixed(attempt: int) -> None:
    full = min(60.0, 2.0 ** (attempt - 1))
    assert backoff(attempt, rand=lambda: 0.0) == full / 2
    assert backoff(attempt, rand=lambda: 1.0) == full
    assert backoff(attempt, rand=lambda: 0.5) == full * 3 / 4


def test_backoff_with_the_default_random_stays_within_the_bounds() -> None:
    for attempt in (1, 3, 8):
        full = min(60.0, 2.0 ** (attempt - 1))
        for _ in range(200):
            assert full / 2 <= backoff(attempt) <= full


@pytest.mark.parametrize(("attempt", "rand", "wait"), [(1, 0.0, 0.5), (2, 1.0, 2.0), (3, 0.0, 2.0), (7, 1.0, 60.0)])
def test_the_next_attempt_is_due_after_the_backoff(attempt: int, rand: float, wait: float) -> None:
    result = step(Outcome(500), attempt=attempt, max_attempts=10, rand=rand)
    assert result.status == CallStatus.queued
    assert result.next_at == NOW + wait


def test_retry_after_raises_the_wait() -> None:
    result = step(Outcome(503, retry_after=30.0), attempt=1, rand=1.0)
    assert result.next_at == NOW + 30.0
    # A Retry-After shorter than the backoff does not shorten it.
    result = step(Outcome(429, retry_after=0.0), attempt=4, rand=1.0)
    assert result.next_at == NOW + 8.0
    # No answer (no instance to be had) may carry faasd's own Retry-After too.
    result = step(Outcome(None, "too_many_requests: busy", retry_after=12.0), attempt=1)
    assert result.next_at == NOW + 12.0


def test_retry_after_is_capped() -> None:
    result = step(Outcome(503, retry_after=10 * 86400.0), max_age=7 * 86400)
    assert result.status == CallStatus.queued
    assert result.next_at == NOW + MAX_RETRY_AFTER == NOW + 3600.0


def test_a_retry_after_past_the_maximum_age_makes_a_dead_letter() -> None:
    result = step(Outcome(503, retry_after=600.0), attempt=2, max_age=300)
    assert result.status == CallStatus.dead
    assert "300 s" in result.reason
    assert "status 503" in result.reason


# -- Retry-After as the function sends it ------------------------------------------------------------


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 7 ", NOW) == 7.0
    assert parse_retry_after("0", NOW) == 0.0


def test_parse_retry_after_http_date() -> None:
    moment = datetime.fromtimestamp(NOW + 90, UTC)
    assert parse_retry_after(format_datetime(moment, usegmt=True), NOW) == 90.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412000.0) == 480.0
    # A date in the past: no wait, not a negative one.
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "1.5", "12abc", "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_parse_retry_after_ignores_what_it_cannot_read(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b2", "\u2460"])
def test_parse_retry_after_ignores_unicode_digits_float_cannot_read(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.fixture
def tokyo_local_time() -> Iterator[None]:
    """The machine's local time zone set to UTC+9 for one test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_parse_retry_after_asctime_date_is_gmt(tokyo_local_time: None) -> None:
    # RFC 9110 5.6.7: recipients accept the asctime form, which is GMT like the others.
    when = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed Oct 21 07:28:00 2015", when - 60) == 60.0


# -- dead letters -----------------------------------------------------------------------------------


def test_out_of_attempts_is_a_dead_letter_naming_the_count_and_the_last_status() -> None:
    result = step(Outcome(503), attempt=5, max_attempts=5)
    assert result.status == CallStatus.dead
    assert result.reason == "5 attempt(s) failed; the last: status 503"
    result = step(Outcome(None, "connection refused"), attempt=3, max_attempts=3)
    assert result.status == CallStatus.dead
    assert result.reason == "3 attempt(s) failed; the last: connection refused"
    # One attempt in all (retries 0): the first failure is final.
    assert step(Outcome(500), attempt=1, max_attempts=1).status == CallStatus.dead


def test_the_attempt_before_the_last_is_still_retried() -> None:
    assert step(Outcome(503), attempt=4, max_attempts=5).status == CallStatus.queued


def test_past_the_maximum_age_is_a_dead_letter() -> None:
    # Created 100 s ago with a maximum age of 100 s: the next attempt would come too late.
    result = step(Outcome(502), attempt=2, created_at=NOW - 100, max_age=100, rand=0.0)
    assert result.status == CallStatus.dead
    assert result.reason == "past its maximum age of 100 s after 2 attempt(s); the last: status 502"


def test_the_maximum_age_boundary() -> None:
    # The next attempt exactly at the maximum age is still made; a moment later it is not.
    assert step(Outcome(500), attempt=1, created_at=NOW - 99.5, max_age=100, rand=0.0).status == CallStatus.queued
    assert step(Outcome(500), attempt=1, created_at=NOW - 99.6, max_age=100, rand=0.0).status == CallStatus.dead


def test_success_and_failure_ignore_the_budget() -> None:
    # A success on the last attempt, or long past the maximum age, is a success.
    assert step(Outcome(200), attempt=5, max_attempts=5).status == CallStatus.succeeded
    assert step(Outcome(200), created_at=NOW - 10**6, max_age=1).status == CallStatus.succeeded
    assert step(Outcome(404), attempt=5, max_attempts=5).status == CallStatus.failed
