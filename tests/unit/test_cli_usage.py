"""`faas usage`, `faas fn logs --request` and the request id `faas fn invoke` prints, against a fake daemon."""

from __future__ import annotations

import json

from tests.unit.test_cli_events import FakeDaemon, daemon, run, table  # noqa: F401

REPORT = {
    "since": "2026-11-29T03:00:00Z",
    "usage": [
        {"function": "f", "hour": "2026-11-30T02:00:00Z", "calls": 10, "billed_ms": 123, "gb_seconds": 0.03075,
         "instance_seconds": 120.5},
        {"function": "g", "hour": "2026-11-30T03:00:00Z", "calls": 1, "billed_ms": 4, "gb_seconds": 0.001,
         "instance_seconds": 3.0},
    ],
    "totals": {"calls": 11, "billed_ms": 127, "gb_seconds": 0.03175, "instance_seconds": 123.5},
}  # fmt: skip


def test_usage_shows_a_row_per_function_and_hour_and_the_totals(daemon: FakeDaemon) -> None:  # noqa: F811
    daemon.answer("GET", "/v1/usage", (200, REPORT))
    result = run(daemon, "usage", "--function", "f", "--since", "7d")
    assert result.exit_code == 0, result.output
    rows = table(result.output.strip())
    assert [r["FUNCTION"] for r in rows] == ["f", "g", "-"]
    assert rows[0]["CALLS"] == "10" and rows[0]["BILLED MS"] == "123" and rows[0]["GB-SECONDS"] == "0.03075"
    assert rows[2]["HOUR"] == "TOTAL" and rows[2]["CALLS"] == "11" and rows[2]["INSTANCE-SECONDS"] == "123.5"
    assert daemon.requests("GET", "/v1/usage")[0].query == {"function": "f", "since": "7d"}


def test_usage_defaults_to_the_last_day_and_prints_json_as_is(daemon: FakeDaemon) -> None:  # noqa: F811
    daemon.answer("GET", "/v1/usage", (200, REPORT))
    result = run(daemon, "usage", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == REPORT
    assert daemon.requests("GET", "/v1/usage")[0].query == {"since": "24h"}


def test_usage_without_rows_says_so(daemon: FakeDaemon) -> None:  # noqa: F811
    daemon.answer("GET", "/v1/usage", (200, {"since": "2026-11-29T03:00:00Z", "usage": [], "totals": {}}))
    result = run(daemon, "usage")
    assert result.exit_code == 0
    assert result.output.strip() == "no usage since 2026-11-29T03:00:00Z"


def test_a_bad_since_is_one_line_from_the_daemon(daemon: FakeDaemon) -> None:  # noqa: F811
    daemon.answer("GET", "/v1/usage", (400, {"error": {"code": "bad_request", "message": "since 'x' is invalid"}}))
    result = run(daemon, "usage", "--since", "x")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: since 'x' is invalid"]


def test_logs_for_one_request_pass_its_id(daemon: FakeDaemon) -> None:  # noqa: F811
    line = "2026-11-30T03:00:00.000Z abcdef123456 stdout [rq-1] hello"
    daemon.answer("GET", "/v1/functions/f/logs", (200, line + "\n"))
    result = run(daemon, "fn", "logs", "--name", "f", "--request", "rq-1")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == line
    assert daemon.requests("GET", "/v1/functions/f/logs")[0].query == {"request": "rq-1"}


def test_invoke_prints_the_request_id_to_find_the_calls_logs(daemon: FakeDaemon) -> None:  # noqa: F811
    daemon.answer("GET", "/function/f", (200, ("hi\n", {"X-Request-Id": "abc-1"})))
    result = run(daemon, "fn", "invoke", "--name", "f")
    assert result.exit_code == 0, result.output
    assert "request id: abc-1  (faas fn logs --name f --request abc-1)" in result.output
