"""What a message-queue trigger needs of a broker: one small interface, one module per kind.

A kind (Redis Streams in redis_streams.py, NATS JetStream in nats_jetstream.py)
implements :class:`Consumer`; faasd/events/mq/runner.py drives it the same way
for every kind. Adding a third kind is one module and one line in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class BrokerError(Exception):
    """The broker cannot be reached or refused an operation; the trigger reconnects."""


@dataclass
class Message:
    id: str  # the broker's id (a stream entry id, a JetStream sequence)
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # the message's own fields or headers
    deliveries: int = 1  # this delivery's number, as the broker counts them (a crash mid-delivery counts)
    raw: Any = None  # the kind's own handle on the message


@dataclass(frozen=True)
class Subscription:
    """Where a trigger reads: its broker, topic, and names that survive a restart."""

    url: str
    topic: str
    group: str  # consumer group (Redis) / durable consumer (NATS): one per trigger
    consumer: str  # this faasd's name inside the group
    ack_wait: float  # seconds before an unacknowledged message is given out again (NATS)
    outputs: tuple[str, ...] = ()  # the answer and error topics (NATS makes their streams at open)
    concurrency: int = 10  # messages in flight at most (a Redis connection pool of that size)


class Consumer(Protocol):
    async def open(self) -> None:
        """Connect, and make the group/consumer (and the stream) when missing."""
        ...

    async def fetch(self, count: int, wait: float) -> list[Message]:
        """Up to ``count`` messages: due retries first, then new ones (waits up to ``wait`` s for one)."""
        ...

    async def ack(self, message: Message) -> None: ...

    async def retry(self, message: Message, delay: float) -> None:
        """Give ``message`` again in ``delay`` s; it stays the broker's (a crash meanwhile loses nothing)."""
        ...

    async def publish(self, topic: str, body: bytes, headers: dict[str, str]) -> None: ...

    async def close(self) -> None: ...


ConsumerFactory = Callable[[Subscription], Consumer]


def kinds() -> dict[str, ConsumerFactory]:
    """mqtype -> the consumer of that kind (imported here, so that a kind's client loads only when used)."""
    from faasd.events.mq.nats_jetstream import NatsConsumer
    from faasd.events.mq.redis_streams import RedisConsumer

    return {"redis": RedisConsumer, "nats": NatsConsumer}


SCHEMES = {"redis": ("redis://", "rediss://", "unix://"), "nats": ("nats://", "tls://")}
