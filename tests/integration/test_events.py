"""Events against the real engine: asynchronous calls, retries and dead letters, timers, watches."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from tests.integration.engine_relay import EngineRelay
from tests.integration.harness import FaasdProcess, wait_for

# Fails its first two attempts (500), then answers with what faasd told it.
FLAKY = """
import json
def main(context):
    request = context.request
    attempt = int(request.context.get("attempt", "0"))
    if attempt < 3:
        return ("not yet", 500)
    return json.dumps({"context": request.context, "path": request.path, "body": request.body.decode()})
"""
FAILING = "def main():\n    return ('always down', 503, {'Retry-After': '1'})\n"
REFUSING = "def main():\n    return ('no such thing', 404)\n"
ECHO = """
import json
def main(context):
    request = context.request
    return json.dumps({"context": request.context, "path": request.path, "params": request.params,
                       "body": request.body.decode(errors="replace"), "method": request.method})
"""
SLOW = """
import json, time
def main(context):
    request = context.request
    time.sleep(float(request.query.get("sleep", "0") or 0) or SLEEP)
    return json.dumps({"context": request.context})
SLEEP = %s
"""
WATCHED = """
import json
def main(context):
    request = context.request
    obj = json.loads(request.body)
    labels = (obj.get("Config") or {}).get("Labels") or obj.get("Labels") or {}
    return json.dumps({"context": request.context, "id": obj.get("Id"), "name": obj.get("Name"), "labels": labels})
"""


def call(daemon: FaasdProcess, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(daemon.url + path, timeout=30, **kwargs)


def finished(daemon: FaasdProcess, call_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        inv = daemon.ok("GET", f"/v1/invocations/{call_id}?wait=5")
        return inv if inv["status"] in ("succeeded", "failed", "dead") else None

    return wait_for(done, f"call {call_id} to finish", timeout=timeout, every=0.2)


def calls_of(daemon: FaasdProcess, function: str, **query: str) -> list[dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in {"function": function, "limit": "1000", **query}.items())
    return list(daemon.ok("GET", f"/v1/invocations?{params}")["items"])


def answers(daemon: FaasdProcess, function: str) -> list[dict[str, Any]]:
    """The JSON answers of ``function``'s succeeded calls, oldest first."""
    done = sorted(calls_of(daemon, function, status="succeeded"), key=lambda c: c["created_at"])
    return [json.loads(daemon.ok("GET", f"/v1/invocations/{c['id']}")["response"]["body"]) for c in done]


# -- asynchronous calls -------------------------------------------------------------------------


def test_an_async_call_is_retried_until_it_succeeds(faasd: FaasdProcess) -> None:
    faasd.create_function("flaky", "python", FLAKY)

    response = call(faasd, "/async-function/flaky/sub?x=1", data=b"payload")

    assert response.status_code == 202, response.text
    call_id = response.headers["X-Call-Id"]
    assert response.json()["call_id"] == call_id
    inv = finished(faasd, call_id)
    assert inv["status"] == "succeeded", inv
    assert [a["status"] for a in inv["attempts"]] == [500, 500, 200]
    seen = json.loads(inv["response"]["body"])
    assert seen["context"]["call_id"] == call_id
    assert seen["context"]["attempt"] == "3"
    assert seen["context"]["trigger"] == "async"
    assert seen["path"] == "/function/flaky/sub"
    assert seen["body"] == "payload"
    # Capped exponential backoff: the second wait is at least the first's base.
    starts = [datetime.fromisoformat(a["started_at"].replace("Z", "+00:00")).timestamp() for a in inv["attempts"]]
    assert starts[1] - starts[0] >= 0.5
    assert starts[2] - starts[1] >= 1.0


def test_a_call_that_always_fails_ends_in_the_dead_letters_and_is_redriven(faasd: FaasdProcess) -> None:
    faasd.create_function("down", "python", FAILING, retries=2)

    call_id = call(faasd, "/async-function/down").headers["X-Call-Id"]
    inv = finished(faasd, call_id)

    assert inv["status"] == "dead"
    assert [a["status"] for a in inv["attempts"]] == [503, 503, 503]
    assert "3 attempt(s) failed" in inv["reason"]
    dead = faasd.ok("GET", "/v1/dlq?function=down")["items"]
    assert [d["id"] for d in dead] == [call_id]
    cli = faasd.faas("dlq", "list", "--function", "down", "-o", "json")
    assert call_id in cli.stdout, cli.stderr

    faasd.ok("PATCH", "/v1/functions/down", json={"code": "def main():\n    return 'up again'\n"})
    redriven = faasd.ok("POST", "/v1/dlq/redrive", json={"ids": [call_id]})

    assert redriven == {"redriven": 1, "ids": [call_id]}
    inv = finished(faasd, call_id)
    assert inv["status"] == "succeeded"
    assert len(inv["attempts"]) == 4
    assert inv["response"]["body"] == "up again"
    assert faasd.ok("GET", "/v1/dlq?function=down")["items"] == []


def test_a_client_error_is_not_retried(faasd: FaasdProcess) -> None:
    faasd.create_function("refuses", "python", REFUSING)

    inv = finished(faasd, call(faasd, "/async-function/refuses").headers["X-Call-Id"])

    assert inv["status"] == "failed"
    assert [a["status"] for a in inv["attempts"]] == [404]
    assert "not retried" in inv["reason"]


def test_an_idempotency_key_returns_the_first_call(faasd: FaasdProcess) -> None:
    faasd.create_function("once", "python", ECHO)
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}

    first = call(faasd, "/async-function/once", data=b"1", headers=key)
    second = call(faasd, "/async-function/once", data=b"2", headers=key)

    assert first.status_code == second.status_code == 202
    assert second.json() == {**first.json(), "repeated": True}
    finished(faasd, first.headers["X-Call-Id"])
    assert len([c for c in calls_of(faasd, "once") if c["idempotency_key"]]) == 1


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/done", received
    finally:
        server.shutdown()
        server.server_close()


def test_the_result_is_posted_to_the_callback_url(
    faasd: FaasdProcess, callback_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = callback_server
    faasd.create_function("called-back", "python", ECHO)

    call_id = call(faasd, "/async-function/called-back", data=b"hi", headers={"X-Callback-Url": url}).headers[
        "X-Call-Id"
    ]

    wait_for(lambda: received, "the callback", timeout=30)
    got = received[0]
    assert got["headers"]["x-call-id"] == call_id
    assert got["headers"]["x-call-status"] == "succeeded"
    assert got["headers"]["x-attempt"] == "1"
    assert got["headers"]["x-function-status"] == "200"
    assert json.loads(got["body"])["body"] == "hi"


def test_an_async_route_queues_its_calls_with_the_route_path_and_parameters(faasd: FaasdProcess) -> None:
    faasd.create_function("routed", "python", ECHO)
    faasd.ok(
        "POST", "/v1/triggers/http", json={"method": "PUT", "url": "/jobs/{id}", "function": "routed", "async": True}
    )

    response = requests.put(faasd.url + "/jobs/42?full=1", data=b"job", timeout=30)

    assert response.status_code == 202, response.text
    inv = finished(faasd, response.headers["X-Call-Id"])
    seen = json.loads(inv["response"]["body"])
    assert seen["path"] == "/jobs/42"
    assert seen["params"] == {"id": "42"}
    assert seen["method"] == "PUT"
    assert seen["body"] == "job"
    assert inv["path"] == "/jobs/42?full=1"


def test_a_caller_cannot_forge_the_context(faasd: FaasdProcess) -> None:
    faasd.create_function("forged", "python", ECHO)

    response = call(faasd, "/async-function/forged", headers={"X-Faasd-Trigger": "timer", "X-Faasd-Attempt": "9"})
    inv = finished(faasd, response.headers["X-Call-Id"])

    context = json.loads(inv["response"]["body"])["context"]
    assert context["trigger"] == "async"
    assert context["attempt"] == "1"


def test_bad_async_calls_are_refused_with_a_reason(faasd: FaasdProcess) -> None:
    faasd.create_function("small", "python", ECHO)

    missing = call(faasd, "/async-function/nope")
    too_big = call(faasd, "/async-function/small", data=b"x" * (1024 * 1024 + 1))
    bad_callback = call(faasd, "/async-function/small", headers={"X-Callback-Url": "ftp://x"})
    bad_route = faasd.api("POST", "/v1/triggers/http", json={"url": "/a", "function": "small", "async": "yes"})
    bad_retries = faasd.api("PATCH", "/v1/functions/small", json={"retries": -1})

    assert missing.status_code == 404
    assert too_big.status_code == 413
    assert bad_callback.status_code == 400
    assert "X-Callback-Url" in bad_callback.json()["error"]["message"]
    assert bad_route.status_code == 400
    assert "async" in bad_route.json()["error"]["message"]
    assert bad_retries.status_code == 400
    assert "retries" in bad_retries.json()["error"]["message"]


def test_queued_calls_survive_a_kill_9_and_a_call_that_succeeded_is_not_run_again(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    daemon = start_faasd(state_dir=tmp_path / "state", default_poolsize=1)
    # One at a time (share = 1), 50 ms each: 200 calls take ~10 s, so the kill finds most queued.
    daemon.create_function("steady", "python", SLOW % "0.05", concurrency=1, max_instances=1)
    ids = [call(daemon, "/async-function/steady", data=str(i).encode()).headers["X-Call-Id"] for i in range(200)]
    wait_for(lambda: len(calls_of(daemon, "steady", status="succeeded")) >= 10, "some calls to succeed")

    daemon.kill9()
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "faasd.db")) as db:
        done_before = {row[0] for row in db.execute("SELECT id FROM invocations WHERE status = 'succeeded'")}
    restarted = start_faasd(state_dir=tmp_path / "state", default_poolsize=1)
    wait_for(
        lambda: len(calls_of(restarted, "steady", status="succeeded")) == 200,
        "all 200 calls to succeed after the restart",
        timeout=120,
        every=0.5,
    )

    every = {c["id"]: c for c in calls_of(restarted, "steady")}
    assert set(every) == set(ids)
    assert all(c["status"] == "succeeded" for c in every.values())
    assert done_before, "some calls had succeeded before the kill"
    for call_id in done_before:
        assert len(every[call_id]["attempts"]) == 1, every[call_id]


def test_a_full_queue_answers_503_with_retry_after(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=0, max_async_queue=3)
    daemon.create_function("blocked", "python", SLOW % "5", concurrency=1, max_instances=1)

    codes = [call(daemon, "/async-function/blocked").status_code for _ in range(4)]

    assert codes[:3] == [202, 202, 202]
    assert codes[3] == 503
    full = call(daemon, "/async-function/blocked")
    assert full.headers["Retry-After"]
    assert "limit" in full.json()["error"]["message"]


# -- timers -------------------------------------------------------------------------------------


def scheduled_times(daemon: FaasdProcess, function: str) -> list[float]:
    return sorted(
        datetime.fromisoformat(a["context"]["scheduled_time"].replace("Z", "+00:00")).timestamp()
        for a in answers(daemon, function)
    )


def test_an_every_second_timer_fires_once_a_second(faasd: FaasdProcess) -> None:
    faasd.create_function("ticked", "python", SLOW % "0")
    faasd.ok("POST", "/v1/timers", json={"name": "each-second", "function": "ticked", "cron": "@every 1s"})

    wait_for(lambda: len(answers(faasd, "ticked")) >= 4, "four ticks", timeout=30, every=0.5)
    faasd.ok("DELETE", "/v1/timers/each-second")

    ticks = scheduled_times(faasd, "ticked")
    gaps = [round(b - a, 3) for a, b in pairwise(ticks)]
    assert gaps and all(g == 1.0 for g in gaps), gaps
    first = answers(faasd, "ticked")[0]["context"]
    assert first["trigger"] == "timer"
    assert first["timer_name"] == "each-second"
    assert first["trigger_name"] == "each-second"
    count = len(calls_of(faasd, "ticked"))
    # Deleted: no more ticks (a tick already queued may still finish).
    wait_for(lambda: all(c["status"] == "succeeded" for c in calls_of(faasd, "ticked")), "the last tick")
    assert len(calls_of(faasd, "ticked")) <= count + 1


def test_forbid_skips_ticks_while_the_previous_run_is_going(faasd: FaasdProcess) -> None:
    faasd.create_function("slow-tick", "python", SLOW % "2.5", concurrency=1, max_instances=1)
    faasd.ok(
        "POST",
        "/v1/timers",
        json={"name": "no-overlap", "function": "slow-tick", "cron": "@every 1s", "overlap": "forbid"},
    )

    wait_for(lambda: len(answers(faasd, "slow-tick")) >= 3, "three runs", timeout=40, every=0.5)
    faasd.ok("DELETE", "/v1/timers/no-overlap")

    runs = sorted(
        (c for c in calls_of(faasd, "slow-tick") if c["attempts"] and c["attempts"][0]["finished_at"]),
        key=lambda c: c["created_at"],
    )
    for before, after in pairwise(runs):
        assert after["attempts"][0]["started_at"] >= before["attempts"][0]["finished_at"]
    ticks = scheduled_times(faasd, "slow-tick")
    assert all(b - a >= 2.0 for a, b in pairwise(ticks)), ticks
    assert "skipped: the previous call is still unfinished" in faasd.log()


@pytest.mark.parametrize(("catch_up", "expected"), [("once", 1), ("none", 0)])
def test_ticks_missed_while_faasd_was_down_run_once_or_not_at_all(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path, catch_up: str, expected: int
) -> None:
    state = tmp_path / "state"
    daemon = start_faasd(state_dir=state, default_poolsize=1)
    daemon.create_function("nightly", "python", SLOW % "0")
    daemon.ok(
        "POST", "/v1/timers", json={"name": "t", "function": "nightly", "cron": "@every 2s", "catch_up": catch_up}
    )
    wait_for(lambda: answers(daemon, "nightly"), "a first tick", timeout=20)
    assert daemon.stop() == 0
    stopped = datetime.now().timestamp()
    wait_for(
        lambda: datetime.now().timestamp() - stopped > 5, "5 s of downtime (at least two missed ticks)", timeout=10
    )
    # Ticks scheduled before the new faasd's start can only come from its catch-up; its own ticks come
    # after (it may take seconds to be ready on a busy machine, and ticks meanwhile are regular ones).
    restarting = datetime.now().timestamp()
    restarted = start_faasd(state_dir=state, default_poolsize=1)
    back = datetime.now().timestamp()
    wait_for(
        lambda: any(t > back for t in scheduled_times(restarted, "nightly")), "a tick after the restart", timeout=20
    )

    ticks = scheduled_times(restarted, "nightly")
    if catch_up == "none":
        assert "catch-up none: no run" in restarted.log()
        assert [t for t in ticks if stopped < t < restarting] == []
    else:
        # The latest tick missed while faasd was down (which may fall while it was starting again), once.
        found = re.search(r"timer t missed ticks while faasd was down; one run for (\S+)", restarted.log())
        assert found, restarted.log()
        latest = datetime.fromisoformat(found.group(1)).timestamp()
        assert latest > stopped
        assert ticks.count(latest) == expected, ticks
        assert [t for t in ticks if stopped < t < latest] == [], "one run, not one per missed tick"


def labelled_container(engine: docker.DockerClient, labels: dict[str, str]) -> Any:
    return engine.containers.run(
        "faasd/runtime-python:latest",
        entrypoint=["python3", "-c", "import time; time.sleep(60)"],
        labels=labels,
        detach=True,
        network_mode="none",
    )


def events_of(daemon: FaasdProcess, function: str) -> list[tuple[str, str, str]]:
    return [(a["context"]["event_type"], a["context"]["event_action"], a["id"]) for a in answers(daemon, function)]


def test_a_watch_gets_added_and_removed_for_a_labelled_container_only(
    faasd: FaasdProcess, engine: docker.DockerClient
) -> None:
    mark = uuid.uuid4().hex[:12]
    faasd.create_function("watcher", "python", WATCHED)
    faasd.ok("POST", "/v1/watches", json={"name": "labelled", "function": "watcher", "labels": {"faasd-test": mark}})
    wait_for(lambda: faasd.status()["events"]["watches"][0]["connected"], "the watch to follow the engine")

    other = labelled_container(engine, {"faasd-test": "someone-else"})
    watched = labelled_container(engine, {"faasd-test": mark, "app": "web"})
    try:
        wait_for(lambda: len(events_of(faasd, "watcher")) >= 2, "create and start", timeout=30, every=0.3)
    finally:
        watched.remove(force=True)
        other.remove(force=True)
    wait_for(lambda: len(events_of(faasd, "watcher")) >= 4, "die and destroy", timeout=30, every=0.3)

    seen = events_of(faasd, "watcher")
    assert {(t, a) for t, a, _ in seen} == {
        ("added", "create"),
        ("added", "start"),
        ("removed", "die"),
        ("removed", "destroy"),
    }
    assert {i for _, _, i in seen} == {watched.id}
    last = answers(faasd, "watcher")[-1]
    assert {k: last["labels"][k] for k in ("faasd-test", "app")} == {"faasd-test": mark, "app": "web"}
    assert last["context"]["object_type"] == "container"
    assert last["context"]["object_id"] == watched.id
    assert last["context"]["watch_name"] == "labelled"
    assert last["context"]["event_time"].endswith("Z")
    faasd.ok("DELETE", "/v1/watches/labelled")


def test_a_watch_loses_no_event_while_the_engine_is_out_of_reach(
    start_faasd: Callable[..., FaasdProcess], engine: docker.DockerClient, tmp_path: Path
) -> None:
    relay = EngineRelay(tmp_path / "docker.sock")
    relay.start()
    try:
        daemon = start_faasd(environ={"DOCKER_HOST": relay.docker_host}, default_poolsize=1)
        mark = uuid.uuid4().hex[:12]
        daemon.create_function("outage", "python", WATCHED)
        daemon.ok("POST", "/v1/watches", json={"name": "w", "function": "outage", "labels": {"faasd-test": mark}})
        wait_for(lambda: daemon.status()["events"]["watches"][0]["connected"], "the watch to follow the engine")

        relay.stop()
        wait_for(lambda: not daemon.status()["events"]["watches"][0]["connected"], "the watch to lose the engine")
        container = labelled_container(engine, {"faasd-test": mark})
        container.remove(force=True)
        relay.start()

        wait_for(lambda: len(events_of(daemon, "outage")) >= 4, "the four events", timeout=60, every=0.5)
        actions = sorted(a for _t, a, _i in events_of(daemon, "outage"))
        assert actions == ["create", "destroy", "die", "start"]
        assert daemon.faas("watch", "list").returncode == 0
    finally:
        relay.close()


def test_a_function_with_triggers_is_deleted_only_when_forced(faasd: FaasdProcess) -> None:
    faasd.create_function("busy", "python", ECHO)
    faasd.ok("POST", "/v1/timers", json={"name": "busy-timer", "function": "busy", "cron": "0 3 * * *"})
    faasd.ok("POST", "/v1/watches", json={"name": "busy-watch", "function": "busy", "type": "network"})

    refused = faasd.api("DELETE", "/v1/functions/busy")

    assert refused.status_code == 409
    assert "timer 'busy-timer'" in refused.json()["error"]["message"]
    assert "watch 'busy-watch'" in refused.json()["error"]["message"]
    faasd.ok("DELETE", "/v1/functions/busy?force=true")
    assert faasd.api("GET", "/v1/timers/busy-timer").status_code == 404
    assert faasd.api("GET", "/v1/watches/busy-watch").status_code == 404


def test_bad_triggers_are_refused_naming_the_field(faasd: FaasdProcess) -> None:
    faasd.create_function("target", "python", ECHO)
    cases = [
        ({"name": "a", "function": "target", "cron": "61 * * * *"}, "cron"),
        ({"name": "a", "function": "target", "cron": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"name": "a", "function": "missing", "cron": "* * * * *"}, "function"),
        ({"name": "a", "function": "target", "cron": "* * * * *", "overlap": "sometimes"}, "overlap"),
    ]
    for body, field in cases:
        response = faasd.api("POST", "/v1/timers", json=body)
        assert response.status_code == 400, body
        assert field in response.json()["error"]["message"], response.text
    bad_watch = faasd.api("POST", "/v1/watches", json={"name": "b", "function": "target", "labels": {"bad key": "x"}})
    assert bad_watch.status_code == 400
    assert "label" in bad_watch.json()["error"]["message"]
    schedule = faasd.ok("GET", "/v1/cron/schedule?cron=*/5+*+*+*+*+*&round=3")
    stamps = [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in schedule["next"]]
    assert [round(b - a) for a, b in pairwise(stamps)] == [5, 5]


ENVS = """
import json
def main(context):
    obj = json.loads(context.request.body)
    return json.dumps({"env": (obj.get("Config") or {}).get("Env") or [], "labels": obj["Config"]["Labels"]})
"""


def test_a_watch_on_faasds_own_containers_never_sees_their_tokens(faasd: FaasdProcess) -> None:
    faasd.create_function("own-watcher", "python", ENVS)
    faasd.ok(
        "POST",
        "/v1/watches",
        json={
            "name": "own",
            "function": "own-watcher",
            "labels": {"faasd.owner": faasd.owner},
            "events": ["added"],
            "include_faasd": True,
        },
    )
    wait_for(lambda: faasd.status()["events"]["watches"][0]["connected"], "the watch to follow the engine")
    # A pool refill starts a container of faasd's own.
    faasd.ok("PATCH", "/v1/environments/nodejs", json={"poolsize": 3})
    try:
        wait_for(lambda: answers(faasd, "own-watcher"), "an event of faasd's own container", timeout=30, every=0.3)
    finally:
        faasd.ok("PATCH", "/v1/environments/nodejs", json={"poolsize": 2})
        faasd.ok("DELETE", "/v1/watches/own")

    seen = answers(faasd, "own-watcher")
    assert all(a["labels"]["faasd.owner"] == faasd.owner for a in seen)
    assert all(a["env"] for a in seen), "the object's environment is delivered"
    assert not [e for a in seen for e in a["env"] if "SPECIALIZE_TOKEN" in e]


TOP_SEEN = """
import json, threading, time
LOCK = threading.Lock()
NOW = [0]
TOP = [0]
def main(context):
    with LOCK:
        NOW[0] += 1
        TOP[0] = max(TOP[0], NOW[0])
    time.sleep(0.3)
    with LOCK:
        NOW[0] -= 1
    return json.dumps({"top": TOP[0]})
"""


def test_async_calls_take_at_most_half_of_a_functions_capacity(faasd: FaasdProcess) -> None:
    # concurrency 2 x max_instances 1: asynchronous calls may hold one slot; synchronous callers keep the other.
    faasd.create_function("halved", "python", FAILING, concurrency=2, max_instances=1, retries=0)
    ids = [call(faasd, "/async-function/halved").headers["X-Call-Id"] for _ in range(8)]
    assert all(finished(faasd, call_id)["status"] == "dead" for call_id in ids)
    faasd.ok("PATCH", "/v1/functions/halved", json={"code": TOP_SEEN})

    # One redrive makes all eight due at the same moment.
    assert faasd.ok("POST", "/v1/dlq/redrive", json={"ids": ids})["redriven"] == 8
    tops = [json.loads(finished(faasd, call_id)["response"]["body"])["top"] for call_id in ids]

    assert max(tops) == 1, tops
    sync = requests.get(faasd.url + "/function/halved", timeout=30)
    assert sync.status_code == 200
