"""The admin API's token, locked-down function containers, and bad input, on the real engine."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import docker
import requests

from tests.integration.harness import FaasdProcess, wait_for

HELLO_PY = 'def main():\n    return "Hello"\n'
PROBE_PY = """import os, urllib.request


def main(context):
    checks = {"uid": os.getuid()}
    try:
        open("/probe", "w").close()
        checks["root_fs_writable"] = True
    except OSError:
        checks["root_fs_writable"] = False
    with open("/tmp/probe", "w") as f:
        f.write("ok")
    checks["tmp_writable"] = True
    checks["docker_socket"] = os.path.exists("/var/run/docker.sock")
    with open("/proc/self/status") as f:
        checks["cap_eff"] = next(l.split()[1] for l in f if l.startswith("CapEff"))
    target = context.request.query.get("admin")
    try:
        with urllib.request.urlopen(target + "/v1/functions", timeout=5) as r:
            checks["admin_status"] = r.status
    except urllib.error.HTTPError as e:
        checks["admin_status"] = e.code
    except OSError as e:
        checks["admin_status"] = str(e)
    return checks
"""


def test_admin_api_needs_the_token(faasd: FaasdProcess) -> None:
    token_file = faasd.state_dir / "token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert len(faasd.token) >= 43  # 32 random bytes, URL-safe base64

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": faasd.token}):
        refused = requests.get(faasd.url + "/v1/functions", headers=headers, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert requests.post(faasd.url + "/v1/environments", json={}, timeout=10).status_code == 401
    assert faasd.api("GET", "/v1/functions").status_code == 200
    assert requests.get(faasd.url + "/metrics", timeout=10).status_code == 401  # it names every function
    assert "faasd_functions" in faasd.api("GET", "/metrics").text
    # Public: health, the API description and the functions themselves.
    assert requests.get(faasd.url + "/healthz", timeout=10).status_code == 200
    assert requests.get(faasd.url + "/v1/openapi.json", timeout=10).json()["openapi"].startswith("3.")
    faasd.create_function("public", "python", HELLO_PY)
    assert requests.get(faasd.url + "/function/public", timeout=30).text == "Hello"


def test_the_token_survives_a_restart(start_faasd: Callable[..., FaasdProcess]) -> None:
    first = start_faasd(default_poolsize=0)
    token = first.token
    assert first.stop() == 0
    second = start_faasd(state_dir=first.state_dir, default_poolsize=0)
    assert second.token == token
    assert second.api("GET", "/v1/environments").status_code == 200


def test_function_containers_are_locked_down(faasd: FaasdProcess, engine: docker.DockerClient) -> None:
    faasd.create_function("probe", "python", PROBE_PY)
    # From inside the container, faasd's port on the host is the Docker network's gateway.
    gateway = engine.networks.get("faasd").attrs["IPAM"]["Config"][0]["Gateway"]
    checks = requests.get(
        f"{faasd.url}/function/probe", params={"admin": f"http://{gateway}:{faasd.port}"}, timeout=30
    ).json()
    assert checks["uid"] == 1000
    assert checks["root_fs_writable"] is False
    assert checks["tmp_writable"] is True
    assert checks["docker_socket"] is False
    assert int(checks["cap_eff"], 16) == 0
    assert checks["admin_status"] != 200  # no token, no admin API (or not even reachable)

    [container_id] = wait_for(
        lambda: [c.id for c in faasd.containers() if c.name.startswith(f"faasd-{faasd.owner}-probe-")],
        "the probe container",
    )
    host_config = engine.api.inspect_container(container_id)["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert host_config["PidsLimit"] > 0
    assert host_config["Memory"] == 256 * 1024 * 1024
    assert not host_config.get("Binds")


def test_bad_names_are_400_naming_the_field(faasd: FaasdProcess) -> None:
    for body, field in (
        ({"name": "../x", "environment": "python", "code": HELLO_PY}, "name"),
        ({"name": "UPPER", "environment": "python", "code": HELLO_PY}, "name"),
        ({"name": "x" * 64, "environment": "python", "code": HELLO_PY}, "name"),
        ({"name": "ok", "environment": "python", "code": HELLO_PY, "timeout": -1}, "timeout"),
        ({"name": "ok", "environment": "python", "code": HELLO_PY, "memory_mb": 1}, "memory_mb"),
    ):
        answer = faasd.api("POST", "/v1/functions", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["message"].startswith(field), answer.text
    bad_route = faasd.api("POST", "/v1/triggers/http", json={"method": "BREW", "url": "/x", "function": "f"})
    assert bad_route.status_code == 400
    assert "method" in bad_route.json()["error"]["message"]
    bad_image = faasd.api("POST", "/v1/environments", json={"name": "e", "image": "a b"})
    assert bad_image.status_code == 400
    assert "image" in bad_image.json()["error"]["message"]
    not_json = faasd.api("POST", "/v1/functions", data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]


def test_code_over_the_limit_is_413(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=0, max_code_bytes=1000)
    answer = daemon.api("POST", "/v1/functions", json={"name": "big", "environment": "python", "code": "#" * 1001})
    assert answer.status_code == 413
    assert "limit is 1000" in answer.json()["error"]["message"]
