"""Cron schedules: when a timer trigger fires.

The expressions are the ones robfig/cron (what Fission uses) accepts:

* five fields ``minute hour day-of-month month day-of-week`` (second 0), or
  six with the seconds first: ``second minute hour day-of-month month
  day-of-week``;
* in each field ``*`` or ``?`` (any value), a number, a range ``a-b``, a step
  ``*/n``, ``a-b/n`` or ``a/n`` (from ``a`` to the field's largest value) and
  comma-separated lists of these; month names ``JAN``-``DEC`` and weekday
  names ``SUN``-``SAT`` in any case; day-of-week 0-7, both 0 and 7 Sunday
  (and ``SUN`` ending a range is 7: ``FRI-SUN``); like robfig, ``?`` is
  taken in any field;
* the descriptors ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``,
  ``@daily`` (``@midnight``), ``@hourly`` and ``@every <duration>`` with a Go
  duration (``30s``, ``1m30s``, ``2h``) of at least one second and a whole
  number of seconds.

Days follow standard cron: when both day-of-month and day-of-week are
restricted, a day fits if *either* fits; when either of them is ``*`` or
``?`` (``*/1`` too; robfig's rule), a day must fit both.

The fields are read in the local time of the schedule's IANA time zone. A
wall-clock time that does not exist (the hour skipped when clocks spring
forward) is skipped for that day; one that occurs twice (clocks fall back)
runs once, at its first occurrence. ``@every`` ignores the time zone: its
runs are the multiples of the interval since the Unix epoch, so they do not
depend on when faasd started.

:meth:`Schedule.next_after` jumps field by field (to the next allowed month,
day, hour, minute, second) and looks at most 8 years ahead (the longest gap
between two February 29ths); an expression that can never fit
(``0 0 30 2 *``) is refused by :func:`parse`.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta
from fractions import Fraction
from typing import NamedTuple, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "TimeZoneError", "parse"]


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message names the problem."""

    field = "cron"  # the API field at fault


class TimeZoneError(CronError):
    """An unknown time zone."""

    field = "timezone"


# How far next_after looks ahead. A schedule that fits at all fits within 8
# years: the longest gap is between two February 29ths across a century year
# that is not a leap year (2096 -> 2104).
_HORIZON_YEARS = 8

_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The moment parse() looks for a first run from, to refuse what never fits.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_WEEKDAY_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# The longest each month can be (February in a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _FieldSpec(NamedTuple):
    name: str
    low: int
    high: int  # the largest number the field accepts
    top: int  # the largest value of '*' and of 'a/n' (day-of-week: 6, though 7 is accepted)
    names: Mapping[str, int]
    names_hint: str


_FIELDS = (
    _FieldSpec("second", 0, 59, 59, {}, ""),
    _FieldSpec("minute", 0, 59, 59, {}, ""),
    _FieldSpec("hour", 0, 23, 23, {}, ""),
    _FieldSpec("day-of-month", 1, 31, 31, {}, ""),
    _FieldSpec("month", 1, 12, 12, _MONTH_NAMES, " or a month name (JAN-DEC)"),
    _FieldSpec("day-of-week", 0, 7, 6, _WEEKDAY_NAMES, " or a weekday name (SUN-SAT)"),
)

_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

# One term of a Go duration: a number (digits before and/or after a point) and a unit.
_DURATION_TERM = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_DURATION_UNITS = {
    "ns": Fraction(1, 1_000_000_000),
    "us": Fraction(1, 1_000_000),
    "\u00b5s": Fraction(1, 1_000_000),  # micro sign
    "\u03bcs": Fraction(1, 1_000_000),  # Greek mu
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
# Go's time.Duration is an int64 of nanoseconds.
_MAX_DURATION = Fraction(2**63 - 1, 1_000_000_000)


@dataclass(frozen=True)
class _Values:
    """The allowed values of one field, sorted."""

    values: tuple[int, ...]
    members: frozenset[int]

    @classmethod
    def of(cls, values: set[int]) -> _Values:
        return cls(tuple(sorted(values)), frozenset(values))

    def __contains__(self, value: int) -> bool:
        return value in self.members

    def first_from(self, value: int) -> int | None:
        """The smallest allowed value >= ``value``, or None."""
        index = bisect_left(self.values, value)
        return self.values[index] if index < len(self.values) else None


@dataclass(frozen=True)
class _CronSpec:
    seconds: _Values
    minutes: _Values
    hours: _Values
    days: _Values
    months: _Values
    weekdays: _Values  # 0-6, Sunday 0
    days_star: bool  # day-of-month was '*' or '?'
    weekdays_star: bool  # day-of-week was '*' or '?'

    def day_fits(self, moment: datetime) -> bool:
        day = moment.day in self.days
        weekday = (moment.weekday() + 1) % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return day and weekday
        return day or weekday


@dataclass(frozen=True)
class _EverySpec:
    seconds: int


_Spec: TypeAlias = _CronSpec | _EverySpec


@dataclass(frozen=True)
class Schedule:
    """A parsed cron expression and the time zone its fields are read in."""

    expression: str
    timezone: str = "UTC"
    _spec: _Spec = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expression = self.expression.strip()
        object.__setattr__(self, "expression", expression)
        object.__setattr__(self, "_zone", _zone(self.timezone))
        spec = _compile(expression)
        object.__setattr__(self, "_spec", spec)
        if isinstance(spec, _CronSpec):
            _check_days_fit(spec, expression)
            try:
                self.next_after(_PROBE)
            except CronError as error:  # pragma: no cover - _check_days_fit refuses these first
                raise CronError(f"cron expression {expression!r} never matches") from error

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after ``moment`` (an aware datetime in any zone), in UTC."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"next_after needs an aware datetime; got the naive {moment.isoformat()}")
        if isinstance(self._spec, _EverySpec):
            return _next_every(self._spec.seconds, moment)
        return _next_cron(self._spec, self._zone, moment, self.expression)

    def next_runs(self, moment: datetime, count: int) -> list[datetime]:
        """The first ``count`` runs strictly after ``moment``, in UTC and in order."""
        if count < 0:
            raise ValueError(f"next_runs needs a count of at least 0; got {count}")
        runs: list[datetime] = []
        for _ in range(count):
            moment = self.next_after(moment)
            runs.append(moment)
        return runs


MAX_EXPRESSION = 1024


def parse(expression: str, timezone: str = "UTC") -> Schedule:
    """Parse a cron expression whose fields are read in ``timezone`` (an IANA name).

    Raises :class:`CronError` naming the problem: a bad expression, one that
    never matches, or an unknown time zone.
    """
    if len(expression) > MAX_EXPRESSION:
        raise CronError(f"a cron expression is at most {MAX_EXPRESSION} characters")
    try:
        return Schedule(expression.strip(), timezone)
    except CronError:
        raise
    except ValueError as exc:  # a number Python will not convert (thousands of digits)
        raise CronError(f"cron expression {expression[:40]!r}...: {exc}") from None


# -- parsing ---------------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeZoneError(
            f"unknown time zone {name!r}: expected an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _compile(expression: str) -> _Spec:
    if not expression:
        raise CronError("a cron expression is empty")
    if expression.startswith("@"):
        return _compile_descriptor(expression)
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise CronError(f"a cron expression has 5 fields (or 6 with seconds first); got {len(fields)}")
    if len(fields) == 5:
        fields = ["0", *fields]
    parsed = [_parse_field(text, spec) for text, spec in zip(fields, _FIELDS, strict=True)]
    (seconds, _), (minutes, _), (hours, _), (days, days_star), (months, _), (weekdays, weekdays_star) = parsed
    return _CronSpec(
        seconds=_Values.of(seconds),
        minutes=_Values.of(minutes),
        hours=_Values.of(hours),
        days=_Values.of(days),
        months=_Values.of(months),
        weekdays=_Values.of({day % 7 for day in weekdays}),
        days_star=days_star,
        weekdays_star=weekdays_star,
    )


def _compile_descriptor(expression: str) -> _Spec:
    word, *more = expression.split(None, 1)
    rest = more[0].strip() if more else ""
    key = word.lower()
    if key == "@every":
        return _EverySpec(_parse_every(rest))
    if key in _DESCRIPTORS:
        if rest:
            raise CronError(f"the descriptor {word!r} takes nothing after it; got {rest!r}")
        return _compile(_DESCRIPTORS[key])
    known = ", ".join(_DESCRIPTORS)
    raise CronError(f"unknown descriptor {word!r}: the descriptors are {known} and @every <duration>")


def _parse_field(text: str, spec: _FieldSpec) -> tuple[set[int], bool]:
    """The values one field allows, and whether it was '*' or '?' (a step of 1 included)."""
    values: set[int] = set()
    star = False
    for item in text.split(","):
        if not item:
            raise CronError(f"cron field {spec.name!r} has an empty item in the list {text!r}")
        item_values, item_star = _parse_item(item, spec)
        values.update(item_values)
        star = star or item_star
    return values, star


def _parse_item(item: str, spec: _FieldSpec) -> tuple[range, bool]:
    span, slash, step_text = item.partition("/")
    step = 1
    if "/" in step_text:
        raise CronError(f"cron field {spec.name!r} has {item!r}: more than one '/'")
    if slash:
        if not (step_text.isascii() and step_text.isdigit()):
            raise CronError(f"cron field {spec.name!r} has the step {step_text!r} in {item!r}: a step is a number")
        step = int(step_text)
        if step == 0:
            raise CronError(f"cron field {spec.name!r} has step 0 in {item!r}: a step must be at least 1")
    if span in ("*", "?"):
        return range(spec.low, spec.top + 1, step), step == 1
    first, dash, last = span.partition("-")
    if first in ("*", "?") or last in ("*", "?"):
        raise CronError(f"cron field {spec.name!r} has the range {span!r}: '*' and '?' cannot be part of a range")
    if "-" in last:
        raise CronError(f"cron field {spec.name!r} has the range {span!r}: more than one '-'")
    start = _parse_value(first, spec, item)
    if dash:
        end = _parse_value(last, spec, item)
        if spec.high == 7 and end == 0 and last.upper() == "SUN":
            end = 7  # 'FRI-SUN': Sunday as 7 ends a weekday range
    elif slash:
        end = max(start, spec.top)  # 'a/n': from a to the field's largest value
    else:
        end = start
    if start > end:
        raise CronError(f"cron field {spec.name!r} has the range {span!r}: its start {start} is after its end {end}")
    return range(start, end + 1, step), False


def _parse_value(token: str, spec: _FieldSpec, item: str) -> int:
    if not token:
        raise CronError(f"cron field {spec.name!r} has {item!r}: a value is missing")
    if token.isascii() and token.isdigit():
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise CronError(f"cron field {spec.name!r} has {value}: the range is {spec.low}-{spec.high}")
        return value
    named = spec.names.get(token.upper())
    if named is None:
        raise CronError(f"cron field {spec.name!r} has {token!r}: not a number{spec.names_hint}")
    return named


def _check_days_fit(spec: _CronSpec, expression: str) -> None:
    """Refuse a day-of-month that no allowed month has (when the day-of-month must fit)."""
    if spec.days_star or not spec.weekdays_star:
        return  # any day fits, or the weekday alone can fit
    longest = max(_MONTH_DAYS[month - 1] for month in spec.months.values)
    if spec.days.values[0] > longest:
        raise CronError(
            f"cron expression {expression!r} never matches: no month it allows "
            f"has day {spec.days.values[0]} (the longest has {longest} days)"
        )


def _parse_every(text: str) -> int:
    """The seconds of an '@every' Go duration, refusing what is not a whole number of seconds >= 1."""
    if not text:
        raise CronError("@every needs a duration, such as '@every 30s' or '@every 1m30s'")
    if any(character.isspace() for character in text):
        raise CronError(f"@every has {text!r}: not a duration such as 30s, 1m30s or 2h")
    rest, negative = text, False
    if rest[0] in "+-":
        negative, rest = rest[0] == "-", rest[1:]
    total = Fraction(0)
    if rest != "0":  # Go takes a bare 0 without a unit
        if not rest:
            raise CronError(f"@every has {text!r}: not a duration such as 30s, 1m30s or 2h")
        position = 0
        while position < len(rest):
            term = _DURATION_TERM.match(rest, position)
            if term is None or term.end() == position:  # pragma: no cover - the pattern always advances
                raise CronError(f"@every has {text!r}: not a duration such as 30s, 1m30s or 2h")
            whole, fraction, unit = term.group(1), term.group(2), term.group(3)
            if not whole and not fraction:
                raise CronError(f"@every has {text!r}: not a duration such as 30s, 1m30s or 2h")
            if not unit:
                raise CronError(f"@every has {text!r}: a number lacks its unit (h, m, s, ms, us or ns)")
            if unit not in _DURATION_UNITS:
                raise CronError(f"@every has the unit {unit!r} in {text!r}: the units are h, m, s, ms, us and ns")
            number = Fraction(int(whole or "0"))
            if fraction:
                number += Fraction(int(fraction), 10 ** len(fraction))
            total += number * _DURATION_UNITS[unit]
            position = term.end()
    if negative and total:
        raise CronError(f"@every has {text!r}: the interval must be positive")
    if total > _MAX_DURATION:
        raise CronError(f"@every has {text!r}: longer than the longest Go duration (about 292 years)")
    if total < 1:
        raise CronError(f"@every has {text!r}: the interval must be at least 1s (sub-second intervals are refused)")
    if total.denominator != 1:
        raise CronError(f"@every has {text!r}: the interval must be a whole number of seconds")
    return int(total)


# -- finding the next run --------------------------------------------------------------------------


def _next_every(seconds: int, moment: datetime) -> datetime:
    """The next multiple of ``seconds`` since the Unix epoch strictly after ``moment``."""
    since = moment - _EPOCH
    micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    interval = seconds * 1_000_000
    try:
        return _EPOCH + timedelta(microseconds=(micros // interval + 1) * interval)
    except OverflowError:
        raise CronError(f"@every {seconds}s has no run after {moment.isoformat()} before the year {MAXYEAR}") from None


def _next_cron(spec: _CronSpec, zone: ZoneInfo, moment: datetime, expression: str) -> datetime:
    """The first wall-clock time in ``zone`` that fits ``spec`` and is strictly after ``moment``, in UTC."""
    try:
        local = moment.astimezone(zone)
        wall = local.replace(tzinfo=None, microsecond=0, fold=0)
        if local.fold == 1 and _ambiguous(wall, zone):
            # In the second pass of a repeated hour: every wall-clock time left in
            # it ran on the first pass (before `moment`), so look from its end.
            wall = _first_where(wall, _repeat_length(wall, zone), lambda w: not _ambiguous(w, zone))
        else:
            wall += _SECOND
        horizon = min(wall.year + _HORIZON_YEARS, MAXYEAR)
        while True:
            fitting = _next_fitting_wall(spec, wall, horizon)
            if fitting is None:
                raise CronError(
                    f"cron expression {expression!r} never matches: no run in the {_HORIZON_YEARS} years "
                    f"after {moment.isoformat()}"
                )
            wall = fitting
            aware = wall.replace(tzinfo=zone)  # fold=0: the first occurrence of a repeated time
            run = aware.astimezone(UTC)
            if run.astimezone(zone).replace(tzinfo=None) != wall:
                # Skipped when the clocks sprang forward: go on from the first time that exists.
                gap = _gap_length(wall, zone)
                wall = _first_where(wall, gap, lambda w: _exists(w, zone))
                continue
            if run <= moment:  # pragma: no cover - the start above is already after `moment`
                wall += _SECOND
                continue
            return run
    except OverflowError:
        raise CronError(
            f"cron expression {expression!r} has no run after {moment.isoformat()} before the year {MAXYEAR}"
        ) from None


def _next_fitting_wall(spec: _CronSpec, wall: datetime, horizon: int) -> datetime | None:
    """The first naive wall-clock time >= ``wall`` that fits every field, or None past the year ``horizon``.

    Jumps field by field: to the next allowed month, day, hour, minute, second.
    """
    while True:
        if wall.year > horizon:
            return None
        if wall.month not in spec.months:
            month = spec.months.first_from(wall.month)
            if month is None:
                if wall.year >= MAXYEAR:
                    raise OverflowError
                wall = datetime(wall.year + 1, spec.months.values[0], 1)
            else:
                wall = datetime(wall.year, month, 1)
            continue
        if not spec.day_fits(wall):
            wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
            continue
        if wall.hour not in spec.hours:
            hour = spec.hours.first_from(wall.hour)
            if hour is None:
                wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
            else:
                wall = wall.replace(hour=hour, minute=0, second=0)
            continue
        if wall.minute not in spec.minutes:
            minute = spec.minutes.first_from(wall.minute)
            if minute is None:
                wall = wall.replace(minute=0, second=0) + timedelta(hours=1)
            else:
                wall = wall.replace(minute=minute, second=0)
            continue
        if wall.second not in spec.seconds:
            second = spec.seconds.first_from(wall.second)
            wall = wall.replace(second=0) + timedelta(minutes=1) if second is None else wall.replace(second=second)
            continue
        return wall


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the naive wall-clock time happens in ``zone`` (not skipped by a spring-forward)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _ambiguous(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the naive wall-clock time happens twice in ``zone`` (in a fall-back's repeated hour)."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and _exists(wall, zone)


def _offsets(wall: datetime, zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    first, second = wall.replace(tzinfo=zone, fold=0).utcoffset(), wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None and second is not None  # a ZoneInfo always has an offset
    return first, second


def _repeat_length(wall: datetime, zone: ZoneInfo) -> timedelta:
    """How long the repeated stretch around an ambiguous ``wall`` lasts."""
    first, second = _offsets(wall, zone)
    return first - second


def _gap_length(wall: datetime, zone: ZoneInfo) -> timedelta:
    """How long the skipped stretch around a non-existent ``wall`` lasts."""
    first, second = _offsets(wall, zone)
    return max(second - first, _SECOND)


def _first_where(wall: datetime, span: timedelta, condition: Callable[[datetime], bool]) -> datetime:
    """The first whole second in (wall, wall + span] where ``condition`` holds (false at wall, true at the end).

    A binary search: the condition switches once, at the end of a repeated or
    skipped stretch. Should it not hold at the end, the end is returned.
    """
    low, high = 0, max(int(span.total_seconds()), 1)
    while high - low > 1:
        middle = (low + high) // 2
        if condition(wall + timedelta(seconds=middle)):
            high = middle
        else:
            low = middle
    return wall + timedelta(seconds=high)
