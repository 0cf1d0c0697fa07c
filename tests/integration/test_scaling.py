"""Scale-out, concurrency limits, bursts and reaping under load, on the real engine."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

import requests

from tests.integration.harness import FaasdProcess, wait_for

HELLO_JS = 'module.exports = async () => "hello";\n'
# Answers after ?ms milliseconds with when it started and ended (epoch ms).
SLOW_JS = """module.exports = async (context) => {
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, Number(context.request.query.ms || 0)));
    return {status: 200, body: {started, ended: Date.now()}};
};
"""
VERSION_JS = 'module.exports = async () => "v%d";\n'


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


class InstanceWatcher:
    """Samples /v1/status in the background and keeps each function's highest instance count."""

    def __init__(self, daemon: FaasdProcess) -> None:
        self.daemon = daemon
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for fn in self.daemon.status()["functions"]:
                self.peak[fn["name"]] = max(self.peak.get(fn["name"], 0), fn["instances"] + fn["starting"])
            self._stop.wait(0.05)

    def __enter__(self) -> InstanceWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_burst_of_first_calls_all_succeed(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=3, idle_timeout=2)
    names = [f"burst-{i}" for i in range(20)]
    for name in names:
        daemon.create_function(name, "nodejs", HELLO_JS, concurrency=5, max_instances=2)

    def call(name: str) -> int:
        return requests.get(f"{daemon.url}/function/{name}", timeout=120).status_code

    with InstanceWatcher(daemon) as watcher, concurrent.futures.ThreadPoolExecutor(200) as workers:
        statuses = list(workers.map(call, [n for n in names for _ in range(10)]))
    assert statuses == [200] * 200
    assert set(watcher.peak) >= set(names)
    assert max(watcher.peak[n] for n in names) <= 2
    # After the idle timeout only the pools remain: 3 generic containers per environment.
    wait_for(lambda: all(daemon.instances(n) == 0 for n in names), "every burst instance to be reaped", timeout=60)
    wait_for(lambda: len(daemon.containers()) == 6, "only the two pools of 3 to remain", timeout=60)


def test_concurrency_limit_holds_and_the_surplus_waits(faasd: FaasdProcess) -> None:
    faasd.create_function("one-at-a-time", "nodejs", SLOW_JS, concurrency=1, max_instances=2, queue_timeout=30)

    def call(_: int) -> requests.Response:
        return requests.get(f"{faasd.url}/function/one-at-a-time?ms=700", timeout=60)

    with concurrent.futures.ThreadPoolExecutor(5) as workers:
        answers = list(workers.map(call, range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    intervals = [(a.json()["started"], a.json()["ended"]) for a in answers]
    assert max_overlap(intervals) <= 2
    assert faasd.instances("one-at-a-time") <= 2


def test_at_max_instances_the_surplus_gets_429_with_retry_after(faasd: FaasdProcess) -> None:
    faasd.create_function("no-queue", "nodejs", SLOW_JS, concurrency=1, max_instances=2, queue_timeout=0)
    # Make both instances first, so that the surplus meets a full function.
    with concurrent.futures.ThreadPoolExecutor(2) as workers:
        warm = list(workers.map(lambda _: requests.get(f"{faasd.url}/function/no-queue?ms=300", timeout=60), range(2)))
    assert [w.status_code for w in warm] == [200, 200]
    wait_for(lambda: faasd.instances("no-queue") == 2, "two instances")

    def call(_: int) -> requests.Response:
        return requests.get(f"{faasd.url}/function/no-queue?ms=1500", timeout=60)

    with concurrent.futures.ThreadPoolExecutor(5) as workers:
        answers = list(workers.map(call, range(5)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 429, 429, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert "max_instances (2)" in refused.json()["error"]["message"]


def test_reaping_under_load_never_fails_a_call(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=2, idle_timeout=1)
    daemon.create_function("churn", "nodejs", SLOW_JS, concurrency=1, max_instances=4, queue_timeout=30)
    failures: list[int] = []
    deadline = time.monotonic() + 60

    def wave(width: int) -> None:
        with concurrent.futures.ThreadPoolExecutor(width) as workers:
            for answer in workers.map(
                lambda _: requests.get(f"{daemon.url}/function/churn?ms=200", timeout=60), range(width)
            ):
                if answer.status_code != 200:
                    failures.append(answer.status_code)

    # Widen and narrow the load so that instances go idle (and are reaped) while others work.
    for width in (4, 1, 1, 3, 1, 4, 1, 1, 1, 2):
        assert time.monotonic() < deadline
        wave(width)
        if width == 1:
            wait_for(lambda: daemon.instances("churn") <= 2, "some instances to be reaped", timeout=20)
    assert failures == []


def test_update_under_steady_load_fails_no_call(faasd: FaasdProcess) -> None:
    faasd.create_function("rolling", "nodejs", VERSION_JS % 1)
    seen: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def load() -> None:
        session = requests.Session()
        for _ in range(2000):  # bounded, and stopped by the test well before
            if stop.is_set():
                return
            answer = session.get(f"{faasd.url}/function/rolling", timeout=30)
            (seen if answer.status_code == 200 else errors).append(answer.text)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: "v1" in seen, "calls to v1")
    faasd.ok("PATCH", "/v1/functions/rolling", json={"code": VERSION_JS % 2})
    wait_for(lambda: seen[-20:].count("v2") == 20, "calls to settle on v2")
    faasd.ok("PATCH", "/v1/functions/rolling", json={"code": VERSION_JS % 3})
    wait_for(lambda: seen[-20:].count("v3") == 20, "calls to settle on v3")
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    # After each update, no call went back to an older version.
    last = [int(v[1:]) for v in seen]
    assert last.index(3) > last.index(2) > last.index(1) == 0
    wait_for(lambda: faasd.instances("rolling") == 1, "the old instances to be removed")


def test_pool_size_changes_at_runtime(faasd: FaasdProcess) -> None:
    faasd.ok(
        "POST", "/v1/environments", json={"name": "resized", "image": "faasd/runtime-python:latest", "poolsize": 1}
    )
    wait_for(lambda: len(faasd.containers(environment="resized")) == 1, "one pooled container")
    faasd.ok("PATCH", "/v1/environments/resized", json={"poolsize": 3})
    wait_for(lambda: len(faasd.containers(environment="resized")) == 3, "three pooled containers")
    faasd.ok("PATCH", "/v1/environments/resized", json={"poolsize": 0})
    wait_for(lambda: faasd.containers(environment="resized") == [], "no pooled container")
    assert faasd.api("DELETE", "/v1/environments/resized").status_code == 204


def test_deleting_a_routed_function_needs_force(faasd: FaasdProcess) -> None:
    faasd.create_function("routed", "nodejs", HELLO_JS)
    faasd.create_route("GET", "/routed", "routed")
    assert requests.get(faasd.url + "/routed", timeout=30).text == "hello"
    refused = faasd.api("DELETE", "/v1/functions/routed")
    assert refused.status_code == 409
    assert "GET /routed" in refused.json()["error"]["message"]
    went = faasd.api("DELETE", "/v1/functions/routed?force=true")
    assert went.status_code == 200 and len(went.json()["deleted"]) == 1  # the route went with it, and is named
    assert went.json()["deleted"][0].startswith("route '")
    assert requests.get(faasd.url + "/routed", timeout=30).status_code == 404
    wait_for(lambda: faasd.instances("routed") == 0, "its instance to go")
