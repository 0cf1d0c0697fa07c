"""Two faasd processes on one shared SQLite file: a write through one node right after another node's
write (before its follower's poll) is checked against the registry as it is (faasd/control/controller.py,
WriteLock), so it is a 409 naming what it would break, not a 500 nor a delete of what it did not know of.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.integration.harness import FaasdProcess
from tests.integration.test_cluster_sync import Pair, code, start_pair


def test_writes_right_after_another_nodes_write_are_checked_against_the_registry(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    pair: Pair = start_pair(start_faasd, tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")
    a, b = pair.a, pair.b
    a.create_function("f", "nodejs", code("v1"))
    created = a.api("POST", "/v1/environments", json={"name": "custom", "image": "me/img:1", "poolsize": 0})
    assert created.status_code == 201, created.text
    for _ in range(5):  # each time within a poll (0.25 s) of b's write
        route = b.api("POST", "/v1/triggers/http", json={"name": "r", "url": "/r", "function": "f"})
        assert route.status_code == 201, route.text
        refused = a.api("DELETE", "/v1/functions/f")
        assert refused.status_code == 409, refused.text
        assert "route" in refused.json()["error"]["message"]
        assert b.api("DELETE", "/v1/triggers/http/r").status_code == 204
    made = b.api("POST", "/v1/functions", json={"name": "g", "environment": "custom", "code": code("g")})
    assert made.status_code == 201, made.text
    refused = a.api("DELETE", "/v1/environments/custom")
    assert refused.status_code == 409, refused.text
    assert "function" in refused.json()["error"]["message"] and "g" in refused.json()["error"]["message"]
