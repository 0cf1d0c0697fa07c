"""Traffic splitting and canaries on a real faasd: a route's calls go to its functions by weight, and a
canary moves them to a new function step by step, or back when it fails."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests

from tests.integration.harness import FaasdProcess

CALLS = 2000
FAILING = "def main():\n    return 'boom', 500\n"


def named(name: str) -> str:
    return f"def main():\n    return {name!r}\n"


def split(url: str, functions: list[tuple[str, int]]) -> dict[str, object]:
    return {"url": url, "functions": [{"function": f, "weight": w} for f, w in functions]}


def test_a_split_route_sends_each_function_its_share_of_2000_calls(faasd: FaasdProcess) -> None:
    for name in ("blue", "green"):
        faasd.create_function(name, "python", named(name))
    route = faasd.ok("POST", "/v1/triggers/http", json={**split("/split", [("blue", 90), ("green", 10)]), "name": "sp"})
    assert route["function"] == "blue"
    assert route["functions"] == [{"function": "blue", "weight": 90}, {"function": "green", "weight": 10}]
    session = requests.Session()  # keep-alive: the split is faasd's, not the connection's
    counts: Counter[str] = Counter()
    for _ in range(CALLS):
        response = session.get(faasd.url + "/split", timeout=30)
        assert response.status_code == 200, response.text
        counts[response.text] += 1
    assert set(counts) == {"blue", "green"}
    assert abs(counts["blue"] / CALLS - 0.90) <= 0.05, counts
    assert abs(counts["green"] / CALLS - 0.10) <= 0.05, counts

    # A route that names a function by weight keeps it from being deleted, as one that names it alone.
    refused = faasd.api("DELETE", "/v1/functions/green")
    assert refused.status_code == 409 and "GET /split" in refused.json()["error"]["message"]
    listed = faasd.ok("GET", "/v1/triggers/http?function=green")["items"]
    assert [r["name"] for r in listed] == ["sp"]
    bad = faasd.api("PATCH", "/v1/triggers/http/sp", json=split("/split", [("blue", 90), ("green", 20)]))
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "the weights of functions add up to 110; they must add up to 100"
    # Weight 0: no call goes there.
    faasd.ok(
        "PATCH",
        "/v1/triggers/http/sp",
        json={"functions": [{"function": "blue", "weight": 0}, {"function": "green", "weight": 100}]},
    )
    assert {session.get(faasd.url + "/split", timeout=30).text for _ in range(50)} == {"green"}


def drive(daemon: FaasdProcess, url: str, canary: str, timeout: float = 90) -> tuple[dict[str, Any], Counter[str]]:
    """Call the route (as its users would) until the canary ends; its last state and what the calls answered."""
    session = requests.Session()
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _ in range(10):
            response = session.get(daemon.url + url, timeout=30)
            seen[f"{response.status_code} {response.text}"] += 1
        state = daemon.ok("GET", f"/v1/canaries/{canary}")
        if state["status"] != "running":
            return state, seen
    raise AssertionError(f"canary {canary} still running after {timeout:.0f} s: {state}, calls {seen}")


def test_a_canary_rolls_forward_with_a_healthy_function(faasd: FaasdProcess) -> None:
    for name in ("shop-v1", "shop-v2"):
        faasd.create_function(name, "python", named(name))
    faasd.ok("POST", "/v1/triggers/http", json={"url": "/shop", "function": "shop-v1", "name": "shop"})
    body = {
        "name": "shop-canary",
        "newfunction": "shop-v2",
        "oldfunction": "shop-v1",
        "httptrigger": "shop",
        "increment_step": 40,
        "increment_interval": 1,
        "failure_threshold": 10,
    }
    created = faasd.ok("POST", "/v1/canaries", json=body)
    assert (created["status"], created["weight"], created["increment_interval"]) == ("running", 40, 1)
    route = faasd.ok("GET", "/v1/triggers/http/shop")
    assert route["functions"] == [{"function": "shop-v1", "weight": 60}, {"function": "shop-v2", "weight": 40}]

    state, seen = drive(faasd, "/shop", "shop-canary")
    assert state["status"] == "succeeded" and state["weight"] == 100, state
    assert [step["weight"] for step in state["history"]] == [40, 80, 100]
    assert all(step["failure_rate"] == 0 for step in state["history"][1:]), state["history"]
    assert set(seen) <= {"200 shop-v1", "200 shop-v2"} and seen["200 shop-v2"] > 0
    route = faasd.ok("GET", "/v1/triggers/http/shop")
    assert route["function"] == "shop-v2" and route["functions"] == [{"function": "shop-v2", "weight": 100}]
    session = requests.Session()
    assert {session.get(faasd.url + "/shop", timeout=30).text for _ in range(20)} == {"shop-v2"}
    listed = {c["name"]: c for c in faasd.status()["canaries"]}
    assert listed["shop-canary"]["status"] == "succeeded"
    # Ended, it no longer holds the old function: that can go now.
    faasd.ok("DELETE", "/v1/functions/shop-v1")


def test_a_canary_rolls_back_a_failing_function(faasd: FaasdProcess) -> None:
    faasd.create_function("cart-v1", "python", named("cart-v1"))
    faasd.create_function("cart-v2", "python", FAILING)
    faasd.ok("POST", "/v1/triggers/http", json={"url": "/cart", "function": "cart-v1", "name": "cart"})
    body = {
        "name": "cart-canary",
        "newfunction": "cart-v2",
        "oldfunction": "cart-v1",
        "httptrigger": "cart",
        "increment_interval": "1s",
    }
    created = faasd.ok("POST", "/v1/canaries", json=body)
    assert (created["weight"], created["increment_step"], created["failure_threshold"]) == (20, 20, 10)  # Fission's
    refused = faasd.api("DELETE", "/v1/functions/cart-v2")
    assert refused.status_code == 409

    state, seen = drive(faasd, "/cart", "cart-canary")
    assert state["status"] == "aborted" and state["weight"] == 0, state
    assert state["history"][-1]["failure_rate"] == 100.0 and state["history"][-1]["weight"] == 0
    assert "rolled back: 'cart-v2' answered" in state["reason"]
    assert seen["500 boom"] > 0
    route = faasd.ok("GET", "/v1/triggers/http/cart")
    assert route["function"] == "cart-v1"
    assert route["functions"] == [{"function": "cart-v1", "weight": 100}]  # the new one is off the route
    session = requests.Session()
    assert {session.get(faasd.url + "/cart", timeout=30).text for _ in range(20)} == {"cart-v1"}
    # Deleting the canary leaves the route's weights as they are.
    faasd.ok("DELETE", "/v1/canaries/cart-canary")
    assert faasd.ok("GET", "/v1/triggers/http/cart")["functions"] == route["functions"]
    assert faasd.api("GET", "/v1/canaries/cart-canary").status_code == 404


def test_a_canary_survives_a_restart(start_faasd: Callable[..., FaasdProcess]) -> None:
    daemon = start_faasd(default_poolsize=1)
    for name in ("api-v1", "api-v2"):
        daemon.create_function(name, "python", named(name))
    daemon.ok("POST", "/v1/triggers/http", json={"url": "/api", "function": "api-v1", "name": "api"})
    body = {"name": "api-canary", "newfunction": "api-v2", "oldfunction": "api-v1", "httptrigger": "api"}
    daemon.ok("POST", "/v1/canaries", json={**body, "increment_step": 50, "increment_interval": "1h"})
    daemon.stop()
    again = start_faasd(state_dir=daemon.state_dir, default_poolsize=1)
    state = again.ok("GET", "/v1/canaries/api-canary")
    assert (state["status"], state["weight"]) == ("running", 50)
    assert again.ok("GET", "/v1/triggers/http/api")["functions"][1] == {"function": "api-v2", "weight": 50}
    # A shorter interval starts at once.
    again.ok("PATCH", "/v1/canaries/api-canary", json={"increment_interval": 1})
    state, _seen = drive(again, "/api", "api-canary")
    assert state["status"] == "succeeded" and [s["weight"] for s in state["history"]] == [50, 100]
