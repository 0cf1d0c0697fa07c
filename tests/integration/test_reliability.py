"""Engine outages and shutdown, on the real engine."""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.engine_relay import EngineRelay
from tests.integration.harness import FaasdProcess, wait_for

HELLO_PY = 'def main():\n    return "Hello"\n'
SLOW_JS = """module.exports = async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return "finished";
};
"""


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[EngineRelay]:
    engine_relay = EngineRelay(tmp_path / "docker.sock")
    engine_relay.start()
    yield engine_relay
    engine_relay.close()


def test_engine_outage_reads_work_calls_get_503_and_faasd_recovers(
    start_faasd: Callable[..., FaasdProcess], relay: EngineRelay
) -> None:
    daemon = start_faasd(environ={"DOCKER_HOST": relay.docker_host}, default_poolsize=0, idle_timeout=60)
    daemon.create_function("before", "python", HELLO_PY)
    assert requests.get(daemon.url + "/function/before", timeout=30).text == "Hello"

    relay.stop()
    # The registry still answers, and a warm instance still serves.
    assert daemon.ok("GET", "/v1/functions/before")["name"] == "before"
    assert requests.get(daemon.url + "/function/before", timeout=30).text == "Hello"
    daemon.create_function("during", "python", HELLO_PY)
    refused = requests.get(daemon.url + "/function/during", timeout=30)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "engine_unavailable"
    assert "Docker engine unreachable" in refused.json()["error"]["message"]

    relay.start()
    # No restart: the next call that needs a container gets one.
    recovered = wait_for(
        lambda: (r := requests.get(daemon.url + "/function/during", timeout=30)).status_code == 200 and r,
        "a call to succeed once the engine is back",
    )
    assert recovered.text == "Hello"


def test_graceful_shutdown_finishes_calls_in_flight(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=1)
    daemon.create_function("slow", "nodejs", SLOW_JS)
    assert requests.get(daemon.url + "/function/slow", timeout=30).text == "finished"  # warm
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        in_flight = worker.submit(requests.get, daemon.url + "/function/slow", timeout=30)
        wait_for(lambda: daemon.status()["functions"][0]["inflight"] == 1, "the call to be in flight")
        assert daemon.stop(signal.SIGTERM) == 0
        answer = in_flight.result()
    assert (answer.status_code, answer.text) == (200, "finished")
    assert daemon.containers() == []
    with pytest.raises(requests.ConnectionError):
        requests.get(daemon.url + "/healthz", timeout=5)
