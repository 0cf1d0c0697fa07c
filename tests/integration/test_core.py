"""faasd end to end on the real engine: Fission's quick start and the pool's life."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import requests

from tests.integration.harness import FaasdProcess, wait_for

HELLO_JS = """module.exports = function(context, callback) {
    callback(200, "Hello, world!\\n");
}
"""
HELLO_PY = 'def main():\n    return "Hello"\n'
ECHO_JS = """module.exports = async (context) => {
    const r = context.request;
    return {
        status: 201,
        headers: {"x-echo-method": r.method, "x-echo-query": JSON.stringify(r.query),
                  "x-echo-header": r.headers["x-custom"] || "", "content-type": "application/octet-stream"},
        body: r.rawBody,
    };
};
"""
PARAMS_JS = """module.exports = async (context) => ({
    status: 200, body: "user " + context.request.params.id + " post " + context.request.params.post,
});
"""
SLEEPY_JS = "module.exports = function(context, callback) { /* never answers */ };\n"


def pooled_ids(daemon: FaasdProcess, env: str) -> set[str]:
    """Containers started for the pool (a specialized one keeps its label; see docker_backend)."""
    return {c.id for c in daemon.containers(environment=env, function="")}


def named_for(daemon: FaasdProcess, function: str) -> list[str]:
    """Ids of the containers specialized for ``function`` (renamed faasd-<owner>-<function>-<n>)."""
    prefix = f"faasd-{daemon.owner}-{function}-"
    return [c.id for c in daemon.containers() if c.name.startswith(prefix) and c.name[len(prefix) :].isdigit()]


def instances_in(daemon: FaasdProcess, env: str) -> int:
    return sum(f["instances"] for f in daemon.status()["functions"] if f["environment"] == env)


def test_fission_quick_start_through_the_cli(faasd: FaasdProcess) -> None:
    (faasd.state_dir / "hello.js").write_text(HELLO_JS)
    before = pooled_ids(faasd, "nodejs")
    assert len(before) == 2

    created = faasd.faas("function", "create", "--name", "hello", "--env", "nodejs", "--code", "hello.js")
    assert created.returncode == 0, created.stderr
    routed = faasd.faas("route", "create", "--method", "GET", "--url", "/hello", "--function", "hello")
    assert routed.returncode == 0, routed.stderr

    response = requests.get(faasd.url + "/hello", timeout=30)
    assert response.status_code == 200
    assert response.text == "Hello, world!\n"
    # The call was served by a container that was already in the pool.
    [instance] = wait_for(lambda: named_for(faasd, "hello"), "the hello container to be renamed")
    assert instance in before
    assert faasd.instances("hello") == 1


def test_python_hello(faasd: FaasdProcess) -> None:
    faasd.create_function("hellopy", "python", HELLO_PY)
    faasd.create_route("GET", "/hellopy", "hellopy")
    response = requests.get(faasd.url + "/hellopy", timeout=30)
    assert (response.status_code, response.text) == (200, "Hello")
    # And by name, without a route.
    assert requests.get(faasd.url + "/function/hellopy", timeout=30).text == "Hello"


def test_pool_refills_to_its_size_after_a_first_call(faasd: FaasdProcess) -> None:
    faasd.create_function("refill", "python", HELLO_PY)
    assert requests.get(faasd.url + "/function/refill", timeout=30).status_code == 200
    wait_for(lambda: faasd.env_status("python")["pool_ready"] == 2, "the python pool to refill")
    wait_for(
        lambda: len(faasd.containers(environment="python")) == 2 + instances_in(faasd, "python"),
        "python containers = pool + instances",
    )


def test_env_create_with_an_image(faasd: FaasdProcess) -> None:
    result = faasd.faas("env", "create", "--name", "node2", "--image", "faasd/runtime-nodejs:latest", "--poolsize", "1")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: faasd.env_status("node2")["pool_ready"] == 1, "the node2 pool")
    faasd.create_function("on-node2", "node2", HELLO_JS)
    assert requests.get(faasd.url + "/function/on-node2", timeout=30).text == "Hello, world!\n"


def test_path_parameters_reach_the_function(faasd: FaasdProcess) -> None:
    faasd.create_function("params", "nodejs", PARAMS_JS)
    faasd.create_route("GET", "/users/{id}/posts/{post}", "params")
    response = requests.get(faasd.url + "/users/42/posts/7", timeout=30)
    assert (response.status_code, response.text) == (200, "user 42 post 7")


def test_method_query_headers_and_binary_body_pass_through(faasd: FaasdProcess) -> None:
    faasd.create_function("echo", "nodejs", ECHO_JS)
    faasd.create_route("PUT", "/echo", "echo")
    body = bytes(range(256)) * 64
    response = requests.put(faasd.url + "/echo?a=1&a=2&b=x", data=body, headers={"X-Custom": "yes"}, timeout=30)
    assert response.status_code == 201
    assert response.content == body
    assert response.headers["x-echo-method"] == "PUT"
    assert response.headers["x-echo-header"] == "yes"
    assert response.headers["x-echo-query"] == '{"a":["1","2"],"b":"x"}'


def test_unknown_route_is_404_in_json(faasd: FaasdProcess) -> None:
    response = requests.get(faasd.url + "/no/such/route", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no route for GET /no/such/route"}}
    missing = requests.get(faasd.url + "/function/ghost", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "function 'ghost' not found"


def test_duplicate_route_is_409(faasd: FaasdProcess) -> None:
    faasd.create_function("dup", "python", HELLO_PY)
    faasd.create_route("GET", "/dup", "dup")
    response = faasd.api("POST", "/v1/triggers/http", json={"method": "GET", "url": "/dup", "function": "dup"})
    assert response.status_code == 409
    assert "route GET /dup exists already" in response.json()["error"]["message"]


def test_unknown_environment_is_400(faasd: FaasdProcess) -> None:
    response = faasd.api("POST", "/v1/functions", json={"name": "orphan", "environment": "cobol", "code": HELLO_PY})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bad_request",
        "message": "environment 'cobol' does not exist (see GET /v1/environments)",
    }


def test_routes_cannot_claim_faasd_paths(faasd: FaasdProcess) -> None:
    faasd.create_function("claimer", "python", HELLO_PY)
    for url in ("/v1/functions", "/healthz", "/metrics"):
        response = faasd.api("POST", "/v1/triggers/http", json={"method": "GET", "url": url, "function": "claimer"})
        assert response.status_code == 400, url
        assert "reserved" in response.json()["error"]["message"]


def test_concurrent_first_calls_share_one_specialization(faasd: FaasdProcess) -> None:
    faasd.create_function("burst", "nodejs", HELLO_JS)
    with concurrent.futures.ThreadPoolExecutor(10) as workers:
        answers = list(workers.map(lambda _: requests.get(faasd.url + "/function/burst", timeout=60), range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert faasd.instances("burst") == 1
    assert faasd.log().count("specialized burst") == 1


def test_timeout_is_504_and_the_instance_is_destroyed(faasd: FaasdProcess) -> None:
    faasd.create_function("sleepy", "nodejs", SLEEPY_JS, timeout=1)
    response = requests.get(faasd.url + "/function/sleepy", timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert "timeout of 1 s" in response.json()["error"]["message"]
    wait_for(lambda: faasd.instances("sleepy") == 0, "the stuck instance to be dropped")
    wait_for(
        lambda: not named_for(faasd, "sleepy"),
        "the stuck container to be removed",
    )


def test_idle_instances_are_reaped(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(idle_timeout=1, default_poolsize=1)
    daemon.create_function("idle", "python", HELLO_PY)
    assert requests.get(daemon.url + "/function/idle", timeout=30).status_code == 200
    assert daemon.instances("idle") == 1
    wait_for(lambda: daemon.instances("idle") == 0, "the idle instance to be reaped", timeout=20)
    # Only the pools remain: one generic container per environment.
    wait_for(lambda: len(daemon.containers()) == 2, "only the pool containers to remain", timeout=20)
    # The function still answers, from a fresh instance.
    assert requests.get(daemon.url + "/function/idle", timeout=30).text == "Hello"


def test_shutdown_leaves_no_container(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=1)
    daemon.create_function("bye", "nodejs", HELLO_JS)
    assert requests.get(daemon.url + "/function/bye", timeout=30).status_code == 200
    wait_for(lambda: len(daemon.containers()) == 3, "the pool to refill (2 pools + 1 instance)")
    assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.containers() == []


def test_kill9_under_load_then_restart_keeps_everything_and_removes_orphans(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    state = tmp_path / "kept"
    first = start_faasd(state_dir=state, default_poolsize=1)
    first.ok("POST", "/v1/environments", json={"name": "custom", "image": "faasd/runtime-python:latest", "poolsize": 0})
    first.create_function("survivor", "nodejs", HELLO_JS, env={"A": "1"}, secrets={"KEY": "s3cret"}, timeout=7)
    first.create_route("GET", "/survivor", "survivor")
    first.create_function("other", "custom", HELLO_PY)
    first.create_route("GET", "/users/{id}", "other")
    assert requests.get(first.url + "/survivor", timeout=30).status_code == 200
    before = {path: first.ok("GET", path) for path in ("/v1/environments", "/v1/functions", "/v1/triggers/http")}

    # Load while the process is killed: calls fail, nothing else may be lost.
    stop = threading.Event()
    answered: list[int] = []

    def load() -> None:
        for _ in range(5000):  # bounded; ends when the daemon is gone
            if stop.is_set():
                return
            with contextlib.suppress(requests.RequestException):
                answered.append(requests.get(first.url + "/survivor", timeout=5).status_code)

    with concurrent.futures.ThreadPoolExecutor(4) as workers:
        for _ in range(4):
            workers.submit(load)
        wait_for(lambda: len(answered) >= 50, "the load to run")
        first.kill9()
        stop.set()
    orphans = {c.id for c in first.containers()}
    assert len(orphans) >= 2  # a kill -9 leaves them behind

    second = start_faasd(state_dir=state, default_poolsize=1, wait_pools=False)
    wait_for(lambda: not orphans & {c.id for c in second.containers()}, "the orphans to be removed", timeout=10)
    after = {path: second.ok("GET", path) for path in before}
    assert after == before
    assert requests.get(second.url + "/survivor", timeout=30).text == "Hello, world!\n"
    assert requests.get(second.url + "/users/7", timeout=30).text == "Hello"
    assert not list((state / "code").glob(".tmp-*"))  # no half-written code blob
