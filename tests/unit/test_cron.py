"""faasd/events/cron.py: cron expressions parsed and their next runs found."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from faasd.events.cron import CronError, Schedule, parse

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# A Thursday.
NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, fold: int = 0) -> datetime:
    """A Berlin wall-clock time (fold=1: the second pass of a repeated hour), in UTC.

    In UTC because Python never finds a time in a repeated hour equal to one in
    another zone (PEP 495).
    """
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN, fold=fold).astimezone(UTC)


def runs(expression: str, moment: datetime, count: int, timezone: str = "UTC") -> list[datetime]:
    return parse(expression, timezone).next_runs(moment, count)


# -- syntax ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("* * * * *", [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2), utc(2026, 1, 1, 0, 3)]),
        ("15 * * * *", [utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 1, 15)]),
        (
            "10-12 * * * *",
            [utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 11), utc(2026, 1, 1, 0, 12), utc(2026, 1, 1, 1, 10)],
        ),
        ("*/20 * * * *", [utc(2026, 1, 1, 0, 20), utc(2026, 1, 1, 0, 40), utc(2026, 1, 1, 1, 0)]),
        (
            "10-30/10 * * * *",
            [utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 20), utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 1, 10)],
        ),
        ("50/5 * * * *", [utc(2026, 1, 1, 0, 50), utc(2026, 1, 1, 0, 55), utc(2026, 1, 1, 1, 50)]),
        (
            "5,10-11,*/30 * * * *",
            [utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 11), utc(2026, 1, 1, 0, 30)],
        ),
        ("0 12 ? * ?", [utc(2026, 1, 1, 12), utc(2026, 1, 2, 12)]),
        ("0 0 1 jan,Jul *", [utc(2026, 7, 1), utc(2027, 1, 1)]),
        ("0 0 1 FEB-DEC/2 *", [utc(2026, 2, 1), utc(2026, 4, 1), utc(2026, 6, 1)]),
        ("0 0 * * sun", [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("0 0 * * 0", [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("0 0 * * 7", [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("0 0 * * 5-7", [utc(2026, 1, 2), utc(2026, 1, 3), utc(2026, 1, 4), utc(2026, 1, 9)]),
        ("0 0 * * Fri-SUN", [utc(2026, 1, 2), utc(2026, 1, 3), utc(2026, 1, 4), utc(2026, 1, 9)]),
        ("0 0 * * sat-sun", [utc(2026, 1, 3), utc(2026, 1, 4), utc(2026, 1, 10)]),
        ("0 0 * * 1/2", [utc(2026, 1, 2), utc(2026, 1, 5), utc(2026, 1, 7), utc(2026, 1, 9)]),
        ("0 9 * * MON,wed", [utc(2026, 1, 5, 9), utc(2026, 1, 7, 9), utc(2026, 1, 12, 9)]),
        # Six fields: the seconds come first.
        ("30 * * * * *", [utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 1, 30)]),
        ("0 0 0 1 1 *", [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ("10-20/5 0 0 * * *", [utc(2026, 1, 1, 0, 0, 10), utc(2026, 1, 1, 0, 0, 15), utc(2026, 1, 1, 0, 0, 20)]),
    ],
)
def test_syntax(expression: str, expected: list[datetime]) -> None:
    assert runs(expression, NEW_YEAR, len(expected)) == expected


def test_every_five_seconds_gives_runs_five_seconds_apart() -> None:
    found = runs("*/5 * * * * *", utc(2026, 5, 17, 23, 59, 42), 6)
    assert found[0] == utc(2026, 5, 17, 23, 59, 45)
    assert all(later - earlier == timedelta(seconds=5) for earlier, later in pairwise(found))
    assert found[-1] == utc(2026, 5, 18, 0, 0, 10)


def test_weekdays_only_skip_the_weekend() -> None:
    # 2026-01-02 is a Friday.
    found = runs("0 30 9 * * MON-FRI", utc(2026, 1, 2, 9, 30), 3)
    assert found == [utc(2026, 1, 5, 9, 30), utc(2026, 1, 6, 9, 30), utc(2026, 1, 7, 9, 30)]
    assert all(run.weekday() < 5 for run in runs("0 30 9 * * MON-FRI", NEW_YEAR, 30))


def test_a_five_field_expression_runs_at_second_zero() -> None:
    assert parse("* * * * *").next_after(utc(2026, 1, 1, 0, 0, 1)) == utc(2026, 1, 1, 0, 1)


def test_a_run_is_strictly_after_the_moment() -> None:
    schedule = parse("0 * * * *")
    assert schedule.next_after(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 6)
    assert schedule.next_after(utc(2026, 1, 1, 4, 59, 59, 999_999)) == utc(2026, 1, 1, 5)
    assert parse("* * * * * *").next_after(utc(2026, 1, 1, 5, 0, 0, 1)) == utc(2026, 1, 1, 5, 0, 1)


# -- day-of-month and day-of-week ------------------------------------------------------------------


def test_both_days_restricted_means_either_fits() -> None:
    # The 13th, and every Friday: 2026-03-27 is a Friday, 2026-04-13 a Monday.
    found = runs("0 0 13 * FRI", utc(2026, 3, 27, 12), 4)
    assert found == [utc(2026, 4, 3), utc(2026, 4, 10), utc(2026, 4, 13), utc(2026, 4, 17)]
    # Not "the first Monday": the 1st to the 7th, and every Monday.
    first_days = runs("0 0 1-7 * MON", utc(2026, 5, 31), 9)
    assert [run.day for run in first_days] == [1, 2, 3, 4, 5, 6, 7, 8, 15]  # June 1st is a Monday


@pytest.mark.parametrize("expression", ["0 0 13 * *", "0 0 13 * ?", "0 0 13 * */1"])
def test_a_star_day_of_week_leaves_the_day_of_month_alone(expression: str) -> None:
    assert runs(expression, utc(2026, 3, 27), 2) == [utc(2026, 4, 13), utc(2026, 5, 13)]


@pytest.mark.parametrize("expression", ["0 0 * * FRI", "0 0 ? * FRI"])
def test_a_star_day_of_month_leaves_the_day_of_week_alone(expression: str) -> None:
    assert runs(expression, utc(2026, 3, 27), 3) == [utc(2026, 4, 3), utc(2026, 4, 10), utc(2026, 4, 17)]


def test_february_29th_is_found_across_a_century_that_is_no_leap_year() -> None:
    # 2100 is not a leap year: eight years between runs, found by jumping, not stepping.
    assert runs("0 0 29 2 *", utc(2097, 1, 1), 2) == [utc(2104, 2, 29), utc(2108, 2, 29)]
    assert runs("59 59 23 31 12 *", utc(2026, 1, 1), 1) == [utc(2026, 12, 31, 23, 59, 59)]


# -- descriptors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("descriptor", "expected"),
    [
        ("@yearly", [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ("@annually", [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ("@monthly", [utc(2026, 2, 1), utc(2026, 3, 1)]),
        ("@weekly", [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("@daily", [utc(2026, 1, 2), utc(2026, 1, 3)]),
        ("@midnight", [utc(2026, 1, 2), utc(2026, 1, 3)]),
        ("@hourly", [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]),
        ("@HOURLY", [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]),
    ],
)
def test_descriptors(descriptor: str, expected: list[datetime]) -> None:
    assert runs(descriptor, NEW_YEAR, 2) == expected


def test_descriptors_read_the_time_zone() -> None:
    # Midnight in New York (UTC-5 in January).
    assert runs("@daily", NEW_YEAR, 1, "America/New_York") == [utc(2026, 1, 1, 5)]


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("1s", 1),
        ("30s", 30),
        ("1m30s", 90),
        ("2h", 7200),
        ("1.5h", 5400),
        ("1h0m0s", 3600),
        ("90000ms", 90),
        ("1000000us", 1),
        ("2000000000ns", 2),
    ],
)
def test_every_takes_go_durations(duration: str, seconds: int) -> None:
    schedule = parse(f"@every {duration}")
    first, second = schedule.next_runs(utc(2026, 1, 1, 0, 0, 0, 1), 2)
    assert second - first == timedelta(seconds=seconds)


def test_every_is_anchored_to_the_unix_epoch() -> None:
    schedule = parse("@every 30s")
    assert schedule.next_after(utc(2026, 1, 1, 12, 0, 10)) == utc(2026, 1, 1, 12, 0, 30)
    assert schedule.next_after(utc(2026, 1, 1, 12, 0, 30)) == utc(2026, 1, 1, 12, 1)
    assert schedule.next_after(utc(2026, 1, 1, 12, 0, 29, 999_999)) == utc(2026, 1, 1, 12, 0, 30)
    # Restart-independent: whenever asked, the runs lie on the same grid.
    seven = parse("@every 7s")
    for moment in (
        utc(2026, 1, 1),
        utc(2026, 6, 1, 13, 17, 3, 5),
        datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1),
    ):
        run = seven.next_after(moment)
        assert moment.astimezone(UTC) < run <= moment.astimezone(UTC) + timedelta(seconds=7)
        assert int(run.timestamp()) % 7 == 0
        assert run.microsecond == 0


def test_every_ignores_the_time_zone_and_daylight_saving() -> None:
    found = runs("@every 1h", utc(2026, 10, 24, 23, 30), 4, "Europe/Berlin")
    assert found == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)]


# -- time zones and daylight saving ----------------------------------------------------------------


def test_fields_are_read_in_the_time_zone() -> None:
    schedule = parse("0 9 * * *", "America/New_York")
    assert schedule.next_after(utc(2026, 1, 15)) == utc(2026, 1, 15, 14)  # EST, UTC-5
    assert schedule.next_after(utc(2026, 7, 15)) == utc(2026, 7, 15, 13)  # EDT, UTC-4


def test_a_moment_in_any_zone_gives_a_run_in_utc() -> None:
    run = parse("0 9 * * *", "Europe/Berlin").next_after(datetime(2026, 1, 15, 2, tzinfo=NEW_YORK))
    assert run == utc(2026, 1, 15, 8)
    assert run.tzinfo is UTC


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse("* * * * *").next_after(datetime(2026, 1, 1))


def test_spring_forward_skips_the_missing_time_that_day() -> None:
    # Berlin, 2026-03-29: at 02:00 CET the clocks jump to 03:00 CEST (01:00 UTC).
    found = runs("30 2 * * *", utc(2026, 3, 27, 12), 3, "Europe/Berlin")
    assert found == [berlin(2026, 3, 28, 2, 30), berlin(2026, 3, 30, 2, 30), berlin(2026, 3, 31, 2, 30)]
    # Every quarter hour of the missing hour is skipped, not moved.
    assert runs("*/15 2 * * *", utc(2026, 3, 29), 1, "Europe/Berlin") == [berlin(2026, 3, 30, 2)]


def test_spring_forward_goes_on_at_the_first_time_that_exists() -> None:
    assert runs("0 * * * *", utc(2026, 3, 29, 0, 30), 3, "Europe/Berlin") == [
        utc(2026, 3, 29, 1),  # 03:00 CEST
        utc(2026, 3, 29, 2),
        utc(2026, 3, 29, 3),
    ]
    every_second = parse("* * * * * *", "Europe/Berlin")
    assert every_second.next_after(berlin(2026, 3, 29, 1, 59, 59)) == berlin(2026, 3, 29, 3)
    assert berlin(2026, 3, 29, 3) == utc(2026, 3, 29, 1)
    # The first time 03:00 or later, whichever field picks it.
    assert runs("*/20 2-3 * * *", utc(2026, 3, 29), 2, "Europe/Berlin") == [
        berlin(2026, 3, 29, 3, 0),
        berlin(2026, 3, 29, 3, 20),
    ]


def test_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # Berlin, 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET (01:00 UTC).
    found = runs("30 2 * * *", utc(2026, 10, 24, 12), 3, "Europe/Berlin")
    assert found == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]
    assert found[0] == berlin(2026, 10, 25, 2, 30, fold=0)
    # Half-hourly: 02:00 and 02:30 run once (CEST); the repeated pass (CET) is skipped.
    assert runs("*/30 * * * *", utc(2026, 10, 24, 23, 45), 4, "Europe/Berlin") == [
        utc(2026, 10, 25, 0, 0),  # 02:00 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 2, 0),  # 03:00 CET
        utc(2026, 10, 25, 2, 30),
    ]
    assert runs("0 3 * * *", utc(2026, 10, 24, 12), 1, "Europe/Berlin") == [utc(2026, 10, 25, 2)]


def test_a_moment_in_the_repeated_hour_looks_past_it() -> None:
    # 02:15 CET, the second pass: 02:30 ran already (at 02:30 CEST).
    moment = datetime(2026, 10, 25, 2, 15, tzinfo=BERLIN, fold=1)
    assert moment.astimezone(UTC) == utc(2026, 10, 25, 1, 15)
    assert parse("*/30 * * * *", "Europe/Berlin").next_after(moment) == berlin(2026, 10, 25, 3)
    assert parse("* * * * * *", "Europe/Berlin").next_after(moment) == utc(2026, 10, 25, 2)
    # On the first pass, the rest of the hour is still ahead.
    first_pass = datetime(2026, 10, 25, 2, 15, tzinfo=BERLIN, fold=0)
    assert parse("*/30 * * * *", "Europe/Berlin").next_after(first_pass) == berlin(2026, 10, 25, 2, 30, fold=0)


# -- next_runs -------------------------------------------------------------------------------------


def test_next_runs_gives_count_increasing_runs() -> None:
    found = runs("*/7 9-17 * * MON-FRI", utc(2026, 3, 28), 50, "Europe/Berlin")
    assert len(found) == 50
    assert all(earlier < later for earlier, later in pairwise(found))
    assert found[0] > utc(2026, 3, 28)
    assert parse("@daily").next_runs(NEW_YEAR, 0) == []
    with pytest.raises(ValueError, match="count"):
        parse("@daily").next_runs(NEW_YEAR, -1)


# -- the schedule value ----------------------------------------------------------------------------


def test_parse_keeps_the_stripped_expression_and_the_time_zone() -> None:
    schedule = parse("  0 9 * * MON-FRI \n", "Europe/Berlin")
    assert schedule.expression == "0 9 * * MON-FRI"
    assert schedule.timezone == "Europe/Berlin"
    assert parse("@daily").timezone == "UTC"
    assert schedule == Schedule("0 9 * * MON-FRI", "Europe/Berlin")
    assert hash(schedule) == hash(parse("0 9 * * MON-FRI", "Europe/Berlin"))
    assert schedule != parse("0 9 * * MON-FRI")


def test_a_schedule_built_directly_is_checked_too() -> None:
    with pytest.raises(CronError, match="'minute' has 61"):
        Schedule("61 * * * *")


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "a cron expression is empty"),
        ("   ", "a cron expression is empty"),
        ("* * * *", "a cron expression has 5 fields (or 6 with seconds first); got 4"),
        ("* * * * * * *", "got 7"),
        ("60 * * * * *", "cron field 'second' has 60: the range is 0-59"),
        ("61 * * * *", "cron field 'minute' has 61: the range is 0-59"),
        ("* 24 * * *", "cron field 'hour' has 24: the range is 0-23"),
        ("* * 0 * *", "cron field 'day-of-month' has 0: the range is 1-31"),
        ("* * 32 * *", "cron field 'day-of-month' has 32: the range is 1-31"),
        ("* * * 13 *", "cron field 'month' has 13: the range is 1-12"),
        ("* * * 0 *", "cron field 'month' has 0: the range is 1-12"),
        ("* * * * 8", "cron field 'day-of-week' has 8: the range is 0-7"),
        ("*/0 * * * *", "cron field 'minute' has step 0 in '*/0'"),
        ("* 10-20/0 * * *", "cron field 'hour' has step 0 in '10-20/0'"),
        ("*/x * * * *", "cron field 'minute' has the step 'x' in '*/x'"),
        ("1/2/3 * * * *", "cron field 'minute' has '1/2/3': more than one '/'"),
        ("30-10 * * * *", "cron field 'minute' has the range '30-10': its start 30 is after its end 10"),
        ("* * * DEC-JAN *", "cron field 'month' has the range 'DEC-JAN'"),
        ("* * * * FRI-MON", "cron field 'day-of-week' has the range 'FRI-MON'"),
        ("1-2-3 * * * *", "cron field 'minute' has the range '1-2-3': more than one '-'"),
        ("*-5 * * * *", "cron field 'minute' has the range '*-5'"),
        ("-1 * * * *", "cron field 'minute' has '-1': a value is missing"),
        ("1,,2 * * * *", "cron field 'minute' has an empty item in the list '1,,2'"),
        ("* * * FOO *", "cron field 'month' has 'FOO': not a number or a month name"),
        ("* * * * FUNDAY", "cron field 'day-of-week' has 'FUNDAY': not a number or a weekday name"),
        ("* MON * * *", "cron field 'hour' has 'MON': not a number"),
        ("* * * * \u0661", "cron field 'day-of-week' has '\u0661'"),  # an Arabic-Indic digit
        ("@fortnightly", "unknown descriptor '@fortnightly'"),
        ("@daily 5", "the descriptor '@daily' takes nothing after it; got '5'"),
        ("@every", "@every needs a duration"),
        ("@every 500ms", "@every has '500ms': the interval must be at least 1s"),
        ("@every 0s", "at least 1s"),
        ("@every 0", "at least 1s"),
        ("@every 1500ms", "@every has '1500ms': the interval must be a whole number of seconds"),
        ("@every -1m", "@every has '-1m': the interval must be positive"),
        ("@every 5", "@every has '5': a number lacks its unit"),
        ("@every 3d", "@every has the unit 'd' in '3d'"),
        ("@every .s", "@every has '.s': not a duration"),
        ("@every 1s 2s", "@every has '1s 2s': not a duration"),
        ("@every 3000000h", "longer than the longest Go duration"),
        ("0 0 30 2 *", "cron expression '0 0 30 2 *' never matches"),
        ("0 0 31 4,6,9,11 *", "never matches"),
        ("0 0 0 31 FEB *", "never matches"),
    ],
)
def test_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        parse(expression)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_day_that_only_some_months_lack_is_fine() -> None:
    # The 31st of February or March: March has one.
    assert runs("0 0 31 2,3 *", NEW_YEAR, 1) == [utc(2026, 3, 31)]
    # Both days restricted: the weekday can fit even when the 30th of February cannot.
    assert runs("0 0 30 2 MON", NEW_YEAR, 1) == [utc(2026, 2, 2)]


@pytest.mark.parametrize("timezone", ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "utc", "Europe"])
def test_an_unknown_time_zone_is_named(timezone: str) -> None:
    with pytest.raises(CronError, match=re.escape(f"unknown time zone {timezone!r}")):
        parse("* * * * *", timezone)


def test_no_run_before_the_calendar_ends_raises() -> None:
    with pytest.raises(CronError, match="0 0 29 2 \\*"):
        parse("0 0 29 2 *").next_after(utc(9997, 1, 1))


# -- properties ------------------------------------------------------------------------------------

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is optional
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo"]
# Moments near clock changes, where mistakes hide.
TRANSITIONS = [
    utc(2026, 3, 29, 1),  # Berlin spring forward
    utc(2026, 10, 25, 1),  # Berlin fall back
    utc(2026, 3, 8, 7),  # New York spring forward
    utc(2026, 11, 1, 6),  # New York fall back
    utc(2026, 4, 4, 15),  # Lord Howe fall back by 30 minutes
    utc(2026, 10, 3, 15, 30),  # Lord Howe spring forward by 30 minutes
]
BRUTE_FORCE_MINUTES = 2000

if HAVE_HYPOTHESIS:

    def field_items(low: int, top: int, high: int) -> st.SearchStrategy[Field]:
        def number() -> st.SearchStrategy[int]:
            return st.integers(low, high)

        single = number().map(lambda n: Field(str(n), frozenset({n}), False))
        spans = st.tuples(number(), number()).map(sorted)
        ranged = spans.map(lambda ab: Field(f"{ab[0]}-{ab[1]}", frozenset(range(ab[0], ab[1] + 1)), False))
        step = st.integers(1, max(top - low, 1) + 2)
        star_step = step.map(lambda n: Field(f"*/{n}", frozenset(range(low, top + 1, n)), n == 1))
        range_step = st.tuples(spans, step).map(
            lambda s: Field(f"{s[0][0]}-{s[0][1]}/{s[1]}", frozenset(range(s[0][0], s[0][1] + 1, s[1])), False)
        )
        open_step = st.tuples(st.integers(low, top), step).map(
            lambda s: Field(f"{s[0]}/{s[1]}", frozenset(range(s[0], top + 1, s[1])), False)
        )
        return st.one_of(single, ranged, star_step, range_step, open_step)

    def fields(low: int, top: int, high: int = -1) -> st.SearchStrategy[Field]:
        high = top if high < 0 else high
        star = st.sampled_from(["*", "?"]).map(lambda text: Field(text, frozenset(range(low, top + 1)), True))
        listed = st.lists(field_items(low, top, high), min_size=1, max_size=3).map(
            lambda items: Field(
                ",".join(item.text for item in items),
                frozenset().union(*(item.values for item in items)),
                any(item.star for item in items),
            )
        )
        return st.one_of(star, star, listed)

    def fits(local: datetime, minute: Field, hour: Field, day: Field, month: Field, weekday: Field) -> bool:
        weekdays = {value % 7 for value in weekday.values}
        day_fits = local.day in day.values
        weekday_fits = (local.weekday() + 1) % 7 in weekdays
        days = day_fits and weekday_fits if day.star or weekday.star else day_fits or weekday_fits
        return local.minute in minute.values and local.hour in hour.values and local.month in month.values and days

    moments = st.one_of(
        st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)),
        st.builds(
            lambda at, seconds: at + timedelta(seconds=seconds),
            st.sampled_from(TRANSITIONS),
            st.integers(-4 * 3600, 4 * 3600),
        ),
    )

    @settings(max_examples=150, deadline=None)
    @given(
        minute=fields(0, 59),
        hour=fields(0, 23),
        day=fields(1, 31),
        month=fields(1, 12),
        weekday=fields(0, 6, 7),
        timezone=st.sampled_from(ZONES),
        moment=moments,
        shown_in=st.sampled_from(ZONES),
    )
    def test_next_after_is_the_first_fitting_minute(
        minute: Field,
        hour: Field,
        day: Field,
        month: Field,
        weekday: Field,
        timezone: str,
        moment: datetime,
        shown_in: str,
    ) -> None:
        expression = " ".join(f.text for f in (minute, hour, day, month, weekday))
        try:
            schedule = parse(expression, timezone)
        except CronError as error:
            # Only a day-of-month no allowed month has may be refused.
            assert "never matches" in str(error)
            longest = max((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1] for m in month.values)
            assert weekday.star and not day.star and min(day.values) > longest
            return
        zone = ZoneInfo(timezone)
        moment = moment.astimezone(ZoneInfo(shown_in))
        run = schedule.next_after(moment)

        assert run > moment
        assert run.tzinfo is UTC
        local = run.astimezone(zone)
        assert (local.second, local.microsecond, local.fold) == (0, 0, 0)
        assert fits(local, minute, hour, day, month, weekday)

        # Brute force: the first minute after `moment` that fits, first occurrences only.
        candidate = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(BRUTE_FORCE_MINUTES):
            candidate_local = candidate.astimezone(zone)
            if candidate_local.fold == 0 and fits(candidate_local, minute, hour, day, month, weekday):
                assert run == candidate
                break
            candidate += timedelta(minutes=1)
        else:
            assert run >= candidate

    @settings(max_examples=100, deadline=None)
    @given(
        seconds=st.integers(1, 10 * 86_400),
        moment=st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    )
    def test_every_runs_on_the_epoch_grid(seconds: int, moment: datetime) -> None:
        run = parse(f"@every {seconds}s").next_after(moment)
        assert moment < run <= moment + timedelta(seconds=seconds)
        since_epoch = run - datetime(1970, 1, 1, tzinfo=UTC)
        assert since_epoch % timedelta(seconds=seconds) == timedelta(0)

    @settings(max_examples=60, deadline=None)
    @given(
        second=fields(0, 59),
        minute=fields(0, 59),
        timezone=st.sampled_from(ZONES),
        moment=moments,
        count=st.integers(1, 30),
    )
    def test_next_runs_with_seconds_increase_and_fit(
        second: Field, minute: Field, timezone: str, moment: datetime, count: int
    ) -> None:
        found = parse(f"{second.text} {minute.text} * * * *", timezone).next_runs(moment, count)
        assert len(found) == count
        assert all(earlier < later for earlier, later in zip([moment, *found], found, strict=False))
        for run in found:
            assert run.second in second.values
            assert run.astimezone(ZoneInfo(timezone)).minute in minute.values
