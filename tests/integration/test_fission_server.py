"""What faasd serves as Fission does: the internal URL /fission-function/<name>, and executor types."""

from __future__ import annotations

import requests

from tests.integration.harness import FaasdProcess, wait_for

HELLO = "def main():\n    return 'hello from faasd\\n'\n"


def test_the_fission_internal_url_reaches_any_function(faasd: FaasdProcess) -> None:
    faasd.create_function("fis", "python", HELLO)
    for path in ("/fission-function/fis", "/fission-function/fis/sub/path?x=1", "/function/fis"):
        answer = requests.get(faasd.url + path, timeout=30)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.text == "hello from faasd\n"
    missing = requests.get(faasd.url + "/fission-function/nope", timeout=30)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    reserved = faasd.api("POST", "/v1/triggers/http", json={"url": "/fission-function/x", "function": "fis"})
    assert reserved.status_code == 400 and "reserved" in reserved.json()["error"]["message"]
    faasd.api("DELETE", "/v1/functions/fis")


def test_a_newdeploy_function_runs_in_a_container_started_for_it(faasd: FaasdProcess) -> None:
    made = faasd.ok("POST", "/v1/functions", json={"name": "nd", "environment": "python", "code": HELLO,
                                                   "executor": "newdeploy"})  # fmt: skip
    assert made["executor"] == "newdeploy"
    assert faasd.ok("GET", "/v1/functions/nd")["executor"] == "newdeploy"
    assert requests.get(faasd.url + "/function/nd", timeout=60).status_code == 200
    text = faasd.api("GET", "/metrics").text
    assert 'faasd_function_cold_starts_total{function="nd",kind="no-pool"} 1.0' in text
    assert 'faasd_function_cold_starts_total{function="nd",kind="pool-warm"} 0.0' in text
    # Back to the pool manager: its next instance comes from the pool.
    assert faasd.ok("PATCH", "/v1/functions/nd", json={"executor": "poolmgr", "timeout": 30})["executor"] == "poolmgr"
    assert requests.get(faasd.url + "/function/nd", timeout=60).status_code == 200
    wait_for(
        lambda: (
            'faasd_function_cold_starts_total{function="nd",kind="pool-warm"} 1.0' in faasd.api("GET", "/metrics").text
        ),
        "the updated function's instance made from the pool",
    )
    bad = faasd.api("PATCH", "/v1/functions/nd", json={"executor": "kubernetes"})
    assert bad.status_code == 400 and "executor" in bad.json()["error"]["message"]
    faasd.api("DELETE", "/v1/functions/nd")


def test_a_forced_delete_takes_what_used_the_function_and_says_what(faasd: FaasdProcess) -> None:
    faasd.create_function("used", "python", HELLO)
    faasd.ok("POST", "/v1/triggers/http", json={"name": "used-r", "url": "/used", "function": "used"})
    faasd.ok("POST", "/v1/timers", json={"name": "used-t", "function": "used", "cron": "@hourly"})
    refused = faasd.api("DELETE", "/v1/functions/used")
    assert refused.status_code == 409 and "used-r" not in refused.text and "/used" in refused.text
    went = faasd.api("DELETE", "/v1/functions/used?force=true")
    assert went.status_code == 200
    assert went.json() == {"deleted": ["route 'used-r'", "timer 'used-t'"]}
    assert faasd.api("GET", "/v1/triggers/http/used-r").status_code == 404
    assert faasd.api("GET", "/v1/timers/used-t").status_code == 404
    faasd.create_function("alone", "python", HELLO)
    assert faasd.api("DELETE", "/v1/functions/alone?force=true").status_code == 204  # nothing else went


def test_a_packages_source_archive_can_be_fetched_back(faasd: FaasdProcess) -> None:
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        body = HELLO.encode()
        info = tarfile.TarInfo("hello.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    files = {"deploy": ("d.tar", data.getvalue(), "application/x-tar")}
    made = faasd.api("POST", "/v1/packages", data={"name": "srcless", "environment": "python"}, files=files)
    assert made.status_code == 201, made.text
    none = faasd.api("GET", "/v1/packages/srcless/source")
    assert none.status_code == 404 and "deployment archive" in none.json()["error"]["message"]
    assert faasd.api("GET", "/v1/packages/nope/source").status_code == 404
    faasd.api("DELETE", "/v1/packages/srcless?force=true")
