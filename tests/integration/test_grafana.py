"""contrib/grafana/faasd.json against a real faasd: every metric the dashboard queries is one faasd exports.

The dashboard's PromQL is read for metric names (not label names, functions,
keywords, numbers, durations or Grafana variables) and each name must be the
name of a sample in a scrape of GET /metrics. The faasd here first has what
makes each family carry samples: calls (one 2xx, one 5xx), a timer that has
ticked, a message-queue trigger on a real Redis and a package build that ended.
Rename a metric in faasd/observe/metrics.py and the dashboard test fails.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.brokers import RedisServer, redis_server_fixture  # noqa: F401
from tests.integration.harness import ROOT, FaasdProcess, wait_for

DASHBOARD = ROOT / "contrib" / "grafana" / "faasd.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# Words of PromQL that are never metric names where they stand (functions are also
# recognised by the "(" after them, so a function missing here is still skipped).
_PROMQL_WORDS = """
    and or unless by without on ignoring group_left group_right bool offset start end inf nan
    sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk limit_ratio
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year
    days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
    histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase irate label_join
    label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc
    sort_by_label sort_by_label_desc sqrt time timestamp vector year avg_over_time min_over_time max_over_time
    sum_over_time count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time
    present_over_time mad_over_time double_exponential_smoothing acos acosh asin asinh atan atanh atan2 cos
    cosh sin sinh tan tanh deg rad pi label_values label_names metrics query_result
"""
PROMQL_WORDS = frozenset(_PROMQL_WORDS.split())
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_COMMENT = re.compile(r"#[^\n]*")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+(?::\w+)?\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")  # label matchers: {function=~"...", code="5xx"}
_RANGE = re.compile(r"\[[^\[\]]*\]")  # ranges and subqueries: [5m], [1h:1m]
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# An identifier not glued to what precedes it (so not the "e3" of 1e3, the "m" of 5m or a
# variable's name), and not a function call (a "(" after it, maybe past spaces).
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana's variables in it) selects."""
    text = _STRING.sub(" ", expr)
    text = _COMMENT.sub(" ", text)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in PROMQL_WORDS}


def variable_query_expressions(query: str) -> list[str]:
    """The PromQL inside a Prometheus template-variable query (Grafana's label_values() etc.)."""
    query = query.strip()
    call = re.fullmatch(r"(label_values|query_result|label_names|metrics)\s*\((.*)\)", query, re.DOTALL)
    if call is None:
        return [query]  # a plain PromQL query
    function, inside = call.groups()
    if function == "label_values":
        selector, _, _label = inside.rpartition(",")  # label_values(metric{...}, label); label_values(label)
        return [selector] if selector.strip() else []
    if function == "query_result":
        return [inside]
    return []  # label_names() has no metric; metrics(regex) is a regex over names


def dashboard_panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, the ones inside (collapsed) rows too; rows themselves included."""
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every templating query."""
    found: list[tuple[str, str]] = []
    for panel in dashboard_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} target {target.get('refId')}", target.get("expr", "")))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        queries = [query.get("query", ""), query.get("metric", "")] if isinstance(query, dict) else [query]
        queries.append(variable.get("definition", ""))
        for text in filter(None, queries):
            found += [(f"variable ${variable['name']}", expr) for expr in variable_query_expressions(text)]
    return found


def unknown_metrics(expressions: Iterable[tuple[str, str]], exported: set[str]) -> dict[str, list[str]]:
    """Where -> the metric names it queries that are not exported; an expression naming none is reported too."""
    problems: dict[str, list[str]] = {}
    for where, expr in expressions:
        names = metric_names(expr)
        missing = sorted(names - exported) if names else [f"<no metric name in {expr!r}>"]
        if missing:
            problems[f"{where}: {expr}"] = missing
    return problems


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def scrape(faasd: FaasdProcess) -> str:
    response = faasd.api("GET", "/metrics")
    assert response.status_code == 200, response.text
    return response.text


# -- the dashboard alone -------------------------------------------------------------------------


def test_the_dashboard_is_an_importable_dashboard_over_the_prometheus_input() -> None:
    dashboard = load_dashboard()
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": dashboard["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"] and dashboard["id"] is None
    panels = list(dashboard_panels(dashboard["panels"]))
    data_panels = [p for p in panels if p["type"] != "row"]
    assert len(data_panels) >= 20
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    required = {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            assert not panel.get("targets"), f"row {panel['title']!r} has targets"
            continue
        assert panel["type"] in required, f"{panel['type']} is not in __requires"
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"panel {panel['title']!r} has no unit"
        targets = panel.get("targets", [])
        assert targets and all(t.get("expr", "").strip() for t in targets), f"panel {panel['title']!r}: empty target"
        for target in targets:
            assert target["datasource"] == DATASOURCE, panel["title"]

    [function] = [v for v in dashboard["templating"]["list"] if v["name"] == "function"]
    assert function["type"] == "query" and function["multi"] and function["includeAll"]
    assert function["datasource"] == DATASOURCE
    assert re.sub(r"\s", "", function["query"]["query"]) == "label_values(faasd_function_calls_total,function)"
    # The only datasource anywhere is the import's input: no uid of someone's Grafana left behind.
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text())) - {dashboard["uid"], "-- Grafana --"}
    assert uids == {"${DS_PROMETHEUS}"}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (function, code) (rate(faasd_function_calls_total{function=~"$function"}[$__rate_interval]))',
            {"faasd_function_calls_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, function) (rate(faasd_function_duration_seconds_bucket[5m])))",
            {"faasd_function_duration_seconds_bucket"},
        ),
        ("sum(rate(x_total[1m])) without (le) / on (job, instance) group_left (version) y_info", {"x_total", "y_info"}),
        ('(sum(rate(a{code="5xx"}[1m])) or vector(0)) / sum (rate(a[1m] offset 5m))', {"a"}),
        (
            "rate(process_cpu_seconds_total[$__rate_interval]) and on (job, instance) faasd_info",
            {"process_cpu_seconds_total", "faasd_info"},
        ),
        ("time() - process_start_time_seconds * 1e3 > bool 0x1F", {"process_start_time_seconds"}),
        ('max_over_time(m[1h:5m]) @ end() # the "worst" {hour}\n', {"m"}),
        ('label_replace(up, "by", "$1", "le", "(.*)") > Inf', {"up"}),
        ('{__name__="up"}', set()),
        ("clamp_min(rate(calls_total[${__rate_interval}]), 0) * $factor", {"calls_total"}),
    ],
)
def test_the_extractor_takes_metric_names_and_nothing_else(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_variable_queries_give_their_promql() -> None:
    assert variable_query_expressions("label_values(faasd_function_calls_total, function)") == [
        "faasd_function_calls_total"
    ]
    assert variable_query_expressions('label_values(a{b="c, d"}, e)') == ['a{b="c, d"}']
    assert variable_query_expressions("label_values(function)") == []
    assert variable_query_expressions("query_result(topk(3, rate(x_total[5m])))") == ["topk(3, rate(x_total[5m]))"]
    assert variable_query_expressions("metrics(faasd_.*)") == []


# -- against a real faasd ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(redis_server: RedisServer, faasd: FaasdProcess, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Sample names in a scrape of a faasd with calls, a timer, an MQ trigger and a finished build."""
    faasd.create_function("grafana-ok", "python", "def main():\n    return 'ok'\n")
    faasd.create_function("grafana-fail", "python", "def main():\n    return ('broken', 500)\n")
    assert requests.get(faasd.url + "/function/grafana-ok", timeout=60).status_code == 200
    assert requests.get(faasd.url + "/function/grafana-fail", timeout=60).status_code == 500
    faasd.ok(
        "POST",
        "/v1/triggers/mq",
        json={
            "name": "grafana-mq",
            "function": "grafana-ok",
            "mqtype": "redis",
            "topic": "grafana-in",
            "connection": redis_server.url,
        },
    )
    faasd.ok("POST", "/v1/timers", json={"name": "grafana-tick", "function": "grafana-ok", "cron": "@every 1s"})
    # A build that fails offline, fast: pip has no index to look in.
    source = tmp_path_factory.mktemp("grafana-build")
    (source / "requirements.txt").write_text("--no-index\nno-such-package-anywhere==9.9\n")
    (source / "main.py").write_text("def main():\n    return 'never'\n")
    built = faasd.faas("deploy", str(source), "--env", "python", "--name", "grafana-build")
    assert built.returncode == 1, built.stdout + built.stderr

    # Waited for by their labels, not their names: a renamed metric fails the dashboard test, not this.
    expected = (
        {"function": "grafana-fail", "code": "5xx"},
        {"timer": "grafana-tick", "result": "queued"},
        {"trigger": "grafana-mq"},
        {"environment": "python", "result": "failed"},
    )

    def with_all_series() -> set[str] | None:
        # Names of the samples in the scrape (a family with none has only its # HELP and # TYPE lines).
        samples = [sample for family in text_string_to_metric_families(scrape(faasd)) for sample in family.samples]
        if all(any(want.items() <= sample.labels.items() for sample in samples) for want in expected):
            return {sample.name for sample in samples}
        return None

    names = wait_for(with_all_series, "the call, timer, trigger and build series in /metrics", timeout=60, every=0.2)
    faasd.ok("DELETE", "/v1/timers/grafana-tick")
    return names


def test_every_metric_the_dashboard_queries_is_one_faasd_exports(exported: set[str]) -> None:
    expressions = dashboard_expressions(load_dashboard())
    assert len(expressions) >= 30
    assert unknown_metrics(expressions, exported) == {}
    used = set().union(*(metric_names(expr) for _where, expr in expressions))
    # What the brief of the dashboard names, all of it queried.
    for name in (
        "faasd_function_calls_total",
        "faasd_function_duration_seconds_bucket",
        "faasd_function_overhead_seconds_bucket",
        "faasd_function_cold_starts_total",
        "faasd_function_cold_start_seconds_bucket",
        "faasd_function_instances",
        "faasd_function_queued_calls",
        "faasd_function_throttled_total",
        "faasd_function_timeouts_total",
        "faasd_function_billed_seconds_total",
        "faasd_pool_size",
        "faasd_pool_ready",
        "faasd_container_starts_total",
        "faasd_container_start_failures_total",
        "faasd_async_calls",
        "faasd_async_oldest_due_seconds",
        "faasd_mq_trigger_messages_total",
        "faasd_mq_trigger_inflight",
        "faasd_mq_trigger_oldest_inflight_seconds",
        "faasd_timer_ticks_total",
        "faasd_timer_lateness_seconds",
        "faasd_builds_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in used, f"the dashboard does not query {name}"


def test_a_renamed_metric_is_reported(exported: set[str]) -> None:
    bogus = 'sum by (function) (rate(faasd_function_callz_total{function=~"$function"}[$__rate_interval]))'
    assert unknown_metrics([("bogus", bogus)], exported) == {f"bogus: {bogus}": ["faasd_function_callz_total"]}

    # The dashboard as if faasd_function_duration_seconds had been renamed (in a copy, in memory).
    dashboard = copy.deepcopy(load_dashboard())
    renamed = 0
    for panel in dashboard_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if "faasd_function_duration_seconds_bucket" in target.get("expr", ""):
                target["expr"] = target["expr"].replace("faasd_function_duration_seconds", "faasd_call_seconds")
                renamed += 1
    assert renamed
    before = unknown_metrics(dashboard_expressions(load_dashboard()), exported)
    after = unknown_metrics(dashboard_expressions(dashboard), exported)
    reported = {where: missing for where, missing in after.items() if where not in before}
    assert len(reported) == renamed
    assert all(missing == ["faasd_call_seconds_bucket"] for missing in reported.values())

    # ... and the templating query too.
    dashboard = load_dashboard()
    [variable] = dashboard["templating"]["list"]
    variable["query"]["query"] = variable["definition"] = "label_values(faasd_calls_total, function)"
    problems = unknown_metrics(dashboard_expressions(dashboard), exported)
    assert problems["variable $function: faasd_calls_total"] == ["faasd_calls_total"]


def test_the_readme_says_how_to_import_and_scrape() -> None:
    readme = (DASHBOARD.parent / "README.md").read_text()
    for needed in ("faasd.json", "DS_PROMETHEUS", "scrape_configs", "credentials_file", "--metrics-public"):
        assert needed in readme, needed
