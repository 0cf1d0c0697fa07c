"""Seeing the whole cluster through any node (issue 17): the nodes, a function's logs and usage.

Two real faasd nodes on a real PostgreSQL behind nginx (tests/cluster/harness.py), each
writing its usage every 0.5 s. A function is called through each node; then each node
lists both, answers the logs of both (each record tagged with the node that wrote it)
and the same usage. With node b killed (-9), node a still answers the logs and names b
as missing, and lists it as not live once its heartbeat is stale. Every wait is a
bounded poll.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from tests.cluster.harness import Cluster
from tests.integration.harness import FaasdProcess, wait_for
from tests.postgres import PostgresServer

PRINTER = "def main():\n    print('printed here')\n    return 'ok'\n"


@pytest.fixture
def cluster(engine: docker.DockerClient, postgres: PostgresServer, tmp_path: Path) -> Iterator[Cluster]:
    """Nodes a and b as in conftest.py's, writing their usage every 0.5 s."""
    nodes = Cluster(engine, postgres, tmp_path, default_poolsize=1, usage_interval=0.5)
    try:
        yield nodes.start()
    finally:
        nodes.close()


def call(node: FaasdProcess) -> str:
    """Call the function through ``node``; the call's request id (its log lines start with it)."""
    answer = requests.get(f"{node.url}/function/printer", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Request-Id"]


def records(node: FaasdProcess, query: str = "") -> tuple[requests.Response, list[dict[str, Any]]]:
    answer = node.api("GET", f"/v1/functions/printer/logs?format=json{query}")
    assert answer.status_code == 200, answer.text
    return answer, [json.loads(line) for line in answer.text.splitlines()]


def line_of(items: list[dict[str, Any]], request_id: str) -> dict[str, Any] | None:
    return next((i for i in items if f"[{request_id}] printed here" in i["line"]), None)


def nodes_of(node: FaasdProcess) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in node.ok("GET", "/v1/nodes")["items"]}


def usage_calls(node: FaasdProcess) -> int:
    return int(node.ok("GET", "/v1/usage?function=printer")["totals"]["calls"])


def test_any_node_shows_the_nodes_the_logs_of_both_and_the_same_usage(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    a.create_function("printer", "python", PRINTER)
    wait_for(lambda: b.api("GET", "/v1/functions/printer").status_code == 200, "b to know the function", 15)
    on_a, on_b = call(a), call(b)

    # Each node lists both, live, and says which one answered.
    for me, other in ((a, b), (b, a)):

        def two(me: FaasdProcess = me) -> dict[str, dict[str, Any]] | None:
            found = nodes_of(me)
            return found if len(found) == 2 else None

        listed = wait_for(two, "both nodes listed", timeout=15)
        assert listed[me.owner]["self"] is True and listed[other.owner]["self"] is False
        assert listed[me.owner]["live"] and listed[other.owner]["live"]
        assert listed[other.owner]["url"] == other.url

    # The logs through either node have the lines written on both, each tagged with its node.
    for me in (a, b):

        def both(me: FaasdProcess = me) -> tuple[requests.Response, list[dict[str, Any]]] | None:
            answer, items = records(me)
            return (answer, items) if line_of(items, on_a) and line_of(items, on_b) else None

        answer, items = wait_for(both, f"the lines of both nodes through {me.owner}", timeout=30)
        assert (line_of(items, on_a) or {}).get("node") == a.owner
        assert (line_of(items, on_b) or {}).get("node") == b.owner
        assert set(answer.headers["Faasd-Nodes"].split(",")) == {a.owner, b.owner}
        assert "Faasd-Nodes-Missing" not in answer.headers
        times = [i["line"].split(" ", 1)[0] for i in items]
        assert times == sorted(times)  # merged by time
        text = me.api("GET", "/v1/functions/printer/logs").text  # the text form: the same records
        assert text.splitlines() == [i["line"] for i in items]

    # One node's lines only; an unknown node is a 400 naming it.
    _answer, only_b = records(a, f"&node={b.owner}")
    assert line_of(only_b, on_b) and not line_of(only_b, on_a)
    assert {i["node"] for i in only_b} == {b.owner}
    unknown = a.api("GET", "/v1/functions/printer/logs?node=nosuchnode")
    assert unknown.status_code == 400 and "nosuchnode" in unknown.json()["error"]["message"]

    # faas fn logs through a: every line with its node; faas node list.
    shown = a.faas("fn", "logs", "--name", "printer")
    assert shown.returncode == 0, shown.stderr
    assert any(line.startswith(f"{b.owner} ") and f"[{on_b}]" in line for line in shown.stdout.splitlines())
    assert any(line.startswith(f"{a.owner} ") and f"[{on_a}]" in line for line in shown.stdout.splitlines())
    assert shown.stderr == ""
    table = a.faas("node", "list")
    assert table.returncode == 0, table.stderr
    assert b.owner in table.stdout and a.url in table.stdout

    # Usage through either node: the same total, once both have written theirs.
    wait_for(lambda: usage_calls(a) == usage_calls(b) == 2, "both nodes' usage to be written", timeout=15)
    shown_usage = [json.loads(n.faas("usage", "--function", "printer", "-o", "json").stdout) for n in (a, b)]
    assert shown_usage[0]["totals"]["calls"] == shown_usage[1]["totals"]["calls"] == 2

    # Node b killed: a still answers the logs (its own lines) and names b as missing.
    b.kill9()
    answer, items = records(a)
    assert answer.headers["Faasd-Nodes"] == a.owner
    assert answer.headers["Faasd-Nodes-Missing"] == b.owner
    assert line_of(items, on_a) and not line_of(items, on_b)
    shown = a.faas("fn", "logs", "--name", "printer")
    assert shown.returncode == 0, shown.stderr
    assert b.owner in shown.stderr and len(shown.stderr.strip().splitlines()) == 1
    assert any(f"[{on_a}]" in line for line in shown.stdout.splitlines())
    # Once its heartbeat is stale (3 beats of 3 s) b is listed as not live, and still named as missing.
    wait_for(lambda: not nodes_of(a)[b.owner]["live"], "b to be listed as not live", timeout=30, every=0.5)
    assert records(a)[0].headers["Faasd-Nodes-Missing"] == b.owner
    failed = a.faas("fn", "logs", "--name", "printer", "--node", b.owner)
    assert failed.returncode == 1 and b.owner in failed.stderr and "Traceback" not in failed.stderr
