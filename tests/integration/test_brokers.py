"""The broker fixtures (tests/integration/brokers.py) on the real broker images.

Redis answers at its URL and keeps its data across a restart (append-only
file); NATS has JetStream, whose streams survive a stop and a start; both keep
their address; and a container on a broker's network reaches it by its alias,
as a function attached to that network would.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.integration.brokers import (
    LABEL,
    LABEL_VALUE,
    NatsServer,
    RedisServer,
    broker_engine,
    nats_server_fixture,  # noqa: F401 (the fixture nats_server)
    probe_aliases,
    redis_server_fixture,  # noqa: F401 (the fixture redis_server)
)

pytestmark = pytest.mark.docker


def test_redis_answers_at_its_url(redis_server: RedisServer) -> None:
    assert redis_server.network.startswith("faasd-test-apps-")
    assert redis_server.url == f"redis://{redis_server.ip}:6379"
    assert redis_server.inside_url == "redis://redis:6379"
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
    info = redis_server.engine.api.inspect_container(redis_server.container_id)
    assert info["Config"]["Labels"][LABEL] == LABEL_VALUE
    assert info["Config"]["User"] == "999:999"  # not root
    assert redis_server.command("INFO", "server").split("redis_version:")[1].startswith("7.0.")


def test_redis_keeps_its_data_across_restart(redis_server: RedisServer) -> None:
    url = redis_server.url
    assert redis_server.command("SET", "survivor", "still here") == "OK"
    entry = redis_server.command("XADD", "orders", "*", "id", "1")
    redis_server.restart()
    assert redis_server.url == url
    assert redis_server.command("GET", "survivor") == "still here"
    assert redis_server.command("XLEN", "orders") == 1
    assert redis_server.command("XRANGE", "orders", "-", "+")[0][0] == entry


def test_nats_has_jetstream(nats_server: NatsServer) -> None:
    assert nats_server.url == f"nats://{nats_server.ip}:4222"
    assert nats_server.inside_url == "nats://nats:4222"
    info = nats_server.info()
    assert info["jetstream"] is True
    assert info["version"].startswith("2.9.")
    assert nats_server.monitor("/jsz")["config"]["store_dir"] == "/data/jetstream"
    healthz = nats_server.monitor_url + "/healthz?js-enabled-only=true"
    with urllib.request.urlopen(healthz, timeout=5) as response:
        assert response.status == 200


def test_nats_streams_survive_stop_and_start(nats_server: NatsServer) -> None:
    config = {"name": "ORDERS", "subjects": ["orders.>"], "storage": "file"}
    created = json.loads(nats_server.request("$JS.API.STREAM.CREATE.ORDERS", json.dumps(config).encode()))
    assert "error" not in created, created
    for n in range(3):
        ack = json.loads(nats_server.request("orders.new", b"order %d" % n))
        assert ack == {"stream": "ORDERS", "seq": n + 1}, ack
    nats_server.publish("orders.new", b"order 3")  # core publish, captured by the stream
    url = nats_server.url
    nats_server.stop()
    nats_server.start()
    assert nats_server.url == url
    state = json.loads(nats_server.request("$JS.API.STREAM.INFO.ORDERS"))["state"]
    assert state["messages"] == 4, state


def test_each_broker_is_reached_by_its_alias_from_its_network(
    redis_server: RedisServer, nats_server: NatsServer
) -> None:
    engine = broker_engine()
    assert probe_aliases(engine, redis_server.network, "redis")["redis"] == "+PONG\r\n"
    seen = probe_aliases(engine, nats_server.network, "nats")["nats"]
    assert seen.startswith("INFO ") and json.loads(seen[5:])["jetstream"] is True, seen


def test_two_brokers_share_a_network(nats_server: NatsServer) -> None:
    """RedisServer(network=...) joins another broker's network: a function there reaches both."""
    with RedisServer(network=nats_server.network) as redis:
        assert redis.network == nats_server.network
        assert redis.ip != nats_server.ip
        seen = probe_aliases(redis.engine, nats_server.network, "redis", "nats")
        assert seen["redis"] == "+PONG\r\n", seen
        assert seen["nats"].startswith("INFO "), seen
        # It survives a crash too (SIGKILL): the address stays, the broker comes back.
        redis.kill()
        redis.start()
        assert redis.command("PING") == "PONG"
    # The network is nats_server's: still there after the joined Redis left.
    assert broker_engine().api.inspect_network(nats_server.network)["Name"] == nats_server.network
