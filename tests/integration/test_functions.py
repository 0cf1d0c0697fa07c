"""What a function sees and what happens when it misbehaves, on the real engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from faasd.core.specialize import MAX_SPECIALIZE_BYTES, encode_specialization
from tests.integration.harness import FaasdProcess, wait_for

PRINTER_JS = """module.exports = async (context) => {
    console.log("hello from " + context.request.query.who);
    console.error("a warning");
    return "printed";
};
"""
ENV_JS = """module.exports = async () => ({
    status: 200, body: {greeting: process.env.GREETING, token: process.env.API_TOKEN},
});
"""
ENV_PY = """import os


def main():
    return {"greeting": os.environ.get("GREETING"), "token": os.environ.get("API_TOKEN")}
"""
HOG_JS = """module.exports = async () => {
    const hog = [];
    for (;;) { hog.push(Buffer.alloc(8 * 1024 * 1024, 1)); }
};
"""
CRASH_PY = """import os


def main():
    os._exit(3)
"""
CRASH_JS = "module.exports = async () => { process.exit(3); };\n"
SLEEP_PY = """import time


def main():
    time.sleep(30)
    return "late"
"""


def test_logs_are_kept_per_function_with_time_and_instance(faasd: FaasdProcess) -> None:
    faasd.create_function("printer", "nodejs", PRINTER_JS)
    called = requests.get(faasd.url + "/function/printer?who=tests", timeout=30)
    assert called.text == "printed"
    request_id = called.headers["X-Request-Id"]

    def printed() -> list[str]:
        text = faasd.api("GET", "/v1/functions/printer/logs").text
        return [line for line in text.splitlines() if "hello from tests" in line or "a warning" in line]

    lines = wait_for(lambda: len(printed()) == 2 and printed(), "both lines in the log")
    # stdout and stderr are two streams: their relative order is not kept.
    records = sorted(line.split(" ", 3) for line in lines)
    for stamp, instance, _stream, _text in records:
        assert stamp.endswith("Z") and "T" in stamp
        assert len(instance) == 12
    # Every line a call writes starts with its request id (runtimes/README.md).
    assert sorted((r[2], r[3]) for r in records) == [
        ("stderr", f"[{request_id}] a warning"),
        ("stdout", f"[{request_id}] hello from tests"),
    ]
    tail = faasd.api("GET", "/v1/functions/printer/logs?tail=1").text.splitlines()
    assert len(tail) == 1
    assert faasd.api("GET", "/v1/functions/ghost/logs").status_code == 404


def test_logs_can_be_followed(faasd: FaasdProcess) -> None:
    faasd.create_function("follow", "nodejs", PRINTER_JS)
    received: list[str] = []
    stream = faasd.api("GET", "/v1/functions/follow/logs?follow=true", stream=True)
    assert stream.status_code == 200

    def reader(lines: Iterator[str]) -> None:
        for line in lines:
            received.append(line)
            if "hello from follower" in line:
                return

    thread = threading.Thread(target=reader, args=(stream.iter_lines(decode_unicode=True),), daemon=True)
    thread.start()
    assert requests.get(faasd.url + "/function/follow?who=follower", timeout=30).status_code == 200
    wait_for(lambda: any("hello from follower" in line for line in received), "the followed line")
    stream.close()


def test_logs_survive_the_instance(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(idle_timeout=1, default_poolsize=1)
    daemon.create_function("shortlived", "nodejs", PRINTER_JS)
    assert requests.get(daemon.url + "/function/shortlived?who=past", timeout=30).status_code == 200
    wait_for(lambda: "hello from past" in daemon.api("GET", "/v1/functions/shortlived/logs").text, "the line")
    wait_for(lambda: daemon.instances("shortlived") == 0, "the instance to be reaped", timeout=20)
    assert "hello from past" in daemon.api("GET", "/v1/functions/shortlived/logs").text


@pytest.mark.parametrize(("env", "code"), [("nodejs", ENV_JS), ("python", ENV_PY)])
def test_env_and_secrets_reach_the_function_but_not_the_api(faasd: FaasdProcess, env: str, code: str) -> None:
    name = f"env-{env}"
    created = faasd.create_function(name, env, code, env={"GREETING": "hi"}, secrets={"API_TOKEN": "s3cr3t-value"})
    assert created["env"] == {"GREETING": "hi"}
    assert created["secrets"] == ["API_TOKEN"]
    assert requests.get(faasd.url + f"/function/{name}", timeout=30).json() == {
        "greeting": "hi",
        "token": "s3cr3t-value",
    }
    for path in (f"/v1/functions/{name}", "/v1/functions", "/v1/status"):
        assert "s3cr3t-value" not in faasd.api("GET", path).text, path


def test_out_of_memory_is_a_502_that_says_so(faasd: FaasdProcess) -> None:
    faasd.create_function("hog", "nodejs", HOG_JS, memory_mb=64)
    response = requests.get(faasd.url + "/function/hog", timeout=60)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert "out of memory (limit 64 MB)" in response.json()["error"]["message"]
    wait_for(
        lambda: "instance stopped: out of memory" in faasd.api("GET", "/v1/functions/hog/logs").text,
        "the out-of-memory record in the log",
    )


@pytest.mark.parametrize(("env", "code"), [("python", CRASH_PY), ("nodejs", CRASH_JS)])
def test_a_crash_is_a_502_and_the_next_call_gets_a_fresh_instance(faasd: FaasdProcess, env: str, code: str) -> None:
    name = f"crash-{env}"
    faasd.create_function(name, env, code)
    response = requests.get(faasd.url + f"/function/{name}", timeout=30)
    assert response.status_code == 502
    assert "exited with code 3" in response.json()["error"]["message"]
    assert faasd.instances(name) == 0
    again = requests.get(faasd.url + f"/function/{name}", timeout=30)
    assert again.status_code == 502  # a fresh instance, which crashes in its turn


def test_a_python_call_past_its_timeout_is_504(faasd: FaasdProcess) -> None:
    faasd.create_function("sleeper", "python", SLEEP_PY, timeout=1)
    response = requests.get(faasd.url + "/function/sleeper", timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    wait_for(lambda: faasd.instances("sleeper") == 0, "the stuck instance to be dropped")


# -- the size limit: what faasd accepts, the runtimes accept -------------------------

BIG_HANDLERS = {
    "python": ("big.py", "#", "def main():\n    return 'big and fine'\n"),
    "nodejs": ("big.js", "//", "module.exports = async () => 'big and fine';\n"),
}


def big_source(env: str, total: int) -> str:
    """Source of ``env`` whose specialization request is exactly ``total`` bytes: a long comment, a tiny handler."""
    filename, comment, handler = BIG_HANDLERS[env]

    def sent(code: str) -> int:
        return len(encode_specialization(filename, code.encode(), "", {}))

    code = comment + "x" * (total - sent(comment + "\n" + handler)) + "\n" + handler
    assert sent(code) == total
    return code


@pytest.mark.parametrize("env", ["python", "nodejs"])
def test_a_function_at_the_size_limit_is_created_and_answers_its_first_call(faasd: FaasdProcess, env: str) -> None:
    name = f"big-{env}"
    filename = BIG_HANDLERS[env][0]
    # The request faasd will send the runtime is exactly the runtimes' limit:
    # if faasd accepts it, the runtime must too.
    code = big_source(env, MAX_SPECIALIZE_BYTES)
    assert len(code.encode()) > 8_000_000
    created = faasd.create_function(name, env, code, filename=filename)
    assert created["code_size"] == len(code.encode())
    response = requests.get(faasd.url + f"/function/{name}", timeout=60)
    assert (response.status_code, response.text) == (200, "big and fine"), response.text

    # One byte more is refused when the function is written, not when it is first called.
    too_big = big_source(env, MAX_SPECIALIZE_BYTES + 1)
    body = {"name": f"{name}-over", "environment": env, "code": too_big, "filename": filename}
    over = faasd.api("POST", "/v1/functions", json=body)
    assert over.status_code == 413
    assert over.json()["error"]["message"] == (
        "the function's code, variables and secrets come to 8,388,609 bytes as sent to the runtime; "
        "the limit is 8,388,608"
    )
    # So is a secret that would push the running function over.
    added = faasd.api("PATCH", f"/v1/functions/{name}", json={"secrets": {"API_KEY": "k"}})
    assert added.status_code == 413
    assert "as sent to the runtime; the limit is 8,388,608" in added.json()["error"]["message"]
    assert requests.get(faasd.url + f"/function/{name}", timeout=60).text == "big and fine"
