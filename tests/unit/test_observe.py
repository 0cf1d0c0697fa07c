"""The pure parts of faasd/observe: counters, quantiles, the minute series and the usage meter."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from faasd.observe.calls import (
    DURATION_BUCKETS,
    NO_POOL,
    POOL_WARM,
    THROTTLED,
    TIMED_OUT,
    CallStats,
    Histogram,
    quantile,
)
from faasd.observe.metrics import FaasdCollector, MetricSources, QueueView, registry_for, render
from faasd.observe.series import MinuteSeries
from faasd.observe.usage import UsageDelta, UsageMeter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_histogram_buckets_and_cumulative_form() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        h.observe(value)
    assert h.counts == [2, 1, 1]  # a bound is inclusive: 0.1 falls in le=0.1
    assert list(h.cumulative()) == [(0.1, 2), (1.0, 3), (math.inf, 4)]
    assert h.count == 4
    assert h.total == pytest.approx(2.65)


def test_quantile_interpolates_within_the_bucket() -> None:
    bounds = (0.01, 0.02, 0.04)
    assert quantile(bounds, [0, 0, 0, 0], 0.5) is None
    assert quantile(bounds, [10, 0, 0, 0], 0.5) == pytest.approx(0.005)
    assert quantile(bounds, [0, 10, 0, 0], 0.5) == pytest.approx(0.015)
    assert quantile(bounds, [5, 5, 0, 0], 0.99) == pytest.approx(0.01 + 0.01 * 0.98)
    assert quantile(bounds, [0, 0, 0, 3], 0.5) == 0.04  # past the last bound: the last bound


def test_record_counts_status_classes_billing_and_faasd_errors() -> None:
    stats = CallStats()
    stats.record("f", 200, 0.0004, 0.0001)
    stats.record("f", 404, 0.0031, 0.0011)
    stats.record("f", 429, 1.0, None, THROTTLED)  # never reached an instance: not billed
    stats.record("f", 504, 2.0, 0.5, TIMED_OUT)
    stats.record("f", 499, 0.5, None)
    fc = stats.functions["f"]
    assert fc.calls == 5
    assert fc.by_class[2] == 1 and fc.by_class[4] == 2 and fc.by_class[5] == 1
    assert fc.by_class[0] == 1  # 499, the client left: a class of its own
    assert fc.errors == 1
    assert (fc.throttled, fc.timeouts) == (1, 1)
    # Time on the instance (duration less overhead), each call rounded up to the millisecond.
    assert fc.billed_ms == 1 + 2 + 1500
    assert fc.overhead.count == 3  # calls that never reached an instance have no overhead


def test_cold_starts_by_kind_and_forget_keeps_the_last_figures_for_the_meter() -> None:
    stats = CallStats()
    stats.cold_start("f", POOL_WARM, 0.004)
    stats.cold_start("f", NO_POOL, 0.4)
    stats.cold_start("f", NO_POOL, 0.5)
    fc = stats.functions["f"]
    assert fc.cold_kinds == {POOL_WARM: 1, NO_POOL: 2}
    assert fc.cold_starts == 3
    stats.forget("f", memory_mb=512)
    assert "f" not in stats.functions
    assert stats.deleted == {"f": fc} and fc.memory_mb == 512
    stats.record("f", 200, 0.01, 0.001)  # a call in flight at the delete ends: the deleted counters take it
    assert "f" not in stats.functions and fc.calls == 1
    stats.revive("f")  # created again: from zero, the old counters go to the meter's last take
    assert stats.gone == [("f", fc)] and not stats.deleted
    stats.record("f", 200, 0.01, 0.001)
    assert stats.functions["f"] is not fc and stats.functions["f"].calls == 1


def test_series_rolls_minutes_and_answers_the_live_one() -> None:
    clock = Clock(600.0)  # on a minute
    stats = CallStats()
    series = MinuteSeries(stats, clock, minutes=5)
    stats.record("f", 200, 0.003, None)
    view = series.view()
    assert series.view()["functions"]["f"]["calls"][-1] == 1
    assert view["functions"]["f"]["calls"] == [0, 0, 0, 0, 1]  # the live minute shows it at once
    clock.now = 660.5
    series.roll()
    stats.record("f", 500, 0.02, None)
    stats.record("f", 200, 0.02, None)
    stats.cold_start("f", POOL_WARM, 0.01)
    view = series.view("f")
    f = view["functions"]["f"]
    assert f["calls"] == [0, 0, 0, 1, 2]
    assert f["errors"] == [0, 0, 0, 0, 1]
    assert f["cold_starts"] == [0, 0, 0, 0, 1]
    assert f["p50_ms"][:3] == [None, None, None]
    assert 2.5 <= f["p50_ms"][3] <= 5.0  # 3 ms lies in the (2.5, 5] ms bucket
    assert view["start"] == (11 - 4) * 60 and view["step"] == 60
    clock.now = 660.5 + 180  # three minutes without a roll: the first gets the calls, then empty ones
    series.roll()
    f = series.view("f")["functions"]["f"]
    assert f["calls"] == [1, 2, 0, 0, 0]


def test_series_forgets_a_deleted_function_and_restarts_a_new_one_from_zero() -> None:
    clock = Clock(0.0)
    stats = CallStats()
    series = MinuteSeries(stats, clock, minutes=3)
    stats.record("f", 200, 0.001, None)
    clock.now = 60.0
    series.roll()
    stats.forget("f")
    stats.revive("f")
    stats.record("f", 200, 0.001, None)  # a new function of the same name
    assert series.view("f")["functions"]["f"]["calls"] == [0, 1, 1]
    clock.now = 120.0
    series.roll()
    assert series.view("f")["functions"]["f"]["calls"] == [1, 1, 0]


class Sink:
    def __init__(self) -> None:
        self.rows: list[UsageDelta] = []
        self.fail = False

    async def add(self, rows: Sequence[UsageDelta]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.rows.extend(rows)


class Instances:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def take_instance_seconds(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken


def test_meter_takes_deltas_per_hour_with_gb_seconds_and_instance_seconds() -> None:
    clock = Clock(7200.0 + 1800)
    stats, instances, sink = CallStats(), Instances(), Sink()
    memory = {"f": 512, "g": 128}
    meter = UsageMeter(stats, instances, sink, memory.get, clock=clock)
    stats.record("f", 200, 0.0111, 0.001)  # billed 11 ms
    stats.record("f", 500, 0.201, 0.001)  # billed 200 ms
    instances.seconds = {"f": 30.0, "g": 12.5}
    rows = meter.take()
    assert rows == [
        UsageDelta("f", 7200, 2, 211, 0.211 * 0.5, 30.0),
        UsageDelta("g", 7200, 0, 0, 0.0, 12.5),
    ]
    assert meter.take() == []  # nothing new
    clock.now = 3 * 3600 + 5
    stats.record("f", 200, 0.001, 0.0)
    stats.record("f", 429, 3.0, None, THROTTLED)  # counted, never billed
    assert meter.take() == [UsageDelta("f", 3 * 3600, 2, 1, 0.001 * 0.5, 0.0)]


def test_the_meter_flushes_just_before_the_hour_ends_then_just_after() -> None:
    clock = Clock(3600 * 5 - 30.0)
    meter = UsageMeter(CallStats(), Instances(), Sink(), lambda _n: 128, clock=clock, interval=10.0)
    assert meter._wait() == 10.0
    clock.now = 3600 * 5 - 4.0
    assert 3.9 < meter._wait() < 4.0  # the hour's last figures are stamped with it
    clock.now = 3600 * 5 - 0.05
    assert 0.05 < meter._wait() <= 0.15  # then just past the hour


def test_meter_keeps_the_last_figures_of_a_deleted_function() -> None:
    clock = Clock(100.0)
    tomb_clock = Clock(0.0)
    stats, instances, sink = CallStats(tomb_clock), Instances(), Sink()
    memory: dict[str, int] = {"f": 1024}
    meter = UsageMeter(stats, instances, sink, memory.get, clock=clock)
    stats.record("f", 200, 0.002, 0.0)
    assert meter.take()[0].calls == 1
    stats.record("f", 200, 0.002, 0.0)
    stats.forget("f", memory_mb=1024)
    del memory["f"]
    stats.record("f", 200, 0.003, 0.0)  # in flight at the delete: still the deleted function's
    stats.revive("f")  # re-created within the same interval, with another memory limit
    memory["f"] = 2048
    stats.record("f", 200, 0.004, 0.0)
    rows = meter.take()
    assert [(r.calls, r.billed_ms) for r in rows] == [(3, 9)]
    assert rows[0].gb_seconds == pytest.approx(0.005 * 1 + 0.004 * 2)
    assert meter.take() == []


def test_a_function_deleted_before_any_take_is_billed_at_its_memory_and_buried_later() -> None:
    tomb_clock = Clock(0.0)
    stats, instances, sink = CallStats(tomb_clock), Instances(), Sink()
    meter = UsageMeter(stats, instances, sink, lambda _n: None, clock=Clock(100.0))
    stats.record("f", 200, 0.010, 0.0)
    stats.forget("f", memory_mb=512)
    rows = meter.take()
    assert [(r.calls, r.billed_ms, r.gb_seconds) for r in rows] == [(1, 10, pytest.approx(0.005))]
    tomb_clock.now = 10.0
    assert meter.take() == [] and "f" in stats.deleted  # kept a while for calls still in flight
    tomb_clock.now = 4000.0
    assert meter.take() == [] and "f" not in stats.deleted  # then buried


def test_meter_flush_retries_rows_a_failed_write_could_not_save() -> None:
    clock = Clock(100.0)
    stats, instances, sink = CallStats(), Instances(), Sink()
    meter = UsageMeter(stats, instances, sink, lambda _n: 128, clock=clock)
    stats.record("f", 200, 0.001, None)
    sink.fail = True
    with pytest.raises(OSError):
        asyncio.run(meter.flush())
    sink.fail = False
    stats.record("f", 200, 0.001, None)
    asyncio.run(meter.flush())
    assert [(r.function, r.calls) for r in sink.rows] == [("f", 2)]  # merged into one row per hour
    assert meter.flushes == 1


class Pool:
    def instance_states(self) -> dict[str, dict[str, int]]:
        return {"f": {"starting": 1, "idle": 2, "busy": 3, "waiting": 4}}

    def pool_sizes(self) -> dict[str, tuple[int, int, int]]:
        return {"python": (3, 2, 1)}

    def container_starts(self) -> dict[str, list[int]]:
        return {"python": [7, 1]}


def test_the_exposition_names_every_family_with_its_samples() -> None:
    stats = CallStats()
    stats.record("f", 200, 0.003, 0.0002)
    stats.record("f", 503, 0.5, None, "overloaded")
    stats.cold_start("f", NO_POOL, 0.3)
    sources = MetricSources(
        calls=stats,
        pool=Pool(),
        catalog=lambda: (1, 2),
        function_names=lambda: ["f", "idle"],
        queue=lambda: QueueView(queued=5, running=2, limit=100, oldest_due_seconds=1.5, in_flight=2),
        timers=lambda: {"nightly": [3, 1, 0.25]},
        builds=lambda: {("python", "succeeded"): [2, 10.0]},
        version="9.9",
    )
    text = render(registry_for(sources)).decode()
    lines = set(text.splitlines())
    assert 'faasd_function_calls_total{code="2xx",function="f"} 1.0' in lines
    assert 'faasd_function_calls_total{code="5xx",function="f"} 1.0' in lines
    # Every class of every registered function from 0, called or not: rate() misses a series' first sample.
    for code in ("2xx", "3xx", "4xx", "5xx", "499"):
        assert f'faasd_function_calls_total{{code="{code}",function="idle"}} 0.0' in lines
    assert 'faasd_function_calls_total{code="4xx",function="f"} 0.0' in lines
    assert 'faasd_function_duration_seconds_bucket{function="f",le="0.005"} 1.0' in lines
    assert 'faasd_function_duration_seconds_count{function="f"} 2.0' in lines
    assert 'faasd_function_cold_starts_total{function="f",kind="no-pool"} 1.0' in lines
    assert 'faasd_function_instances{function="f",state="busy"} 3.0' in lines
    assert 'faasd_function_queued_calls{function="f"} 4.0' in lines
    assert 'faasd_pool_ready{environment="python"} 2.0' in lines
    assert 'faasd_container_start_failures_total{environment="python"} 1.0' in lines
    assert 'faasd_async_calls{state="queued"} 5.0' in lines
    assert 'faasd_timer_ticks_total{result="skipped",timer="nightly"} 1.0' in lines
    assert 'faasd_builds_total{environment="python",result="succeeded"} 2.0' in lines
    assert 'faasd_info{version="9.9"} 1.0' in lines
    assert any(line.startswith("process_") for line in lines)  # the process collector is there
    assert len(DURATION_BUCKETS) + 1 == sum(
        1 for line in lines if line.startswith('faasd_function_duration_seconds_bucket{function="f"')
    )
    assert FaasdCollector(sources).describe() == []


def test_log_lines_of_one_request_are_told_by_their_prefix() -> None:
    from faasd.control.function_logs import written_for

    keep = written_for("rq-1")
    assert keep("2026-11-30T03:00:00.000Z abcdef123456 stdout [rq-1] hello")
    assert keep("2026-11-30T03:00:00.000Z abcdef123456 stderr [rq-1]")
    assert not keep("2026-11-30T03:00:00.000Z abcdef123456 stdout [rq-10] another call")
    assert not keep("2026-11-30T03:00:00.000Z abcdef123456 stdout hello [rq-1] later in the line")
    assert not keep("short")


def test_metrics_public_is_a_bare_flag_or_a_variable_and_access_log_is_checked() -> None:
    from faasd.core.settings import load_settings

    assert load_settings([], {}).metrics_public is False
    assert load_settings(["--metrics-public"], {}).metrics_public is True
    assert load_settings([], {"FAASD_METRICS_PUBLIC": "yes"}).metrics_public is True
    assert load_settings([], {"FAASD_METRICS_PUBLIC": "0"}).metrics_public is False
    assert load_settings(["--access-log", "json"], {}).access_log == "json"
    with pytest.raises(SystemExit):
        load_settings([], {"FAASD_METRICS_PUBLIC": "maybe"})
    with pytest.raises(SystemExit):
        load_settings(["--access-log", "xml"], {})
    with pytest.raises(SystemExit):
        load_settings(["--usage-interval", "0"], {})
