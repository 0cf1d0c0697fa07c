"""Redis Streams: a consumer group per trigger, acknowledged after a 2xx.

- The group is made at the stream's start (``0``, ``MKSTREAM``): what was
  published before the trigger existed is delivered too.
- This faasd reads as one consumer with a stable name, so after a crash its
  pending messages (delivered, never acknowledged) are found at the next start
  and given again.
- A failed message stays pending and is given again after a backoff, claimed
  with ``XCLAIM`` so that the stream's delivery count goes up: the count is the
  broker's, a crash mid-delivery included.
- Messages pending at another consumer (a faasd that is gone) for longer than
  :data:`RECLAIM_IDLE` are claimed with ``XAUTOCLAIM``.
- A message's body is its ``body`` field (else all its fields as JSON); the
  other fields are its headers. Published answers and errors have a ``body``
  field and their metadata as fields.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from faasd.core.events import redact_url
from faasd.events.mq.broker import BrokerError, Message, Subscription

RECLAIM_IDLE = 5 * 60.0  # another consumer's message pending this long (at least) is taken over
RECLAIM_EVERY = 30.0  # seconds between looks for such messages


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _raw(response: Any, **_options: Any) -> Any:
    return response


class RedisConsumer:
    def __init__(self, sub: Subscription) -> None:
        self._sub = sub
        self._redis: aioredis.Redis | None = None
        self._retries: list[tuple[float, str]] = []  # (due, id) of own failed messages
        self._next_reclaim = 0.0
        self._reclaim_from = "0-0"  # where the next look for idle messages starts (XAUTOCLAIM's cursor)
        self._mine: set[str] = set()  # ids given out by this consumer and not yet acknowledged
        # Longer than any call may take, so that a message still being worked on is never taken over.
        self._reclaim_idle_ms = int(max(RECLAIM_IDLE, 2 * sub.ack_wait) * 1000)

    @property
    def _where(self) -> str:
        return redact_url(self._sub.url)

    @property
    def _r(self) -> aioredis.Redis:
        if self._redis is None:
            raise BrokerError("not connected")
        return self._redis

    async def open(self) -> None:
        try:
            # A pool that waits for a free connection rather than failing past its size.
            pool = aioredis.BlockingConnectionPool.from_url(
                self._sub.url,
                max_connections=self._sub.concurrency + 4,
                timeout=None,
                socket_connect_timeout=5,
                socket_keepalive=True,
            )
            self._redis = aioredis.Redis(connection_pool=pool)
            # XAUTOCLAIM's reply as Redis gives it: redis-py's parsing of a JUSTID reply drops the cursor.
            self._redis.set_response_callback("XAUTOCLAIM", _raw)
            await self._redis.ping()
            try:
                await self._redis.xgroup_create(self._sub.topic, self._sub.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            # Own messages left pending by an earlier run (a crash): given again at once.
            pending = await self._redis.xpending_range(
                self._sub.topic, self._sub.group, min="-", max="+", count=10_000, consumername=self._sub.consumer
            )
        except (RedisError, OSError, ValueError) as exc:
            raise BrokerError(f"Redis at {self._where}: {exc}") from exc
        now = time.monotonic()
        self._retries = [(now, _text(p["message_id"])) for p in pending]
        heapq.heapify(self._retries)

    async def fetch(self, count: int, wait: float) -> list[Message]:
        try:
            out = await self._due_retries(count)
            if len(out) < count and time.monotonic() >= self._next_reclaim:
                out += await self._reclaim(count - len(out))
            if len(out) < count:
                block = 1 if out else max(1, int(wait * 1000))
                read: Any = await self._r.xreadgroup(
                    self._sub.group, self._sub.consumer, {self._sub.topic: ">"}, count=count - len(out), block=block
                )
                for _stream, entries in read or []:
                    out += [self._message(entry_id, fields, 1) for entry_id, fields in entries]
            return out
        except (RedisError, OSError) as exc:
            raise BrokerError(f"Redis at {self._where}: {exc}") from exc

    async def _due_retries(self, count: int) -> list[Message]:
        out: list[Message] = []
        now = time.monotonic()
        while self._retries and self._retries[0][0] <= now and len(out) < count:
            _due, entry_id = heapq.heappop(self._retries)
            claimed = await self._r.xclaim(
                self._sub.topic, self._sub.group, self._sub.consumer, min_idle_time=0, message_ids=[entry_id]
            )
            out += await self._counted(claimed)
        return out

    async def _reclaim(self, count: int) -> list[Message]:
        """Messages idle at a consumer that is gone: found with JUSTID (which counts no delivery),
        then claimed one by one, except those this consumer still holds."""
        self._next_reclaim = time.monotonic() + RECLAIM_EVERY
        # Each look goes on where the last one stopped (the cursor XAUTOCLAIM answers; 0-0 after a whole
        # pass), so a long head of pending messages this consumer holds does not hide idle ones behind it.
        reply = await self._r.execute_command(  # type: ignore[no-untyped-call]
            "XAUTOCLAIM",
            self._sub.topic,
            self._sub.group,
            self._sub.consumer,
            self._reclaim_idle_ms,
            self._reclaim_from,
            "COUNT",
            count,
            "JUSTID",
        )
        self._reclaim_from = _text(reply[0])
        found = [_text(i) for i in reply[1] or []]
        held = self._mine | {entry_id for _due, entry_id in self._retries}
        ids: list[Any] = [i for i in found if i not in held]
        if not ids:
            return []
        claimed = await self._r.xclaim(
            self._sub.topic, self._sub.group, self._sub.consumer, min_idle_time=0, message_ids=ids
        )
        return await self._counted(claimed)

    async def _counted(self, entries: list[Any]) -> list[Message]:
        """Claimed entries with the delivery count the stream keeps for each (a deleted one is acknowledged)."""
        out: list[Message] = []
        for entry_id, fields in entries:
            info = await self._r.xpending_range(self._sub.topic, self._sub.group, min=entry_id, max=entry_id, count=1)
            deliveries = int(info[0]["times_delivered"]) if info else 1
            if fields is None:  # trimmed from the stream meanwhile: nothing to deliver
                await self._r.xack(self._sub.topic, self._sub.group, entry_id)
                continue
            out.append(self._message(entry_id, fields, deliveries))
        return out

    def _message(self, entry_id: Any, fields: dict[Any, Any], deliveries: int) -> Message:
        decoded = {_text(k): v for k, v in fields.items()}
        body = decoded.pop("body", None)
        headers = {k: _text(v) for k, v in decoded.items()}
        if body is None:
            body = json.dumps(headers).encode()
            headers = {}
        elif isinstance(body, str):
            body = body.encode()
        self._mine.add(_text(entry_id))
        return Message(_text(entry_id), body, headers, deliveries)

    async def ack(self, message: Message) -> None:
        try:
            await self._r.xack(self._sub.topic, self._sub.group, message.id)
            self._mine.discard(message.id)
        except (RedisError, OSError) as exc:
            raise BrokerError(f"Redis at {self._where}: {exc}") from exc

    async def retry(self, message: Message, delay: float) -> None:
        self._mine.discard(message.id)
        heapq.heappush(self._retries, (time.monotonic() + delay, message.id))

    async def publish(self, topic: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            fields: dict[Any, Any] = {"body": body, **headers}
            await self._r.xadd(topic, fields)
        except (RedisError, OSError) as exc:
            raise BrokerError(f"Redis at {self._where}: {exc}") from exc

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
            self._redis = None
