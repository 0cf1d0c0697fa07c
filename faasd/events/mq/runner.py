"""Message-queue triggers at work: one task per trigger, reading, calling, acknowledging.

For each trigger a task keeps a consumer of its kind (faasd/events/mq/broker.py)
and at most ``maxconcurrency`` messages in flight: it fetches only as many as
it has free slots, so a slow function slows the reading (backpressure) rather
than piling messages up in faasd. Each message is a call of the function
through the pool (the same instances and limits as any call:
faasd/events/delivery.py ``send``) with the message's body and, as faasd's
headers (the request's context in the runtimes), its id, topic and delivery
number; the message's own headers or fields are request headers.

- 2xx: the answer's body goes to ``resptopic`` (when set), then the message is
  acknowledged.
- anything else: the message is given again after a backoff, until it has
  been delivered ``maxretries`` times (the broker's count, so a delivery cut
  off by a crash counts); then it goes to ``errortopic`` with the reason and
  the last status, and is acknowledged.

Delivery is at least once: a message answered 2xx whose acknowledgement was
lost (faasd killed between the two) is delivered again. A broker that goes
away puts the trigger in ``disconnected``; it reconnects with backoff and the
broker still holds every unacknowledged message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from faasd.core.entities import Function
from faasd.core.events import MqTrigger, redact_url
from faasd.core.validation import REQUEST_ID_RE
from faasd.events.delivery import send
from faasd.events.mq.broker import SCHEMES, BrokerError, Consumer, ConsumerFactory, Message, Subscription, kinds
from faasd.events.retry import backoff
from faasd.events.tasks import stop_tasks
from faasd.pool.manager import PoolManager

log = logging.getLogger(__name__)

RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0
FETCH_WAIT = 1.0
PROBE_TIMEOUT = 5.0  # seconds a new trigger's broker has to answer
# Request headers a message may not set.
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "expect"})


def connection_of(trigger: MqTrigger, fn: Function | None) -> str:
    """The broker URL: the trigger's own, or the function's secret it names."""
    if trigger.connection_secret:
        if fn is None or trigger.connection_secret not in fn.secrets:
            raise BrokerError(
                f"function '{trigger.function}' has no secret '{trigger.connection_secret}' (the trigger's connection)"
            )
        return fn.secrets[trigger.connection_secret]
    return trigger.connection


def subscription(trigger: MqTrigger, url: str, owner: str, call_wait: float) -> Subscription:
    """``call_wait``: how long one call may take, waiting for an instance included."""
    return Subscription(
        url=url,
        topic=trigger.topic,
        # One per trigger and topic: a trigger moved to another topic starts a consumer of its own
        # there (a NATS durable consumer keeps the subject it was made with).
        group=f"faasd-{trigger.name}" if trigger.mqtype == "redis" else f"faasd-{trigger.name}-{_short(trigger.topic)}",
        consumer=f"faasd-{owner}",
        ack_wait=call_wait + 30.0,
        concurrency=trigger.maxconcurrency,
        outputs=tuple(t for t in (trigger.resptopic, trigger.errortopic) if t),
    )


@dataclass
class TriggerState:
    trigger: MqTrigger
    connected: bool = False
    delivered: int = 0  # messages answered 2xx
    failed: int = 0  # messages sent to the error topic (or dropped without one)
    error: str = ""  # why it is disconnected
    task: asyncio.Task[None] | None = None
    stopping: bool = False  # updated or deleted: finish the calls in flight, fetch no more
    broken: BrokerError | None = None  # set by a call that found the broker gone
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a call ended, or the trigger stops
    inflight: dict[str, float] = field(default_factory=dict)  # message id -> when its delivery began

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.trigger.name,
            "function": self.trigger.function,
            "mqtype": self.trigger.mqtype,
            "topic": self.trigger.topic,
            "status": "connected" if self.connected else "disconnected",
            "delivered": self.delivered,
            "failed": self.failed,
            "error": self.error,
        }


class MqRunner:
    def __init__(
        self,
        triggers: Callable[[], Mapping[str, MqTrigger]],
        functions: Callable[[], Mapping[str, Function]],
        pool: PoolManager,
        session: aiohttp.ClientSession,
        owner: str,
        factories: Mapping[str, ConsumerFactory] | None = None,
    ) -> None:
        self._triggers = triggers
        self._functions = functions
        self._pool = pool
        self._session = session
        self._owner = owner
        self._factories = factories if factories is not None else kinds()
        self.states: dict[str, TriggerState] = {}

    def start(self) -> None:
        for trigger in self._triggers().values():
            self._follow(trigger)

    async def close(self) -> None:
        """Stop every trigger at once: calls in flight are cut off, their messages stay the broker's."""
        await stop_tasks(s.task for s in self.states.values())

    def changed(self, name: str) -> None:
        """A trigger was created, updated or deleted: the old reader stops fetching and lets its
        calls in flight finish (bounded by the function's timeout); the new one starts after it."""
        old = self.states.pop(name, None)
        before: asyncio.Task[None] | None = None
        if old is not None and old.task is not None:
            old.stopping = True
            old.wake.set()
            before = old.task
        trigger = self._triggers().get(name)
        if trigger is not None:
            self._follow(trigger, after=before)

    def _follow(self, trigger: MqTrigger, after: asyncio.Task[None] | None = None) -> None:
        state = TriggerState(trigger)
        self.states[trigger.name] = state
        state.task = asyncio.get_running_loop().create_task(self._run(state, after), name=f"faasd-mq-{trigger.name}")

    def consumer(self, trigger: MqTrigger) -> Consumer:
        fn = self._functions().get(trigger.function)
        url = connection_of(trigger, fn)
        if not url.startswith(SCHEMES[trigger.mqtype]):
            raise BrokerError(f"{redact_url(url)!r} is not a {trigger.mqtype} URL")
        wait = float(fn.timeout + fn.queue_timeout) if fn else 120.0
        return self._factories[trigger.mqtype](subscription(trigger, url, self._owner, wait))

    async def probe(self, trigger: MqTrigger) -> None:
        """Connect once (the group and stream are made): raises BrokerError when the broker cannot be used."""
        consumer = self.consumer(trigger)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await consumer.open()
        except TimeoutError:
            raise BrokerError(f"no answer within {PROBE_TIMEOUT:.0f} s") from None
        finally:
            await consumer.close()

    # -- one trigger -----------------------------------------------------------

    async def _run(self, state: TriggerState, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await after  # the trigger's previous reader finishes its calls first
        trigger = state.trigger
        wait = RECONNECT_FIRST
        while not state.stopping:
            consumer: Consumer | None = None
            inflight: set[asyncio.Task[None]] = set()
            try:
                consumer = self.consumer(trigger)
                await consumer.open()
                if not state.connected:
                    log.info("mqtrigger %s: reading %s %s", trigger.name, trigger.mqtype, trigger.topic)
                state.connected, state.error, state.broken = True, "", None
                fetched = False
                while not state.stopping:
                    if state.broken is not None:
                        raise state.broken  # an acknowledgement or a publish found the broker gone
                    free = trigger.maxconcurrency - len(inflight)
                    if free <= 0:
                        state.wake.clear()
                        woken = asyncio.ensure_future(state.wake.wait())
                        await asyncio.wait([*inflight, woken], return_when=asyncio.FIRST_COMPLETED)
                        woken.cancel()
                        inflight = {t for t in inflight if not t.done()}
                        continue
                    for message in await consumer.fetch(free, FETCH_WAIT):
                        task = asyncio.get_running_loop().create_task(self._handle(state, consumer, message))
                        inflight.add(task)
                        task.add_done_callback(lambda _t: state.wake.set())
                    if not fetched:
                        fetched, wait = True, RECONNECT_FIRST  # the backoff resets once reading works
                    inflight = {t for t in inflight if not t.done()}
            except BrokerError as exc:
                if state.connected or state.error != str(exc):
                    log.warning("mqtrigger %s: %s; reconnecting", trigger.name, exc)
                state.connected, state.error = False, str(exc)
            except asyncio.CancelledError:
                for task in inflight:
                    task.cancel()  # unacknowledged: the broker gives them again
                raise
            except Exception as exc:
                log.exception("mqtrigger %s failed; reconnecting", trigger.name)
                state.connected, state.error = False, f"{type(exc).__name__}: {exc}"
            finally:
                await self._settle(trigger, inflight)
                if consumer is not None:
                    await consumer.close()
            if not state.stopping:
                await asyncio.sleep(wait)
                wait = min(RECONNECT_MAX, wait * 2)
        state.connected = False

    async def _settle(self, trigger: MqTrigger, inflight: set[asyncio.Task[None]]) -> None:
        """Let calls in flight finish (bounded by the function's timeout), then cut off the rest."""
        if not inflight:
            return
        fn = self._functions().get(trigger.function)
        limit = float(fn.timeout + 5) if fn else 5.0
        _done, pending = await asyncio.wait(inflight, timeout=limit)
        for task in pending:
            task.cancel()  # unacknowledged: the broker gives them again
        if pending:
            await asyncio.wait(pending)

    async def _handle(self, state: TriggerState, consumer: Consumer, message: Message) -> None:
        """One message, start to end; never raises: a broker failure marks the trigger broken, anything
        else counts as a failed attempt of this message (so one bad message cannot stop the others)."""
        state.inflight[message.id] = time.time()
        try:
            await self._deliver(state, consumer, message)
        except BrokerError as exc:
            state.broken = exc
            state.wake.set()
        except Exception:
            log.exception("mqtrigger %s: message %s failed inside faasd", state.trigger.name, message.id)
            try:
                await consumer.retry(message, backoff(message.deliveries))
            except BrokerError as exc:
                state.broken = exc
                state.wake.set()
        finally:
            state.inflight.pop(message.id, None)

    async def _deliver(self, state: TriggerState, consumer: Consumer, message: Message) -> None:
        trigger = state.trigger
        limit = max(1, trigger.maxretries)
        fn = self._functions().get(trigger.function)
        if fn is None:
            await consumer.retry(message, 5.0)
            return
        if message.deliveries > limit:
            # The last delivery never got an outcome (faasd stopped during it).
            reason = f"delivered {message.deliveries - 1} time(s) without an outcome (faasd stopped meanwhile)"
            await self._give_up(state, consumer, message, reason, None)
            return
        headers = [
            (k, v)
            for k, v in message.headers.items()
            if _forwardable(k, v) and (k.lower() != "x-request-id" or REQUEST_ID_RE.fullmatch(v))
        ]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", trigger.contenttype))
        headers += [
            ("X-Faasd-Trigger", "mqtrigger"),
            ("X-Faasd-Trigger-Name", trigger.name),
            ("X-Faasd-Message-Id", message.id),
            ("X-Faasd-Topic", trigger.topic),
            ("X-Faasd-Delivery", str(message.deliveries)),
        ]
        if not any(k.lower() == "x-request-id" for k, _ in headers):
            headers.append(("X-Request-Id", f"{trigger.name}-{message.id}"))
        outcome, answer = await send(
            self._pool, self._session, fn, trigger.method, f"/function/{fn.name}", headers, message.body
        )
        if outcome.status is not None and 200 <= outcome.status < 300:
            if trigger.resptopic:
                meta = {"message_id": message.id, "topic": trigger.topic, "status": str(outcome.status)}
                if answer.get("response_truncated"):
                    meta["truncated"] = "true"  # the answer's first 1 MiB
                await consumer.publish(trigger.resptopic, answer.get("response_body", b""), meta)
            await consumer.ack(message)
            state.delivered += 1
            return
        if message.deliveries >= limit:
            await self._give_up(
                state, consumer, message, f"{message.deliveries} attempt(s) failed", outcome.status, outcome.describe()
            )
            return
        await consumer.retry(message, backoff(message.deliveries))

    async def _give_up(
        self,
        state: TriggerState,
        consumer: Consumer,
        message: Message,
        reason: str,
        status: int | None,
        last: str = "",
    ) -> None:
        trigger = state.trigger
        error = f"{reason}; the last: {last}" if last else reason
        if trigger.errortopic:
            await consumer.publish(
                trigger.errortopic,
                message.body,
                {
                    "message_id": message.id,
                    "topic": trigger.topic,
                    "error": error,
                    "status": "" if status is None else str(status),
                    # Attempts made: a delivery cut off by a stop is counted, the one not made is not.
                    "deliveries": str(min(message.deliveries, max(1, trigger.maxretries))),
                },
            )
        else:
            log.warning("mqtrigger %s: message %s dropped (no error topic): %s", trigger.name, message.id, error)
        await consumer.ack(message)
        state.failed += 1


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _forwardable(name: str, value: str) -> bool:
    """A message field or header that can be a request header as it is (others are left out)."""
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value) or len(value) > 8192:
        return False
    lower = name.lower()
    return (
        lower not in _RESERVED
        and not lower.startswith("x-faasd-")
        and name.isascii()
        and name.replace("-", "").replace("_", "").isalnum()
    )
