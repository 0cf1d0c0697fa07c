"""What the ad server's two functions share: the Redis client and the key names.

Money is kept in whole cents, so totals add up exactly.

- ``ads:<id>``: hash ``advertiser``, ``url``, ``cpc_cents`` (cost per click)
- ``ads:ids``: the set of ad ids
- ``clicks``: the stream each click is appended to (a ``body`` field, JSON)
- ``billing:cents`` / ``billing:clicks``: hashes advertiser -> cents / clicks settled
- ``billing:settled:<message id>``: set once a click (a stream entry) is billed
"""

from __future__ import annotations

import os
import threading

import redis

CLICKS = "clicks"
BILLED_CENTS = "billing:cents"
BILLED_CLICKS = "billing:clicks"
SETTLED_TTL = 30 * 24 * 3600  # seconds a settled message id is remembered (a redelivery comes much sooner)

_client: redis.Redis | None = None
_lock = threading.Lock()


def db() -> redis.Redis:
    """One client (a connection pool) per instance, made on the first call."""
    global _client
    with _lock:
        if _client is None:
            url = os.environ.get("REDIS_URL", "redis://redis:6379")
            _client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        return _client


def ad_key(ad_id: str) -> str:
    return f"ads:{ad_id}"


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
