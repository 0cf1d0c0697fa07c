"""Message-queue triggers against real brokers (Redis Streams, NATS JetStream) and the real engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
import redis

from tests.integration.brokers import NatsServer, RedisServer
from tests.integration.harness import FaasdProcess, wait_for

# Fails one call in ten, at random: a message gets `maxretries` attempts.
UNLUCKY = """
import random
def main(context):
    if random.random() < 0.1:
        return ("unlucky", 500)
    return context.request.body
"""
ALWAYS_FAILS = "def main():\n    return ('broken', 503)\n"
# Counts the calls in flight in this instance (a threaded server) and reports the most seen.
COUNTING = """
import json, threading, time
LOCK = threading.Lock()
NOW = [0]
TOP = [0]
def main(context):
    with LOCK:
        NOW[0] += 1
        TOP[0] = max(TOP[0], NOW[0])
    time.sleep(0.2)
    with LOCK:
        NOW[0] -= 1
    return json.dumps({"top": TOP[0], "context": context.request.context})
"""


def stream_ids(client: redis.Redis, stream: str, field: str = "message_id") -> list[str]:
    """The ``field`` of every entry of ``stream``, read in pages."""
    out: list[str] = []
    last = "-"
    while True:
        page = client.xrange(stream, min=last, max="+", count=1000)
        if last != "-":
            page = page[1:]
        if not page:
            return out
        out += [fields[field.encode()].decode() for _id, fields in page]
        last = page[-1][0].decode()


def make_trigger(daemon: FaasdProcess, **body: Any) -> dict[str, Any]:
    return dict(daemon.ok("POST", "/v1/triggers/mq", json=body))


def trigger_status(daemon: FaasdProcess, name: str) -> str:
    return str(daemon.ok("GET", f"/v1/triggers/mq/{name}")["status"])


def accounted(client: redis.Redis, published: list[str]) -> tuple[set[str], set[str]]:
    answered = set(stream_ids(client, "answers"))
    failed = set(stream_ids(client, "errors"))
    return answered, failed


@pytest.fixture
def rclient(redis_server: RedisServer) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    return client


def publish(client: redis.Redis, topic: str, count: int) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd(topic, {"body": json.dumps({"n": i})})
    return [entry.decode() for entry in pipe.execute()]


def test_two_thousand_messages_each_answered_or_an_error_after_exactly_maxretries(
    faasd: FaasdProcess,
    redis_server: RedisServer,
    rclient: redis.Redis,
) -> None:
    faasd.create_function("unlucky", "python", UNLUCKY)
    make_trigger(
        faasd,
        name="orders",
        function="unlucky",
        mqtype="redis",
        topic="orders",
        resptopic="answers",
        errortopic="errors",
        maxretries=2,
        maxconcurrency=20,
        connection=redis_server.url,
    )
    published = publish(rclient, "orders", 2000)

    def all_accounted() -> bool:
        answered, failed = accounted(rclient, published)
        return len(answered | failed) >= len(published)

    wait_for(all_accounted, "every message answered or on the error stream", timeout=180, every=1.0)
    answered, failed = accounted(rclient, published)
    assert answered | failed == set(published)
    assert not answered & failed
    assert failed, "about 1% of messages fail twice in a row (10% x 10%): some do"
    for _id, fields in rclient.xrange("errors"):
        assert fields[b"deliveries"] == b"2"
        assert fields[b"status"] == b"500"
        assert b"2 attempt(s) failed" in fields[b"error"]
    # Every message acknowledged: nothing left pending in the group.
    assert rclient.xpending("orders", "faasd-orders")["pending"] == 0
    state = faasd.ok("GET", "/v1/triggers/mq/orders")
    assert state["status"] == "connected"
    assert state["delivered"] == len(answered)
    assert state["failed"] == len(failed)
    faasd.ok("DELETE", "/v1/triggers/mq/orders")


def test_a_redis_restart_mid_stream_loses_no_message(
    faasd: FaasdProcess,
    redis_server: RedisServer,
    rclient: redis.Redis,
) -> None:
    faasd.create_function("echo-r", "python", "def main(context):\n    return context.request.body\n")
    make_trigger(
        faasd,
        name="restarted",
        function="echo-r",
        mqtype="redis",
        topic="orders",
        resptopic="answers",
        errortopic="errors",
        maxretries=5,
        maxconcurrency=5,
        connection=redis_server.url,
    )
    published = publish(rclient, "orders", 600)
    wait_for(lambda: rclient.xlen("answers") >= 50, "the first answers")

    redis_server.restart()
    wait_for(lambda: trigger_status(faasd, "restarted") == "connected", "the trigger to reconnect", timeout=60)
    client = redis.Redis.from_url(redis_server.url)
    wait_for(
        lambda: set(stream_ids(client, "answers")) >= set(published),
        "every message answered after the restart",
        timeout=120,
        every=1.0,
    )
    assert client.xpending("orders", "faasd-restarted")["pending"] == 0
    faasd.ok("DELETE", "/v1/triggers/mq/restarted")


def test_a_kill_9_of_faasd_mid_stream_loses_no_message(
    start_faasd: Callable[..., FaasdProcess],
    tmp_path: Path,
    redis_server: RedisServer,
    rclient: redis.Redis,
) -> None:
    state = tmp_path / "state"
    daemon = start_faasd(state_dir=state, default_poolsize=1)
    daemon.create_function(
        "slowish", "python", "import time\ndef main(context):\n    time.sleep(0.02)\n    return context.request.body\n"
    )
    make_trigger(
        daemon,
        name="survivor",
        function="slowish",
        mqtype="redis",
        topic="orders",
        resptopic="answers",
        maxretries=3,
        maxconcurrency=4,
        connection=redis_server.url,
    )
    published = publish(rclient, "orders", 500)
    wait_for(lambda: rclient.xlen("answers") >= 30, "the first answers")

    daemon.kill9()
    restarted = start_faasd(state_dir=state, default_poolsize=1)
    wait_for(
        lambda: set(stream_ids(rclient, "answers")) >= set(published),
        "every message answered after the restart",
        timeout=120,
        every=1.0,
    )
    assert rclient.xpending("orders", "faasd-survivor")["pending"] == 0
    assert trigger_status(restarted, "survivor") == "connected"


def test_maxconcurrency_bounds_the_messages_in_flight_and_the_context_names_the_message(
    faasd: FaasdProcess,
    redis_server: RedisServer,
    rclient: redis.Redis,
) -> None:
    faasd.create_function("counting", "python", COUNTING, max_instances=1, concurrency=50)
    make_trigger(
        faasd,
        name="bounded",
        function="counting",
        mqtype="redis",
        topic="jobs",
        resptopic="answers",
        maxconcurrency=3,
        connection=redis_server.url,
    )
    rclient.xadd("jobs", {"body": "x", "x-app": "shop"})
    # A field that cannot be a header value is left out; the message is delivered all the same.
    rclient.xadd("jobs", {"body": "y", "note": "two\nlines"})
    published = publish(rclient, "jobs", 30)

    wait_for(lambda: rclient.xlen("answers") >= 32, "32 answers", timeout=60)
    answers = [json.loads(fields[b"body"]) for _id, fields in rclient.xrange("answers")]
    assert max(a["top"] for a in answers) == 3
    first = answers[0]["context"]
    assert first["trigger"] == "mqtrigger"
    assert first["trigger_name"] == "bounded"
    assert first["topic"] == "jobs"
    assert first["delivery"] == "1"
    assert {a["context"]["message_id"] for a in answers} >= set(published)
    assert trigger_status(faasd, "bounded") == "connected"
    faasd.ok("DELETE", "/v1/triggers/mq/bounded")


def test_a_broker_that_goes_away_shows_disconnected_and_nothing_is_lost(
    faasd: FaasdProcess,
    redis_server: RedisServer,
    rclient: redis.Redis,
) -> None:
    faasd.create_function("echo-d", "python", "def main(context):\n    return context.request.body\n")
    make_trigger(
        faasd,
        name="away",
        function="echo-d",
        mqtype="redis",
        topic="orders",
        resptopic="answers",
        connection=redis_server.url,
    )
    wait_for(lambda: trigger_status(faasd, "away") == "connected", "connected")

    redis_server.stop()
    try:
        wait_for(lambda: trigger_status(faasd, "away") == "disconnected", "the trigger to see the broker gone")
        status = faasd.status()["events"]["mqtriggers"]
        assert [t["status"] for t in status if t["name"] == "away"] == ["disconnected"]
    finally:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    published = publish(client, "orders", 20)
    wait_for(
        lambda: set(stream_ids(client, "answers")) >= set(published), "the messages after it came back", timeout=60
    )
    faasd.ok("DELETE", "/v1/triggers/mq/away")


def test_bad_mq_triggers_are_refused_naming_the_field(faasd: FaasdProcess, redis_server: RedisServer) -> None:
    faasd.create_function("target-mq", "python", "def main():\n    return 'ok'\n")
    base = {"name": "bad", "function": "target-mq", "mqtype": "redis", "topic": "t", "connection": redis_server.url}
    cases = [
        ({**base, "mqtype": "kafka"}, "mqtype"),
        ({**base, "connection": "redis://127.0.0.1:1"}, "connection"),
        ({**base, "maxretries": -1}, "maxretries"),
        ({**base, "function": "missing"}, "function"),
        ({**base, "connection": "nats://127.0.0.1:4222"}, "connection"),
        ({**base, "topic": "bad topic"}, "topic"),
        ({**base, "resptopic": "t"}, "resptopic"),
        ({**base, "connection": "redis://h:abc"}, "connection"),
    ]
    for body, field in cases:
        response = faasd.api("POST", "/v1/triggers/mq", json=body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.json()["error"]["message"], response.text
    assert faasd.api("GET", "/v1/triggers/mq/bad").status_code == 404
    cli = faasd.faas(
        "mqt",
        "create",
        "--name",
        "bad",
        "--function",
        "target-mq",
        "--mqtype",
        "kafka",
        "--topic",
        "t",
        "--connection",
        redis_server.url,
    )
    assert cli.returncode == 1
    assert "mqtype" in cli.stderr and "Traceback" not in cli.stderr


# -- NATS JetStream -----------------------------------------------------------------------------


async def nats_publish(url: str, subject: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for i in range(count):
            await js.publish(subject, json.dumps({"n": i}).encode(), headers={"x-n": str(i)})
    finally:
        await nc.close()


async def nats_read(url: str, subject: str, durable: str) -> list[Any]:
    """Every message on ``subject`` so far (a durable reader of the test's own)."""
    nc = await nats.connect(url)
    got: list[Any] = []
    try:
        sub = await nc.jetstream().pull_subscribe(subject, durable=durable)
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                return got
            for msg in msgs:
                got.append(msg)
                await msg.ack()
    finally:
        await nc.close()


def test_nats_messages_are_answered_or_errors_and_survive_a_kill_9_and_a_broker_restart(
    start_faasd: Callable[..., FaasdProcess],
    tmp_path: Path,
    nats_server: NatsServer,
) -> None:
    state = tmp_path / "state"
    daemon = start_faasd(state_dir=state, default_poolsize=1)
    daemon.create_function("unlucky-n", "python", UNLUCKY, timeout=5)
    make_trigger(
        daemon,
        name="jobs",
        function="unlucky-n",
        mqtype="nats",
        topic="jobs",
        resptopic="jobs-done",
        errortopic="jobs-failed",
        maxretries=2,
        maxconcurrency=10,
        connection=nats_server.url,
    )
    asyncio.run(nats_publish(nats_server.url, "jobs", 200))
    seen: list[Any] = []

    def progress(at_least: int) -> bool:
        seen.extend(asyncio.run(nats_read(nats_server.url, "jobs-done", "t-done")))
        seen.extend(asyncio.run(nats_read(nats_server.url, "jobs-failed", "t-failed")))
        return len({m.headers["message_id"] for m in seen}) >= at_least

    wait_for(lambda: progress(40), "the first answers", timeout=60, every=0.5)
    daemon.kill9()
    nats_server.restart()
    start_faasd(state_dir=state, default_poolsize=1)

    wait_for(lambda: progress(200), "all 200 messages answered or failed", timeout=120, every=1.0)
    ids = {m.headers["message_id"] for m in seen}
    assert len(ids) == 200
    assert all(i.startswith("FAASD_jobs:") for i in ids)
    for msg in seen:
        if msg.subject == "jobs-failed":
            assert msg.headers["deliveries"] == "2"
            assert msg.headers["status"] in ("500", "")


def test_an_update_lets_the_calls_in_flight_finish_and_runs_none_twice(
    faasd: FaasdProcess, redis_server: RedisServer, rclient: redis.Redis
) -> None:
    faasd.create_function(
        "half-second",
        "python",
        "import time\ndef main(context):\n    time.sleep(0.5)\n    return context.request.context['delivery']\n",
    )
    make_trigger(
        faasd,
        name="updated",
        function="half-second",
        mqtype="redis",
        topic="orders",
        resptopic="answers",
        maxconcurrency=5,
        connection=redis_server.url,
    )
    published = publish(rclient, "orders", 20)
    wait_for(lambda: rclient.xlen("answers") >= 1, "the first answer")

    faasd.ok("PATCH", "/v1/triggers/mq/updated", json={"maxconcurrency": 3})

    wait_for(lambda: rclient.xlen("answers") >= 20, "20 answers", timeout=60)
    answered = stream_ids(rclient, "answers")
    assert sorted(answered) == sorted(published), "each message answered once"
    deliveries = [fields[b"body"] for _id, fields in rclient.xrange("answers")]
    assert deliveries == [b"1"] * 20, "no call was cut off and made again"
    assert rclient.xpending("orders", "faasd-updated")["pending"] == 0
    faasd.ok("DELETE", "/v1/triggers/mq/updated")
