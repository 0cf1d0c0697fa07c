"""NATS JetStream: a durable pull consumer per trigger, acknowledged after a 2xx.

- The topic is a subject; a stream that holds it is made when none does
  (``FAASD_<subject>``, file storage), and so for the answer and error subjects.
- The durable consumer delivers everything in the stream from the start
  (deliver all), acknowledges explicitly, and gives a message out again after
  ``ack_wait`` when faasd stopped mid-delivery. ``MaxDeliver`` is left
  unlimited: faasd counts deliveries itself (the message's ``num_delivered``,
  which the server keeps) and sends a message that failed ``maxretries`` times
  to the error subject, then acknowledges it.
- A failed message is NAK'd with a delay: the server gives it again then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from faasd.core.events import redact_url
from faasd.events.mq.broker import BrokerError, Message, Subscription


def stream_name(subject: str) -> str:
    return "FAASD_" + re.sub(r"[^A-Za-z0-9_-]", "_", subject)


class NatsConsumer:
    def __init__(self, sub: Subscription) -> None:
        self._sub = sub
        self._nc: Client | None = None
        self._psub: Any = None
        self._streams: set[str] = set()  # subjects known to be held by a stream
        self._surplus: list[Any] = []  # messages a pull returned beyond what was asked for

    async def open(self) -> None:
        try:
            self._nc = await nats.connect(
                self._sub.url, connect_timeout=5, allow_reconnect=False, max_reconnect_attempts=0
            )
            js = self._nc.jetstream()
            for subject in (self._sub.topic, *self._sub.outputs):
                await self._ensure_stream(subject)
            config = ConsumerConfig(
                durable_name=self._sub.group,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._sub.ack_wait,
                max_deliver=-1,
                max_ack_pending=10_000,
            )
            self._psub = await js.pull_subscribe(self._sub.topic, durable=self._sub.group, config=config)
            # An existing durable consumer keeps its old settings: bring its ack wait up to date.
            info = await self._psub.consumer_info()
            if info.config.ack_wait is not None and abs(info.config.ack_wait - self._sub.ack_wait) > 0.5:
                await js.add_consumer(info.stream_name, dataclasses.replace(info.config, ack_wait=self._sub.ack_wait))
        except (TimeoutError, NatsError, OSError, ValueError) as exc:
            await self.close()
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: {exc or type(exc).__name__}") from exc

    async def _ensure_stream(self, subject: str) -> None:
        if subject in self._streams or self._nc is None:
            return
        js = self._nc.jetstream()
        try:
            await js.find_stream_name_by_subject(subject)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=stream_name(subject), subjects=[subject], storage=StorageType.FILE))
        self._streams.add(subject)

    async def fetch(self, count: int, wait: float) -> list[Message]:
        if self._psub is None or self._nc is None or not self._nc.is_connected:
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: not connected")
        msgs, self._surplus = self._surplus[:count], self._surplus[count:]
        if msgs:
            return [self._message(m) for m in msgs]
        try:
            msgs = await self._psub.fetch(count, timeout=max(wait, 0.1))
        except (TimeoutError, NatsTimeout):
            return []
        except (NatsError, OSError) as exc:
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: {exc or type(exc).__name__}") from exc
        msgs, self._surplus = msgs[:count], self._surplus + msgs[count:]
        return [self._message(m) for m in msgs]

    @staticmethod
    def _message(msg: Any) -> Message:
        meta = msg.metadata
        headers = {k: str(v) for k, v in (msg.headers or {}).items()}
        return Message(f"{meta.stream}:{meta.sequence.stream}", msg.data, headers, meta.num_delivered, msg)

    async def ack(self, message: Message) -> None:
        try:
            await message.raw.ack()
        except (NatsError, OSError) as exc:
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: {exc or type(exc).__name__}") from exc

    async def retry(self, message: Message, delay: float) -> None:
        try:
            await message.raw.nak(delay=delay)
        except (NatsError, OSError) as exc:
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: {exc or type(exc).__name__}") from exc

    async def publish(self, topic: str, body: bytes, headers: dict[str, str]) -> None:
        if self._nc is None:
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: not connected")
        try:
            await self._ensure_stream(topic)
            await self._nc.jetstream().publish(topic, body, headers=headers or None)
        except (TimeoutError, NatsError, OSError) as exc:
            raise BrokerError(f"NATS at {redact_url(self._sub.url)}: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(NatsError, OSError):
                await self._nc.close()
            self._nc = None
            self._psub = None
