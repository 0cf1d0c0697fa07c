"""Two faasd nodes on one PostgreSQL behind nginx (issue 17), all real: the
nodes are faasd processes with pools of their own on this machine's engine,
the registry a real PostgreSQL server, the load balancer nginx running
deploy/nginx.conf, and the recorder of deliveries a real Redis (a function
RPUSHes what it was called with; every delivery, also a repeated one, leaves
an entry).

How fast a change reaches the other node is a benchmark figure
(bench/cluster.py); here every wait is a bounded poll.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from typing import Any

import requests

from tests.cluster.harness import Cluster
from tests.integration.brokers import RedisServer
from tests.integration.harness import wait_for
from tests.integration.recorder import entries, recorder_function

HELLO = "module.exports = async () => 'hello from the cluster';\n"


def get(url: str, **kw: Any) -> requests.Response:
    return requests.get(url, timeout=kw.pop("timeout", 30), **kw)


def recorder(cluster: Cluster, redis_server: RedisServer, name: str, key: str, hold: float = 0.0) -> None:
    cluster.a.ok("POST", "/v1/functions", json=recorder_function(name, redis_server, key, hold))


def test_a_change_through_one_node_is_served_by_the_other_and_through_nginx(cluster: Cluster) -> None:
    cluster.a.create_function("hi", "nodejs", HELLO)
    answer = wait_for(
        lambda: (r := get(f"{cluster.b.url}/function/hi")).status_code == 200 and r,
        "node b to serve the function created through node a",
        timeout=15,
    )
    assert answer.text == "hello from the cluster"
    assert get(f"{cluster.url}/function/hi").text == "hello from the cluster"

    # A route made through b answers through a; an update through b is served by a (its warm instance replaced).
    cluster.b.create_route("GET", "/greet", "hi")
    wait_for(lambda: get(f"{cluster.a.url}/greet").status_code == 200, "node a to serve b's route", timeout=15)
    cluster.b.ok("PATCH", "/v1/functions/hi", json={"code": HELLO.replace("the cluster", "node b")})
    wait_for(lambda: get(f"{cluster.a.url}/greet").text == "hello from node b", "a to serve b's update", timeout=15)

    # A delete through nginx is gone on both nodes.
    assert cluster.api("DELETE", "/v1/functions/hi?force=true").status_code in (200, 204)
    for node in cluster.nodes:
        wait_for(lambda n=node: get(f"{n.url}/function/hi").status_code == 404, "the delete on every node", timeout=15)

    # Each node answers for itself to the load balancer.
    for node in cluster.nodes:
        ready = get(f"{node.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert get(f"{node.url}/healthz").status_code == 200


def test_async_calls_survive_a_node_killed_in_the_middle(cluster: Cluster, redis_server: RedisServer) -> None:
    key = f"deliveries-{time.monotonic_ns()}"
    recorder(cluster, redis_server, "rec", key, hold=0.2)
    for node in cluster.nodes:  # both nodes know the function before the calls
        wait_for(lambda n=node: n.api("GET", "/v1/functions/rec").status_code == 200, "the function", timeout=15)

    ids: list[str] = []
    via_a: set[str] = set()
    lock = threading.Lock()

    def submit(i: int) -> None:
        node = cluster.nodes[i % 2]  # half through each node
        r = requests.post(f"{node.url}/async-function/rec", data=str(i), timeout=30)
        assert r.status_code == 202, r.text
        with lock:
            ids.append(r.json()["call_id"])
            if node is cluster.a:
                via_a.add(r.json()["call_id"])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(submit, range(500)))
    assert len(set(ids)) == 500

    # Kill node a while deliveries are under way.
    wait_for(lambda: len(entries(redis_server, key)) >= 50, "the first deliveries", timeout=120)
    cluster.a.kill9()

    def delivered() -> bool:
        return {e[0] for e in entries(redis_server, key)} >= set(ids)

    wait_for(delivered, "all 500 calls delivered (node b taking over a's after their leases expire)", timeout=300)

    # Every call succeeded (a delivery is recorded in Redis before its node records the success: polled).
    def statuses() -> collections.Counter[str]:
        listed = cluster.b.ok("GET", "/v1/invocations?function=rec&limit=1000")["items"]
        return collections.Counter(call["status"] for call in listed if call["id"] in wanted)

    wanted = set(ids)
    wait_for(lambda: statuses() == {"succeeded": 500}, "every call recorded as succeeded", timeout=60)
    # At least once: a call is delivered again only if node a was running it when it died (a delivery whose
    # end a never recorded); node b delivers each call once, so none is delivered again after its success.
    a_containers = {c.id[:12] for c in cluster.a.containers()}
    by_call: dict[str, list[str]] = collections.defaultdict(list)
    for call_id, _attempt, _scheduled, _at, host in entries(redis_server, key):
        by_call[call_id].append("a" if host in a_containers else "b")
    assert set(by_call) == set(ids)
    for call_id, nodes in by_call.items():
        assert nodes.count("b") <= 1 and nodes.count("a") <= 1, (call_id, nodes)
    assert [call_id for call_id, nodes in by_call.items() if "a" in nodes], "no delivery told apart as node a's"
    # Node b took over calls node a held when it died (submitted through a, delivered by b).
    assert [call_id for call_id in via_a if "b" in by_call[call_id]], "node b delivered none of node a's calls"
    again = [call_id for call_id, nodes in by_call.items() if len(nodes) > 1]
    assert len(again) <= 64, f"{len(again)} calls delivered twice: more than node a had in flight"


def test_a_timer_fires_once_per_tick_with_both_nodes_up(cluster: Cluster, redis_server: RedisServer) -> None:
    key = f"ticks-{time.monotonic_ns()}"
    recorder(cluster, redis_server, "tick", key)
    cluster.b.ok("POST", "/v1/timers", json={"name": "every-second", "function": "tick", "cron": "@every 1s"})
    wait_for(lambda: len(entries(redis_server, key)) >= 12, "12 ticks", timeout=120)
    cluster.b.ok("DELETE", "/v1/timers/every-second")
    ticks = collections.Counter(e[2] for e in entries(redis_server, key))
    assert all(t != "-" for t in ticks), ticks
    assert max(ticks.values()) == 1, f"ticks fired more than once: {[t for t, n in ticks.items() if n > 1]}"


def test_postgresql_restarted_under_load_loses_nothing(cluster: Cluster) -> None:
    for i in range(5):
        cluster.a.create_function(f"keep-{i}", "nodejs", HELLO)
    for node in cluster.nodes:
        for i in range(5):
            wait_for(lambda n=node, i=i: get(f"{n.url}/function/keep-{i}").status_code == 200, "warm", timeout=30)

    failures: list[str] = []
    calls = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal calls
        deadline = time.monotonic() + 120  # bounded, whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            for node in cluster.nodes:
                r = get(f"{node.url}/function/keep-{calls % 5}", timeout=10)
                calls += 1
                if r.status_code != 200:
                    failures.append(f"{node.url}: {r.status_code} {r.text[:120]}")

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(lambda: calls >= 50, "calls under way", timeout=30)
        cluster.postgres.stop()
        before = calls
        wait_for(lambda: calls >= before + 50, "warm calls while PostgreSQL is down", timeout=30)
        # A write while the registry is down is refused with 503, not lost or hung.
        down = cluster.a.api("POST", "/v1/functions", json={"name": "late", "environment": "nodejs", "code": HELLO})
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "registry_unavailable", down.text
        # So is an asynchronous call: it is answered 202 only once stored.
        queued = requests.post(f"{cluster.a.url}/async-function/keep-0", data="x", timeout=30)
        assert queued.status_code == 503, queued.text
        cluster.postgres.start()
        after = calls
        wait_for(lambda: calls >= after + 50, "warm calls after PostgreSQL is back", timeout=30)
    finally:
        stop.set()
        worker.join(30)
        if not cluster.postgres.running:
            cluster.postgres.start()
    assert not failures, failures[:5]
    # Nothing lost (as PostgreSQL itself has it); writes work again and reach the other node.
    names = set(cluster.postgres.sql("SELECT name FROM functions", cluster.database).split())
    assert {f"keep-{i}" for i in range(5)} <= names
    wait_for(
        lambda: (
            cluster.a.api(
                "POST", "/v1/functions", json={"name": "late", "environment": "nodejs", "code": HELLO}
            ).status_code
            in (200, 201)
        ),
        "a write once PostgreSQL is back",
        timeout=30,
    )
    wait_for(lambda: get(f"{cluster.b.url}/function/late").status_code == 200, "b to serve it", timeout=15)
