"""A function that records each delivery in a real Redis, for the tests of several nodes.

It RPUSHes ``"<call id> <attempt> <scheduled time> <unix time> <container>"`` to the list ``KEY`` on the
Redis at ``REDIS_HOST`` (plain RESP over a socket: the runtime has no Redis client), then holds ``HOLD``
seconds (a slow function: a node killed mid-way holds calls running and queued). Every delivery leaves
an entry, a repeated one too; the container's hostname is its short id, which tells the node that ran it
(by the container's owner label).
"""

from __future__ import annotations

from typing import Any

from tests.integration.brokers import RedisServer

RECORDER = """
import os, socket, time

def main(context):
    c = context.request.context
    fields = (c.get("call_id", "-"), c.get("attempt", "-"), c.get("scheduled_time", "-"), repr(time.time()))
    entry = " ".join((*fields, socket.gethostname()))
    key = os.environ["KEY"].encode()
    parts = [b"RPUSH", key, entry.encode()]
    command = b"*%d\\r\\n" % len(parts) + b"".join(b"$%d\\r\\n%s\\r\\n" % (len(p), p) for p in parts)
    with socket.create_connection((os.environ["REDIS_HOST"], 6379), timeout=5) as s:
        s.sendall(command)
        reply = s.recv(64)
    if not reply.startswith(b":"):
        raise RuntimeError(f"redis answered {reply!r}")
    time.sleep(float(os.environ.get("HOLD", "0")))
    return "recorded"
"""


def recorder_function(name: str, redis_server: RedisServer, key: str, hold: float = 0.0) -> dict[str, Any]:
    """The body of ``POST /v1/functions`` for a recorder on ``redis_server``'s network."""
    return {
        "name": name,
        "environment": "python",
        "code": RECORDER,
        "env": {"REDIS_HOST": "redis", "KEY": key, "HOLD": str(hold)},
        "network": redis_server.network,
    }


def entries(redis_server: RedisServer, key: str) -> list[list[str]]:
    """The deliveries recorded under ``key``, oldest first, each split into its five fields."""
    return [e.split() for e in redis_server.command("LRANGE", key, "0", "-1")]
