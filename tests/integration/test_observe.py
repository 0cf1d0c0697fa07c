"""What runs and what it costs, against a real faasd: /metrics, usage, request ids, the access log."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from typing import Any

import requests

from tests.integration.harness import FaasdProcess, wait_for

SLEEPER_PY = """import time


def main(context):
    ms = int(context.request.query.get("ms", "0"))
    print("sleeping", ms, flush=True)
    time.sleep(ms / 1000)
    print("woke", flush=True)
    return "slept %d\\n" % ms
"""

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(daemon: FaasdProcess) -> dict[str, float]:
    """Every sample of /metrics, keyed by its name and labels as printed."""
    text = daemon.api("GET", "/metrics").text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def call(daemon: FaasdProcess, path: str, **kwargs: Any) -> requests.Response:
    response = requests.get(daemon.url + path, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response


def usage_of(daemon: FaasdProcess, function: str) -> dict[str, Any]:
    report = daemon.ok("GET", f"/v1/usage?function={function}&since=2h")
    rows = report["usage"]
    return {
        "calls": sum(r["calls"] for r in rows),
        "billed_ms": sum(r["billed_ms"] for r in rows),
        "gb_seconds": sum(r["gb_seconds"] for r in rows),
        "instance_seconds": sum(r["instance_seconds"] for r in rows),
    }


def test_metrics_need_the_token_unless_made_public(start_faasd: Callable[..., FaasdProcess]) -> None:
    guarded = start_faasd(default_poolsize=0, wait_pools=False)
    assert requests.get(guarded.url + "/metrics", timeout=10).status_code == 401
    assert "faasd_functions " in guarded.api("GET", "/metrics").text
    public = start_faasd(default_poolsize=0, wait_pools=False, environ={"FAASD_METRICS_PUBLIC": "true"})
    answer = requests.get(public.url + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    assert "process_resident_memory_bytes " in answer.text
    assert requests.get(public.url + "/v1/stats", timeout=10).status_code == 401  # only /metrics opens


def test_calls_are_counted_metered_and_kept_across_a_restart_and_a_kill(
    start_faasd: Callable[..., FaasdProcess],
) -> None:
    daemon = start_faasd(default_poolsize=1)
    daemon.create_function("sleeper", "python", SLEEPER_PY, memory_mb=512)
    sleeps = [200, 150, 250, 200, 180, 220, 200, 160, 240, 200]
    for ms in sleeps:
        call(daemon, f"/function/sleeper?ms={ms}")
    samples = scrape(daemon)
    assert samples['faasd_function_calls_total{code="2xx",function="sleeper"}'] == len(sleeps)
    assert samples['faasd_function_duration_seconds_count{function="sleeper"}'] == len(sleeps)
    assert samples['faasd_function_cold_starts_total{function="sleeper",kind="pool-warm"}'] == 1
    assert samples['faasd_function_cold_starts_total{function="sleeper",kind="no-pool"}'] == 0
    assert samples['faasd_function_instances{function="sleeper",state="idle"}'] == 1
    # Durations sit in the buckets around the sleeps: none under 100 ms, all under 500 ms.
    assert samples['faasd_function_duration_seconds_bucket{function="sleeper",le="0.1"}'] == 0
    assert samples['faasd_function_duration_seconds_bucket{function="sleeper",le="0.5"}'] == len(sleeps)

    used = usage_of(daemon, "sleeper")
    slept = sum(sleeps)
    assert used["calls"] == len(sleeps)
    assert slept <= used["billed_ms"] <= slept * 1.02, used  # the test's own count, within 2 %
    assert abs(used["gb_seconds"] - used["billed_ms"] / 1000 * 0.5) < 1e-6
    assert used["instance_seconds"] > 0

    instances = daemon.ok("GET", "/v1/functions/sleeper/instances")["instances"]
    assert len(instances) == 1 and instances[0]["calls"] == len(sleeps) and instances[0]["state"] == "idle"

    stats = daemon.ok("GET", "/v1/stats?function=sleeper")["functions"]["sleeper"]
    assert sum(stats["calls"]) == len(sleeps)  # in the live minute, or the one before it
    assert sum(stats["cold_starts"]) == 1
    assert any(p is not None and 100 <= p <= 500 for p in stats["p50_ms"])

    # A stop (SIGTERM) writes what the meter holds; a restart finds it.
    assert daemon.stop(signal.SIGTERM) == 0
    daemon.start()
    after_stop = usage_of(daemon, "sleeper")
    assert after_stop["calls"] == len(sleeps)
    assert after_stop["billed_ms"] == used["billed_ms"]
    assert after_stop["instance_seconds"] >= used["instance_seconds"]

    # Reading the usage writes it first, so a kill right after loses nothing.
    call(daemon, "/function/sleeper?ms=50")
    assert usage_of(daemon, "sleeper")["calls"] == len(sleeps) + 1
    daemon.kill9()
    daemon.start()
    assert usage_of(daemon, "sleeper")["calls"] == len(sleeps) + 1
    assert daemon.api("GET", "/v1/usage?since=yesterday").status_code == 400


def test_a_request_id_reaches_the_function_its_log_lines_and_faas_fn_logs(faasd: FaasdProcess) -> None:
    faasd.create_function("traced", "python", SLEEPER_PY)
    answer = call(faasd, "/function/traced?ms=1", headers={"X-Request-Id": "trace-me-1"})
    assert answer.headers["X-Request-Id"] == "trace-me-1"
    other = call(faasd, "/function/traced?ms=2")
    other_id = other.headers["X-Request-Id"]
    assert other_id and other_id != "trace-me-1"

    def lines_of(request_id: str) -> list[str]:
        text = faasd.api("GET", f"/v1/functions/traced/logs?request={request_id}").text
        return [line for line in text.splitlines() if line]

    mine = wait_for(lambda: len(lines_of("trace-me-1")) == 2 and lines_of("trace-me-1"), "the call's two lines")
    assert mine[0].endswith(" stdout [trace-me-1] sleeping 1")
    assert mine[1].endswith(" stdout [trace-me-1] woke")
    theirs = wait_for(lambda: len(lines_of(other_id)) == 2 and lines_of(other_id), "the other call's lines")
    assert theirs[0].endswith(f"[{other_id}] sleeping 2")
    shown = faasd.faas("fn", "logs", "--name", "traced", "--request", "trace-me-1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == mine


def test_the_access_log_has_a_json_line_per_call(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=1, access_log="json")
    daemon.create_function("logged", "python", SLEEPER_PY)
    first = call(daemon, "/function/logged?ms=1")
    call(daemon, "/function/logged?ms=1", headers={"X-Request-Id": "acc-2"})

    def records() -> list[dict[str, Any]]:
        found = []
        for line in daemon.log().splitlines():
            if "faasd.access" in line:
                found.append(json.loads(line[line.index("{") :]))
        return found

    got = wait_for(lambda: len(records()) >= 2 and records(), "two access log lines")
    assert [r["request_id"] for r in got] == [first.headers["X-Request-Id"], "acc-2"]
    assert [r["start"] for r in got] == ["cold", "warm"]
    assert all(r["function"] == "logged" and r["status"] == 200 and r["instance"] for r in got)
    assert got[0]["instance"] == got[1]["instance"]
    assert got[0]["route"] == "/function/logged"


def test_a_cold_start_without_a_pool_and_async_deliveries_are_counted(faasd: FaasdProcess) -> None:
    faasd.ok("POST", "/v1/environments", json={"name": "nopool", "image": "faasd/runtime-python:latest", "poolsize": 0})
    faasd.create_function("unpooled", "nopool", SLEEPER_PY)
    call(faasd, "/function/unpooled?ms=1")
    accepted = faasd.api("POST", "/async-function/unpooled?ms=1")
    assert accepted.status_code == 202
    call_id = accepted.json()["call_id"]
    done = faasd.ok("GET", f"/v1/invocations/{call_id}?wait=30")
    assert done["status"] == "succeeded"

    def counted() -> dict[str, float] | None:
        samples = scrape(faasd)
        key = 'faasd_function_calls_total{code="2xx",function="unpooled"}'
        return samples if samples.get(key) == 2 else None

    samples = wait_for(counted, "the synchronous call and the asynchronous delivery counted")
    assert samples['faasd_function_cold_starts_total{function="unpooled",kind="no-pool"}'] == 1
    assert samples['faasd_container_starts_total{environment="nopool"}'] >= 1
    assert samples['faasd_pool_size{environment="nopool"}'] == 0
    assert samples['faasd_async_calls{state="queued"}'] == 0
    # The delivery's log lines carry the call's id as their request id.
    wait_for(
        lambda: f"[{call_id}] woke" in faasd.api("GET", f"/v1/functions/unpooled/logs?request={call_id}").text,
        "the delivery's log line under the call's id",
    )
    faasd.api("DELETE", "/v1/functions/unpooled")
    faasd.api("DELETE", "/v1/environments/nopool")
