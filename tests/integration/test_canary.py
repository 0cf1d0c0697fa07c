"""Traffic splitting on a real faasd: a route's calls go to its functions by weight."""

from __future__ import annotations

from collections import Counter

import requests

from tests.integration.harness import FaasdProcess

CALLS = 2000


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
