"""Two faasd processes on one registry share the asynchronous work: each call and each tick once.

All real: two faasd processes (state dirs, ports, owner labels and pools of
their own, this machine's engine) with the same ``--database``, once a SQLite
file and once a PostgreSQL database (tests/postgres.py); the function records
every delivery it gets in a real Redis (RPUSH of the call id, the attempt, the
tick's scheduled time and the container's clock, which is the host's), so a
repeated delivery leaves a second entry. Node a is killed with SIGKILL
mid-way: node b takes over its calls once their leases (``--async-lease 4``)
ran out. Every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import concurrent.futures
import secrets
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import docker
import pytest
import requests

from faasd.core.events import MqTrigger
from faasd.events.mq import redis_streams
from faasd.events.mq.broker import kinds
from faasd.events.mq.runner import subscription
from tests.integration.brokers import NatsServer, RedisServer
from tests.integration.harness import FaasdProcess, wait_for
from tests.integration.recorder import entries, recorder_function

LEASE = 4.0  # --async-lease of both nodes
CALLS = 200


class Nodes:
    """Faasd nodes a and b on ``database``, one admin token; :meth:`close` leaves no process or container."""

    def __init__(self, engine: docker.DockerClient, database: str, folder: Path) -> None:
        self.database = database
        self.nodes: list[FaasdProcess] = []
        token = "t" * 48
        for name in ("a", "b"):
            state = folder / f"node-{name}"
            state.mkdir(parents=True, exist_ok=True)
            (state / "token").write_text(token + "\n")
            (state / "token").chmod(0o600)
            if database.startswith("sqlite:"):
                # On SQLite code blobs are files only (faasd/store/codestore.py): nodes on one machine
                # share the folder that holds them (content-addressed, written by rename).
                (folder / "code").mkdir(exist_ok=True)
                (state / "code").symlink_to(folder / "code")
            self.nodes.append(FaasdProcess(state, engine, database=database, async_lease=LEASE, default_poolsize=1))

    @property
    def a(self) -> FaasdProcess:
        return self.nodes[0]

    @property
    def b(self) -> FaasdProcess:
        return self.nodes[1]

    def start(self) -> Nodes:
        for node in self.nodes:
            node.start()
        return self

    def close(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def rows(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """A query on the shared database, straight (``?`` placeholders on both)."""
        if self.database.startswith("sqlite:///"):
            with sqlite3.connect(self.database.removeprefix("sqlite:///"), timeout=10) as db:
                return list(db.execute(statement, args))

        async def query() -> list[tuple[Any, ...]]:
            numbered = statement
            for n in range(1, len(args) + 1):
                numbered = numbered.replace("?", f"${n}", 1)
            conn = await asyncpg.connect(self.database, timeout=10)
            try:
                return [tuple(r) for r in await conn.fetch(numbered, *args)]
            finally:
                await conn.close()

        return asyncio.run(query())


@pytest.fixture
def nodes(engine: docker.DockerClient, redis_server: RedisServer, database: str, tmp_path: Path) -> Iterator[Nodes]:
    two = Nodes(engine, database, tmp_path)
    try:
        yield two.start()
    finally:
        two.close()


def recorder(nodes: Nodes, redis_server: RedisServer, name: str, key: str) -> None:
    nodes.a.ok("POST", "/v1/functions", json=recorder_function(name, redis_server, key, hold=0.2))
    wait_for(lambda: nodes.b.api("GET", f"/v1/functions/{name}").status_code == 200, "node b to know it", timeout=15)


def test_async_calls_through_two_nodes_each_delivered_once_and_a_killed_nodes_taken_over(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    key = f"calls-{time.monotonic_ns()}"
    recorder(nodes, redis_server, "rec", key)
    ids: dict[str, int] = {}  # call id -> the node it was submitted through
    lock = threading.Lock()

    def submit(i: int) -> None:
        r = requests.post(f"{nodes.nodes[i % 2].url}/async-function/rec", data=str(i), timeout=30)
        assert r.status_code == 202, r.text
        with lock:
            ids[r.json()["call_id"]] = i % 2

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(CALLS)))
    assert len(ids) == CALLS

    # Node a dies mid-way, holding calls queued and running.
    wait_for(lambda: len(entries(redis_server, key)) >= CALLS // 10, "the first deliveries", timeout=120)
    nodes.a.kill9()
    killed = time.time()
    held = dict(
        nodes.rows(
            "SELECT id, lease_until FROM invocations WHERE lease_owner = ? AND status IN ('queued', 'running')",
            nodes.a.owner,
        )
    )
    assert held, "node a held no unfinished call when it was killed: nothing to take over"
    assert all(until <= killed + LEASE + 0.5 for until in held.values())

    def all_delivered() -> bool:
        return {e[0] for e in entries(redis_server, key)} >= set(ids)

    try:
        wait_for(all_delivered, "every call delivered (node b taking over a's)", timeout=120)
    except AssertionError:
        missing = set(ids) - {e[0] for e in entries(redis_server, key)}
        rows = nodes.rows("SELECT id, status, lease_owner, lease_until, next_at, attempts_json FROM invocations")
        left = [r for r in rows if r[0] in missing]
        raise AssertionError(f"{len(missing)} call(s) not delivered at {time.time():.2f}: {left[:5]}") from None
    wait_for(
        lambda: nodes.rows("SELECT count(*) FROM invocations WHERE status = 'succeeded'")[0][0] == CALLS,
        "every call succeeded",
        timeout=60,
    )
    seen = collections.defaultdict(list)  # call id -> [(attempt, unix time)]
    for call_id, attempt, _scheduled, at, _container in entries(redis_server, key):
        seen[call_id].append((int(attempt), float(at)))
    assert set(seen) == set(ids)
    for call_id, deliveries in seen.items():
        if call_id not in held:  # finished before the kill, or b's own: once
            assert len(deliveries) == 1, f"call {call_id} delivered {len(deliveries)} times: {deliveries}"
    # Node b took a's calls only once their leases had run out (a call a had sent may still have reached
    # the function just after the kill: at least once); how long after, for the report.
    late, after_kill = [], []
    for call_id, until in held.items():
        taken = [at for _attempt, at in seen[call_id] if at >= until - 0.05]
        assert len(taken) == 1, f"call {call_id} delivered after a's lease ran out {len(taken)} times: {seen[call_id]}"
        assert all(at < killed + 1.0 for _attempt, at in seen[call_id] if at < until - 0.05), seen[call_id]
        late.append(taken[0] - until)
        after_kill.append(taken[0] - killed)
    print(
        f"\n{nodes.database.split(':')[0]}: {len(held)} call(s) held by the killed node; lease end to delivery "
        f"by the other: min {min(late):.2f} s, median {statistics.median(late):.2f} s, max {max(late):.2f} s; "
        f"kill to that delivery (--async-lease {LEASE:.0f}): {min(after_kill):.2f} s to {max(after_kill):.2f} s"
    )


def test_a_timer_fires_once_per_tick_with_both_nodes_up(nodes: Nodes, redis_server: RedisServer) -> None:
    key = f"ticks-{time.monotonic_ns()}"
    recorder(nodes, redis_server, "tick", key)
    nodes.b.ok(
        "POST", "/v1/timers", json={"name": "every-second", "function": "tick", "cron": "@every 1s", "overlap": "allow"}
    )
    wait_for(lambda: len(entries(redis_server, key)) >= 10, "10 ticks", timeout=60)
    nodes.a.ok("DELETE", "/v1/timers/every-second")
    ticks = collections.Counter(e[2] for e in entries(redis_server, key))
    assert "-" not in ticks, ticks
    assert max(ticks.values()) == 1, f"ticks made more than once: {[t for t, n in ticks.items() if n > 1]}"
    # Both nodes scheduled every tick; one made each (the made ones are consecutive seconds).
    seconds = sorted(calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) for t in ticks)
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), seconds


# -- message-queue triggers: every node in one consumer group, each message to one node -----------------


def mq_trigger(mqtype: str, url: str) -> MqTrigger:
    return MqTrigger(
        name=f"orders-{secrets.token_hex(3)}",
        function="bill",
        mqtype=mqtype,
        topic=f"orders-{secrets.token_hex(3)}",
        resptopic="",
        errortopic="",
        maxretries=3,
        maxconcurrency=10,
        contenttype="application/json",
        connection=url,
        connection_secret="",
        method="POST",
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )


async def _share_and_take_over(mqtype: str, url: str, publish: Callable[[str, bytes], None]) -> None:
    """Nodes a and b read one trigger (the names each node's runner gives them: faasd/events/mq/runner.py);
    every message goes to one of them; what a held when it died goes to b, delivery count 2."""
    trigger = mq_trigger(mqtype, url)
    kind = kinds()[mqtype]
    a = kind(replace(subscription(trigger, url, "node-a", 0.0), ack_wait=1.0))
    b = kind(replace(subscription(trigger, url, "node-b", 0.0), ack_wait=1.0))
    await a.open()
    await b.open()
    try:
        for i in range(40):
            publish(trigger.topic, b"%d" % i)
        got: dict[str, list[bytes]] = {"a": [], "b": []}
        deadline = time.monotonic() + 30
        while len(got["a"]) + len(got["b"]) < 40 and time.monotonic() < deadline:
            for name, consumer in (("a", a), ("b", b)):
                for message in await consumer.fetch(7, 0.2):
                    got[name].append(message.body)
                    assert message.deliveries == 1
                    await consumer.ack(message)
        everything = got["a"] + got["b"]
        assert sorted(everything) == sorted(b"%d" % i for i in range(40)), got  # each message once
        assert got["a"] and got["b"], got  # both nodes took some
        # a takes three messages and dies without acknowledging them: b gets them, once the broker
        # finds them idle (Redis: XAUTOCLAIM past the idle time; NATS: the ack wait).
        for i in range(3):
            publish(trigger.topic, b"late-%d" % i)
        held: list[bytes] = []
        while len(held) < 3 and time.monotonic() < deadline:
            held += [m.body for m in await a.fetch(3 - len(held), 0.2)]
        await a.close()
        taken: list[tuple[bytes, int]] = []
        while len(taken) < 3 and time.monotonic() < deadline:
            for message in await b.fetch(3, 0.2):
                taken.append((message.body, message.deliveries))
                await b.ack(message)
        assert sorted(taken) == sorted((body, 2) for body in held), (held, taken)
    finally:
        await a.close()
        await b.close()


def test_redis_consumers_of_two_nodes_share_a_group_and_take_over_a_dead_ones_messages(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_streams, "RECLAIM_IDLE", 1.0)  # 5 minutes by default
    monkeypatch.setattr(redis_streams, "RECLAIM_EVERY", 0.2)

    def publish(topic: str, body: bytes) -> None:
        redis_server.command("XADD", topic, "*", "body", body)

    asyncio.run(_share_and_take_over("redis", redis_server.url, publish))


def test_nats_consumers_of_two_nodes_share_a_durable_consumer_and_take_over_a_dead_ones_messages(
    nats_server: NatsServer,
) -> None:
    asyncio.run(_share_and_take_over("nats", nats_server.url, nats_server.publish))
