"""Functions' versions on a real faasd: kept to --keep-versions, and a rollback brings the old code back."""

from __future__ import annotations

from collections.abc import Callable

import requests

from tests.integration.harness import FaasdProcess

CODE = """import os


def main():
    return "v{n} " + os.environ.get("TOKEN", "-")
"""


def answer(session: requests.Session, daemon: FaasdProcess) -> str:
    response = session.get(daemon.url + "/greet", timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def numbers(daemon: FaasdProcess) -> list[int]:
    return [v["version"] for v in daemon.ok("GET", "/v1/functions/greet/versions")["items"]]


def test_versions_are_kept_to_n_and_a_rollback_restores_code_and_secrets(
    start_faasd: Callable[..., FaasdProcess],
) -> None:
    daemon = start_faasd(keep_versions=4, default_poolsize=1)
    daemon.create_function("greet", "python", CODE.format(n=1), secrets={"TOKEN": "first"})
    daemon.create_route("GET", "/greet", "greet")
    session = requests.Session()
    assert answer(session, daemon) == "v1 first"
    for n in (2, 3, 4):
        daemon.ok("PATCH", "/v1/functions/greet", json={"code": CODE.format(n=n)})
        assert answer(session, daemon) == f"v{n} first"  # an update serves the calls after it
    daemon.ok("PATCH", "/v1/functions/greet", json={"secrets": {"TOKEN": "second"}})
    assert answer(session, daemon) == "v4 second"
    daemon.ok("PATCH", "/v1/functions/greet", json={"code": CODE.format(n=4)})  # changes nothing: no version

    versions = daemon.ok("GET", "/v1/functions/greet/versions")["items"]
    assert [v["version"] for v in versions] == [5, 4, 3, 2]  # newest first, the last 4 kept
    assert versions[0]["settings"]["secrets"] == ["TOKEN"]
    assert "second" not in str(versions) and "first" not in str(versions)  # secrets by name only
    assert versions[0]["code_sha256"] == versions[1]["code_sha256"] != versions[2]["code_sha256"]

    # Back to the previous version (4: the first secret), as a new version 6.
    back = daemon.ok("POST", "/v1/functions/greet/rollback")
    assert back["version"] == 6 and back["name"] == "greet"
    assert answer(session, daemon) == "v4 first"
    # Back to version 3's code, as version 7.
    assert daemon.ok("POST", "/v1/functions/greet/rollback", json={"to": 3})["version"] == 7
    assert answer(session, daemon) == "v3 first"
    assert numbers(daemon) == [7, 6, 5, 4]

    gone = daemon.api("POST", "/v1/functions/greet/rollback", json={"to": 1})
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == (
        "function 'greet' has no version 1: it keeps 4 to 7 (the last 4: --keep-versions)"
    )
    bad = daemon.api("POST", "/v1/functions/greet/rollback", json={"to": "one"})
    assert bad.status_code == 400 and "to must be a version number" in bad.json()["error"]["message"]
    assert daemon.api("GET", "/v1/functions/nope/versions").status_code == 404

    # Versions survive a restart.
    daemon.stop()
    again = start_faasd(state_dir=daemon.state_dir, keep_versions=4, default_poolsize=1)
    assert numbers(again) == [7, 6, 5, 4]
    assert answer(requests.Session(), again) == "v3 first"
    assert again.ok("POST", "/v1/functions/greet/rollback", json={"to": 5})["version"] == 8
    assert answer(requests.Session(), again) == "v4 second"

    # Deleting the function deletes its versions; one made again under the name starts at 1.
    again.ok("DELETE", "/v1/functions/greet?force=true")
    again.create_function("greet", "python", CODE.format(n=9))
    assert numbers(again) == [1]
