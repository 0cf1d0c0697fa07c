"""Records the containers that start, as a watch trigger reports them, and lists them.

- Called by a watch (``faas watch create ... --type container --event added``):
  the body is the container as ``docker inspect`` shows it and the context
  says what happened. Each start (``event_action`` ``start``, or ``sync`` for
  one that started while the watch could not see the engine) is recorded:
  ``HSET containers:<id>`` with its name, image, labels (JSON) and start time
  (the latest start), and ``LPUSH containers:started`` of the same as JSON,
  one per start (the newest 1000 kept). A removal (``--event removed``) is
  noted in the hash as ``removed_at``.
- ``GET /started``: the starts recorded, newest first, as JSON
  (``?limit=N``, default 50).

A watch event is delivered at least once: a start is recorded once, keyed by
the container's id and start time (``SET NX``).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import redis

KEEP = 1000  # starts kept in the list

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


def record(ctx: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
    container_id = str(container.get("Id") or ctx.get("object_id", ""))
    config = container.get("Config") or {}
    state = container.get("State") or {}
    if ctx.get("event_type") == "removed":
        if db().exists(f"containers:{container_id}"):
            db().hset(f"containers:{container_id}", "removed_at", ctx.get("event_time", ""))
        return {"recorded": "removed", "id": container_id}
    action = ctx.get("event_action")
    # "create" is an added event too, but nothing runs yet; "sync": found running after a gap.
    if action != "start" and not (action == "sync" and state.get("Running")):
        return {"recorded": None, "id": container_id, "action": ctx.get("event_action")}
    started = str(state.get("StartedAt") or ctx.get("event_time", ""))
    if not db().set(f"containers:seen:{container_id}:{started}", "1", nx=True, ex=7 * 24 * 3600):
        return {"recorded": None, "id": container_id, "repeated": True}
    entry = {
        "id": container_id,
        "name": str(container.get("Name") or "").lstrip("/"),
        "image": str(config.get("Image") or ""),
        "labels": config.get("Labels") or {},
        "started_at": started,
        "event_time": ctx.get("event_time", ""),
        "watch": ctx.get("watch_name", ""),
    }
    pipe = db().pipeline(transaction=True)
    pipe.hset(f"containers:{container_id}", mapping={**entry, "labels": json.dumps(entry["labels"], sort_keys=True)})
    pipe.lpush("containers:started", json.dumps(entry))
    pipe.ltrim("containers:started", 0, KEEP - 1)
    pipe.execute()
    return {"recorded": "started", "id": container_id, "name": entry["name"]}


def listing(limit: int) -> dict[str, Any]:
    return {"started": [json.loads(start) for start in db().lrange("containers:started", 0, limit - 1)]}


def main(context: Any) -> Any:
    request = context.request
    ctx = request.context  # set by faasd only: a caller cannot forge a watch event
    if ctx.get("trigger") == "watch":
        if ctx.get("object_type") != "container":
            return {"recorded": None, "object_type": ctx.get("object_type")}
        return record(ctx, request.json() or {})
    if request.method != "GET":
        return {"error": "GET lists the starts; the watch trigger records them"}, 405
    try:
        limit = max(1, min(KEEP, int(request.query.get("limit", "50"))))
    except (TypeError, ValueError):
        return {"error": "limit: a number from 1 to 1000"}, 400
    return listing(limit)
